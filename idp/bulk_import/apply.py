"""Applying an import: the plan written in batches, each batch one transaction.

Each batch of :data:`BATCH_SIZE` rows is planned and written in its own transaction, together
with its audit entry (``import.batch``) and the progress of its :class:`ImportJob`: a crash or a
kill leaves whole batches only, and running the same file again finishes the job, because rows
already applied are then simply *unchanged* (the import is keyed on the citizen ID).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.clock import Clock
from core.db import transaction
from core.metrics import IMPORT_JOBS
from core.opaque_tokens import new_opaque_token
from idp import live_officials, official_data
from idp.admin_scope import AdminScope
from idp.agencies import AGENCY_KINDS
from idp.bulk_import import activation
from idp.bulk_import.plan import (
    CREATE,
    LOOKUP_CHUNK,
    UPDATE,
    Differ,
    Official,
    RowPlan,
    Summary,
    explicit_usernames,
    validate_rows,
)
from idp.bulk_import.reading import ImportFile
from idp.models import Account, AccountMove, AccountProfile, ActivationCode, Agency, ImportJob

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
ProgressCallback = Callable[[int, int], None]
# Test hook: called inside each batch's transaction after its writes, before the commit.
BatchHook = Callable[[int, list[RowPlan]], None]


@dataclass
class ImportResult:
    job_id: str
    resumed: bool
    rows: list[RowPlan]
    summary: Summary
    code_files: list[Path] = field(default_factory=list)


def apply_file(
    *,
    session_factory: sessionmaker[Session],
    clock: Clock,
    actor: str,
    file: ImportFile,
    output_dir: Path,
    batch_size: int = BATCH_SIZE,
    reach: AdminScope | None = None,
    on_progress: ProgressCallback | None = None,
    on_batch: BatchHook | None = None,
    job_id: str | None = None,
    issuer: str,
    titles: Sequence[str] = activation.headers(),
) -> ImportResult:
    """Import ``file``: create and update officials, issue activation codes for new ones.

    Refused rows change nothing. New accounts get no password, only an activation code, written
    to ``output_dir/<unit_code>.csv``. An interrupted job of the same file (same SHA-256) is
    resumed under its job id; ``job_id`` names the job to run instead (the admin API creates
    its job row before the work starts, to answer with its id at once). The code files list a
    code once its batch committed (:class:`activation.HandoutWriter`): codes that an interrupted
    run staged are reconciled first. ``issuer`` builds the activation address of each line;
    ``titles`` are the column titles of a new file, in the reader's language.
    """
    writer = activation.HandoutWriter(output_dir, issuer=issuer, titles=titles)
    files: set[Path] = set(writer.reconcile(_committed_digests(session_factory)))
    job_pk, job_id, resumed = _start_job(
        session_factory, clock=clock, actor=actor, file=file, job_id=job_id
    )
    today = clock.now().date()
    with transaction(session_factory) as session:
        differ = Differ(session, reserved_usernames=explicit_usernames(file), reach=reach)
    checked = validate_rows(file.rows, units=differ.units, today=today, reach=reach)
    summary = Summary()
    rows: list[RowPlan] = []
    total = len(checked)
    try:
        for number, start in enumerate(range(0, total, batch_size), start=1):
            batch = checked[start : start + batch_size]
            new_agencies: list[tuple[int, str, int]] = []
            try:
                with transaction(session_factory) as session:
                    plans = differ.diff(session, batch)
                    issued = _write_batch(
                        session,
                        clock=clock,
                        actor=actor,
                        job_id=job_id,
                        plans=plans,
                        differ=differ,
                        new_agencies=new_agencies,
                    )
                    batch_summary = Summary()
                    batch_summary.add(plans)
                    _record_progress(
                        session,
                        clock=clock,
                        actor=actor,
                        job_pk=job_pk,
                        job_id=job_id,
                        batch=number,
                        batch_summary=batch_summary,
                        summary=summary,
                        processed=start + len(batch),
                    )
                    if on_batch is not None:
                        on_batch(number, plans)
                    # Last step before the commit: durable, but not yet in any hand-out file.
                    writer.stage(issued)
            except BaseException:
                # Usually the batch rolled back; a commit that failed midway may not have.
                # The database decides; if it cannot be asked now, the next run will.
                try:
                    writer.reconcile(_committed_digests(session_factory))
                except Exception:
                    log.warning("activation codes of an interrupted batch left to reconcile")
                raise
            files.update(writer.publish())
            for unit_id, kind, agency_id in new_agencies:
                differ.register_agency(unit_id, kind, agency_id)
            summary.add(plans)
            rows.extend(plans)
            if on_progress is not None:
                on_progress(start + len(batch), total)
    except BaseException:
        _finish_job(session_factory, clock=clock, job_pk=job_pk, status="failed", summary=summary)
        raise
    _finish_job(session_factory, clock=clock, job_pk=job_pk, status="finished", summary=summary)
    live_officials.fold_changes(session_factory)  # the batches' changes to the unit counts
    if summary.create + summary.update >= ANALYZE_AFTER_ROWS:
        _refresh_planner_statistics(session_factory)
    return ImportResult(
        job_id=job_id, resumed=resumed, rows=rows, summary=summary, code_files=sorted(files)
    )


def _committed_digests(factory: sessionmaker[Session]) -> activation.CommittedDigests:
    def committed(digests: Collection[str]) -> set[str]:
        found: set[str] = set()
        wanted = list(digests)
        with transaction(factory) as session:
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                found.update(
                    session.scalars(
                        select(ActivationCode.code_digest).where(
                            ActivationCode.code_digest.in_(wanted[start : start + LOOKUP_CHUNK])
                        )
                    )
                )
        return found

    return committed


# After a bulk load the planner's statistics describe the tables as they were: PostgreSQL then
# picks nested loops over sequential scans until autovacuum gets round to them (SCIM paging
# went from ~250 ms to ~38 ms on 35,200 officials once analysed). VACUUM as well sets the
# visibility map, without which the index-only scans of SCIM paging read the table too.
# Small imports leave it to autovacuum.
ANALYZE_AFTER_ROWS = 1000
_ANALYSED_TABLES = ("idp_account", "idp_account_profile", "idp_activation_code")


def _refresh_planner_statistics(factory: sessionmaker[Session]) -> None:
    """VACUUM (ANALYZE) the tables a large import filled (PostgreSQL; SQLite's planner is
    steered by index hints where it matters). VACUUM cannot run inside a transaction."""
    engine = factory.kw["bind"]
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"VACUUM (ANALYZE) {', '.join(_ANALYSED_TABLES)}"))


def _start_job(
    factory: sessionmaker[Session],
    *,
    clock: Clock,
    actor: str,
    file: ImportFile,
    job_id: str | None = None,
) -> tuple[int, str, bool]:
    with transaction(factory) as session:
        if job_id is not None:
            job = session.scalar(select(ImportJob).where(ImportJob.job_id == job_id))
            if job is None:
                raise LookupError(f"no import job {job_id}")
            # A job that already processed rows was interrupted: this run resumes it.
            resumed = job.processed_rows > 0 or job.status == "failed"
        else:
            job = session.scalar(
                select(ImportJob)
                .where(
                    ImportJob.file_digest == file.digest,
                    ImportJob.dry_run.is_(False),
                    ImportJob.status.in_(("running", "failed")),
                )
                .order_by(ImportJob.id.desc())
                .limit(1)
            )
            resumed = job is not None
        if job is None:
            job = ImportJob(
                job_id=new_opaque_token(32),
                file_name=file.name[:300],
                file_digest=file.digest,
                dry_run=False,
                actor=actor,
                created_at=clock.now(),
                summary={},
            )
            session.add(job)
        job.status = "running"
        job.total_rows = len(file.rows)
        job.processed_rows = 0
        job.finished_at = None
        session.flush()
        audit.record(
            session,
            clock=clock,
            actor=actor,
            action="import.resume" if resumed else "import.start",
            target=f"import:{job.job_id}",
            details={"file": file.name, "digest": file.digest, "rows": len(file.rows)},
        )
        return job.id, job.job_id, resumed


def _finish_job(
    factory: sessionmaker[Session], *, clock: Clock, job_pk: int, status: str, summary: Summary
) -> None:
    with transaction(factory) as session:
        job = session.get(ImportJob, job_pk)
        if job is None:
            return
        job.status = status
        job.summary = {**_caller_keys(job.summary), **summary.as_dict()}
        job.finished_at = clock.now()
    IMPORT_JOBS.labels(status).inc()


def _caller_keys(stored: dict[str, Any] | None) -> dict[str, Any]:
    # The counts are ours; any other key of the summary belongs to whoever drives the job
    # (the admin API keeps its own state there) and is kept as it is.
    counts = Summary().as_dict()
    return {key: value for key, value in (stored or {}).items() if key not in counts}


def _record_progress(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    job_pk: int,
    job_id: str,
    batch: int,
    batch_summary: Summary,
    summary: Summary,
    processed: int,
) -> None:
    running = Summary(**summary.as_dict())
    running.total += batch_summary.total
    for name in ("create", "update", "unchanged", "error"):
        setattr(running, name, getattr(running, name) + getattr(batch_summary, name))
    stored = session.scalar(select(ImportJob.summary).where(ImportJob.id == job_pk))
    session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_pk)
        .values(processed_rows=processed, summary={**_caller_keys(stored), **running.as_dict()})
    )
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="import.batch",
        target=f"import:{job_id}",
        details={"job_id": job_id, "batch": batch, **batch_summary.as_dict()},
    )


def _agency_id(
    session: Session,
    differ: Differ,
    unit_id: int,
    kind: str,
    new_agencies: list[tuple[int, str, int]],
) -> int:
    known = differ.agencies.get((unit_id, kind))
    if known is not None:
        return known
    for created_unit, created_kind, created_id in new_agencies:
        if (created_unit, created_kind) == (unit_id, kind):
            return created_id
    agency = Agency(unit_id=unit_id, kind=kind, name=AGENCY_KINDS[kind])
    session.add(agency)
    session.flush()
    new_agencies.append((unit_id, kind, agency.id))
    return agency.id


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def _write_batch(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    job_id: str,
    plans: list[RowPlan],
    differ: Differ,
    new_agencies: list[tuple[int, str, int]],
) -> list[activation.IssuedCode]:
    now = clock.now()
    creates = [plan for plan in plans if plan.action == CREATE]
    updates = [plan for plan in plans if plan.action == UPDATE]
    issued: list[activation.IssuedCode] = []
    if creates:
        account_rows = []
        for plan in creates:
            official = _official(plan)
            account_rows.append(
                {
                    "subject": secrets.token_hex(16),
                    "username": plan.username,
                    "full_name": official.full_name,
                    "email": official.email,
                    "email_verified": False,
                    "phone": official.phone,
                    "password_hash": None,
                    "status": "active",
                    "is_system_admin": False,
                    "created_at": now,
                    "updated_at": now,
                    "password_changed_at": None,
                }
            )
        # Core inserts on the tables, not the ORM's bulk insert: the ORM leaves out the keys whose
        # value is None and batches only runs of rows with the same keys, so a file where some
        # officials have an e-mail and some do not became thousands of tiny statements.
        # No RETURNING either: SQLite cannot promise RETURNING rows in parameter order, so
        # SQLAlchemy sends such an insert one row at a time. The new ids are read back by the
        # subjects, which are unique and indexed.
        accounts = _table(Account)
        session.execute(insert(accounts), account_rows)
        subjects = [str(row["subject"]) for row in account_rows]
        id_of: dict[str, int] = {
            subject: account_id
            for subject, account_id in session.execute(
                select(accounts.c.subject, accounts.c.id).where(accounts.c.subject.in_(subjects))
            )
        }
        ids = [id_of[subject] for subject in subjects]
        profile_rows = []
        code_rows = []
        for plan, account_id in zip(creates, ids, strict=True):
            official = _official(plan)
            plan.account_id = account_id
            unit_id = differ.units[official.unit_code].id
            profile_rows.append(
                {
                    "account_id": account_id,
                    "citizen_id": official.citizen_id,
                    "unit_id": unit_id,
                    "agency_id": _agency_id(
                        session, differ, unit_id, official.agency_kind, new_agencies
                    )
                    if official.agency_kind
                    else None,
                    "position": official.position,
                    "search_name": official_data.fold_for_search(official.full_name)[:200],
                    "version": 1,
                }
            )
            code, code_digest = activation.new_code(account_id=account_id)
            row = activation.code_row(account_id=account_id, code_digest=code_digest, now=now)
            code_rows.append(row)
            issued.append(
                activation.IssuedCode(
                    unit_code=official.unit_code,
                    username=str(plan.username),
                    full_name=official.full_name,
                    citizen_id=official.citizen_id,
                    code=code,
                    expires_at=row["expires_at"],
                    account_id=account_id,
                )
            )
        session.execute(insert(_table(AccountProfile)), profile_rows)
        session.execute(insert(_table(ActivationCode)), code_rows)
        for plan in creates:
            _record_account_change(
                session, clock=clock, actor=actor, job_id=job_id, plan=plan, action="account.create"
            )
    for plan in updates:
        _record_account_change(
            session, clock=clock, actor=actor, job_id=job_id, plan=plan, action="account.update"
        )
    if updates:
        _write_updates(
            session,
            now=now,
            actor=actor,
            job_id=job_id,
            plans=updates,
            differ=differ,
            new_agencies=new_agencies,
        )
    return issued


def _record_account_change(
    session: Session, *, clock: Clock, actor: str, job_id: str, plan: RowPlan, action: str
) -> None:
    """One entry per official, under the target the official's history reads
    (``account:<username>``): the batch entry alone left an imported official without one.
    Field names only: the values are personal data, and the account holds them."""
    details: dict[str, Any] = {"via": "import", "import": job_id}
    if plan.changes:
        details["fields"] = sorted(plan.changes)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action=action,
        target=f"account:{plan.username}",
        details=details,
    )


def _write_updates(
    session: Session,
    *,
    now: Any,
    actor: str,
    job_id: str,
    plans: list[RowPlan],
    differ: Differ,
    new_agencies: list[tuple[int, str, int]],
) -> None:
    """Only the changed fields are written; a move to another unit is an AccountMove."""
    account_updates: list[dict[str, Any]] = []
    profile_updates: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    for plan in plans:
        official = _official(plan)
        changes = plan.changes
        account_id = plan.account_id
        account_values: dict[str, Any] = {"id": account_id, "updated_at": now}
        for name in ("full_name", "email", "phone"):
            if name in changes:
                account_values[name] = changes[name][1]
        account_updates.append(account_values)
        profile_values: dict[str, Any] = {
            "account_id": account_id,
            "version": plan.profile_version + 1,
        }
        if "full_name" in changes:
            profile_values["search_name"] = official_data.fold_for_search(official.full_name)[:200]
        if "position" in changes:
            profile_values["position"] = official.position
        if "unit_code" in changes or "agency" in changes:
            unit_id = differ.units[official.unit_code].id
            profile_values["unit_id"] = unit_id
            # The agency follows the official: same kind in the new unit unless the file says.
            kind = official.agency_kind
            if kind is None:
                kind = _stored_agency_kind(session, differ, account_id)
            profile_values["agency_id"] = (
                _agency_id(session, differ, unit_id, kind, new_agencies) if kind else None
            )
        if "unit_code" in changes:
            old_code = changes["unit_code"][0]
            moves.append(
                {
                    "account_id": account_id,
                    "from_unit_id": differ.units[old_code].id if old_code else None,
                    "to_unit_id": differ.units[official.unit_code].id,
                    "reason": f"Bulk import {job_id}",
                    "at": now,
                    "actor": actor,
                }
            )
        profile_updates.append(profile_values)
    # ORM bulk UPDATE by primary key, grouped by the set of columns each row changes.
    for model, values in ((Account, account_updates), (AccountProfile, profile_updates)):
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for item in values:
            groups.setdefault(tuple(sorted(item)), []).append(item)
        for group in groups.values():
            session.execute(update(model), group)
    if moves:
        session.execute(insert(_table(AccountMove)), moves)


def _stored_agency_kind(session: Session, differ: Differ, account_id: int | None) -> str | None:
    agency_id = session.scalar(
        select(AccountProfile.agency_id).where(AccountProfile.account_id == account_id)
    )
    return differ.agency_kinds.get(agency_id) if agency_id is not None else None


def _official(plan: RowPlan) -> Official:
    assert plan.official is not None
    return plan.official
