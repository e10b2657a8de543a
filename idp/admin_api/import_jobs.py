"""Import jobs started through the admin API: the background run and what the job row keeps.

The work is exactly the CLI's: :func:`idp.bulk_import.plan.build_plan` for a dry run and
:func:`idp.bulk_import.apply.apply_file` otherwise (batches of one transaction each, progress in
the job row, resumable, keyed on the citizen ID). It runs in a thread of the serving process
(:class:`ImportRunner`, one import at a time per process, so a second upload waits as
``queued``); everything a caller asks about lives in the ``ImportJob`` row, so any worker or
host answers for any job.

The row's ``summary`` JSON holds the counts (written by ``apply_file``) and, under
:data:`API_KEY`, what only the API needs: when the run started, the per-row results (compressed)
once the run ends, and the sealed activation codes (:mod:`idp.admin_api.code_vault`). The
uploaded file is spooled under ``<var_dir>/admin-imports/<job_id>/`` until the job is done, so
that ``POST .../resume`` can finish an interrupted job on the same host; re-uploading the same
file anywhere also resumes it. It is removed only after the job's last commit (a crash in
between leaves it behind rather than losing what a resume needs), and the next upload on the
host removes what such a crash left (:func:`remove_leftover_spools`).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.db import transaction
from idp.admin_api import code_vault
from idp.admin_scope import AdminScope
from idp.bulk_import.apply import apply_file
from idp.bulk_import.plan import ACTIONS, RowPlan, build_plan
from idp.bulk_import.reading import ImportFile
from idp.models import ImportJob
from idp.official_data import neutralise_formula
from idp.runtime import IdpRuntime

log = logging.getLogger(__name__)

API_KEY = "api"
QUEUED, RUNNING, FINISHED, FAILED = "queued", "running", "finished", "failed"
RESULT_COLUMNS = ("line", "citizen_id", "username", "action", "field", "reason")
SPOOL_DIR_NAME = "admin-imports"
UPLOAD_NAME = "upload"
CODES_DIR_NAME = "codes"
# Jobs ended longer ago than this are not swept for forgotten codes (they were, when younger).
SWEEP_HORIZON_DAYS = 30
# A spool directory without a job row is an upload whose process died before the row was
# stored; a younger one may be an upload that another process on this host is receiving now.
ORPHAN_UPLOAD_SECONDS = 3600


def spool_dir(runtime: IdpRuntime, job_id: str) -> Path:
    return runtime.settings.var_dir / SPOOL_DIR_NAME / job_id


def server_secret(runtime: IdpRuntime) -> bytes:
    return runtime.server_secret


def api_state(job: ImportJob) -> dict[str, Any]:
    state = (job.summary or {}).get(API_KEY)
    return dict(state) if isinstance(state, dict) else {}


def set_api_state(job: ImportJob, state: Mapping[str, Any]) -> None:
    # A new dict: the JSON column is not mutation-tracked.
    job.summary = {**(job.summary or {}), API_KEY: dict(state)}


def public_status(job: ImportJob) -> str:
    """queued / running / done / failed: a finished job is ``done`` once its results are
    stored (a moment after ``apply_file`` marks it finished)."""
    if job.status == FINISHED:
        return "done" if api_state(job).get("concluded") else RUNNING
    if job.status in (QUEUED, RUNNING, FAILED):
        return job.status
    return FAILED


# --------------------------------------------------------------------------------------------
# Per-row results, kept compressed in the job row and rendered in the reader's language


def encode_results(rows: Iterable[RowPlan], file: ImportFile) -> str:
    # A refused row is reported as it was written, so the file's author can find it.
    given = {source.line: source for source in file.rows}

    def written(row: RowPlan, column: str) -> str:
        source = given.get(row.line)
        return source.get(column) if source is not None else ""

    compact = [
        {
            "l": row.line,
            "c": row.citizen_id or written(row, "citizen_id"),
            "u": row.username or "",
            # Name and unit code (n, uc), so the dry run's table says whom each row is about.
            "n": row.official.full_name if row.official else written(row, "full_name"),
            "uc": row.official.unit_code if row.official else written(row, "unit_code"),
            "a": row.action,
            "f": list(row.changes),
            "e": [
                [error.field or "", error.message, {k: str(v) for k, v in error.params.items()}]
                for error in row.errors
            ],
        }
        for row in rows
    ]
    packed = zlib.compress(json.dumps(compact, ensure_ascii=False).encode("utf-8"), 6)
    return base64.b64encode(packed).decode("ascii")


def decode_results(blob: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(zlib.decompress(base64.b64decode(blob)))
    return rows


def results_csv(blob: str | None, translate: Callable[[str], str]) -> bytes:
    """The per-row result file: UTF-8 with BOM (Excel then shows Vietnamese correctly), every
    cell through :func:`neutralise_formula` (the file's cells come from the uploaded file).

    Like ``import-users --json``, the columns, actions and field names are the file's own
    codes, for scripts; only the reasons are translated."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(RESULT_COLUMNS)
    for row in decode_results(blob) if blob else []:
        common = [str(row["l"]), row["c"], row["u"], row["a"]]
        if row["e"]:
            for field, message, params in row["e"]:
                writer.writerow(
                    [
                        neutralise_formula(cell)
                        for cell in [*common, field, _fill(translate, message, params)]
                    ]
                )
        else:
            changed = ", ".join(row["f"])
            writer.writerow([neutralise_formula(cell) for cell in [*common, changed, ""]])
    return ("\ufeff" + text.getvalue()).encode("utf-8")


def _fill(translate: Callable[[str], str], message: str, params: Mapping[str, str]) -> str:
    translated = translate(message)
    try:
        return translated % params if params else translated
    except (KeyError, ValueError, TypeError):
        return translated


def counts_of(job: ImportJob) -> dict[str, int]:
    summary = job.summary or {}
    counts = {action: int(summary.get(action, 0)) for action in ACTIONS}
    return {
        "create": counts["create"],
        "update": counts["update"],
        "unchanged": counts["unchanged"],
        "errors": counts["error"],
    }


# --------------------------------------------------------------------------------------------
# Activation codes: gathered from the CLI's per-unit files, sealed into the row, wiped


def _codes_in(directory: Path) -> code_vault.CodesByUnit:
    found: code_vault.CodesByUnit = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
        found[path.stem] = [row for row in rows[1:] if row]
    return found


def _seal_codes(
    runtime: IdpRuntime, job: ImportJob, state: dict[str, Any], new: code_vault.CodesByUnit
) -> None:
    if not any(new.values()):
        return
    codes: code_vault.CodesByUnit = {}
    secret = server_secret(runtime)
    previous = state.get("codes") or {}
    if previous.get("sealed"):
        try:
            codes = code_vault.open_sealed(
                previous["sealed"], server_secret=secret, job_id=job.job_id
            )
        except code_vault.VaultError:
            # The server secret changed since: those codes are lost either way (the officials
            # need new ones), the new ones must not be.
            log.error("sealed activation codes of import %s do not open", job.job_id)
    known = {(unit, row[0]) for unit, rows in codes.items() for row in rows if row}
    # A crash between the commit and the removal of the files would list a code twice.
    fresh = {
        unit: [row for row in rows if row and (unit, row[0]) not in known]
        for unit, rows in new.items()
    }
    code_vault.merge(codes, fresh)
    now = runtime.clock.now()
    state["codes"] = {
        "sealed": code_vault.seal(codes, server_secret=secret, job_id=job.job_id),
        "count": sum(len(rows) for rows in codes.values()),
        "available_until": (now + code_vault.DOWNLOAD_WINDOW).isoformat(),
    }


def codes_available_until(state: Mapping[str, Any]) -> datetime | None:
    codes = state.get("codes") or {}
    if not codes.get("sealed"):
        return None
    return datetime.fromisoformat(codes["available_until"]).astimezone(UTC)


def wipe_codes(state: dict[str, Any], *, reason: str, at: datetime, by: str | None = None) -> None:
    codes = state.get("codes") or {}
    state["codes"] = {"count": codes.get("count", 0), reason: at.isoformat()}
    if by:
        state["codes"]["by"] = by


def sweep_expired_codes(session: Session, *, now: datetime) -> int:
    """Wipe sealed codes whose download window has passed (nobody fetched them)."""
    horizon = now - code_vault.DOWNLOAD_WINDOW
    oldest = horizon - timedelta(days=SWEEP_HORIZON_DAYS)
    wiped = 0
    for job in session.scalars(
        select(ImportJob).where(ImportJob.finished_at < horizon, ImportJob.finished_at > oldest)
    ):
        state = api_state(job)
        until = codes_available_until(state)
        if until is not None and until <= now:
            wipe_codes(state, reason="expired_at", at=now)
            set_api_state(job, state)
            wiped += 1
    return wiped


def remove_leftover_spools(runtime: IdpRuntime, session: Session) -> int:
    """Remove the spool directories a crash left on this host, and count them: those
    of jobs already done (the process died between the job's last commit and the removal,
    leaving the uploaded file and perhaps plaintext codes) and uploads that never became a job.
    A failed, interrupted or running job keeps its file for ``resume``."""
    root = runtime.settings.var_dir / SPOOL_DIR_NAME
    try:
        directories = {entry.name: entry for entry in root.iterdir() if entry.is_dir()}
    except FileNotFoundError:
        return 0
    if not directories:
        return 0
    jobs = {
        job.job_id: job
        for job in session.scalars(select(ImportJob).where(ImportJob.job_id.in_(directories)))
    }
    removed = 0
    for name, directory in directories.items():
        job = jobs.get(name)
        if job is None:
            try:
                modified = directory.stat().st_mtime
            except FileNotFoundError:
                continue  # its own process removed it meanwhile (a refused upload)
            # A file's age is wall-clock time, whatever clock the service runs on.
            leftover = time.time() - modified > ORPHAN_UPLOAD_SECONDS
        else:
            leftover = public_status(job) == "done"
        if leftover:
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    if removed:
        log.warning("removed %d import spool directories left by an interrupted process", removed)
    return removed


# --------------------------------------------------------------------------------------------
# The background run


@dataclass(frozen=True)
class RunOrder:
    job_id: str
    file: ImportFile
    dry_run: bool
    actor: str
    reach: AdminScope


class ImportRunner:
    """One thread per serving process runs the API's imports in order of submission.

    A thread, not an asyncio task: the import code is synchronous and long (minutes for tens of
    thousands of rows), and the event loop must keep answering. A killed process leaves its
    job ``running`` with whole batches only; ``resume`` or a re-upload finishes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._active: set[str] = set()

    def is_active(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._active

    def submit(self, runtime: IdpRuntime, order: RunOrder) -> None:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import")
            self._active.add(order.job_id)
            self._executor.submit(self._run, runtime, order)

    def _run(self, runtime: IdpRuntime, order: RunOrder) -> None:
        try:
            run_job(runtime, order)
        except Exception:
            log.exception("import job %s could not record its end", order.job_id)
        finally:
            with self._lock:
                self._active.discard(order.job_id)


def run_job(runtime: IdpRuntime, order: RunOrder) -> None:
    factory, clock = runtime.session_factory, runtime.clock
    _mark_started(factory, clock, order)
    directory = spool_dir(runtime, order.job_id)
    try:
        if order.dry_run:
            rows = _dry_run(factory, clock, order)
        else:
            rows = apply_file(
                session_factory=factory,
                clock=clock,
                actor=order.actor,
                file=order.file,
                output_dir=directory / CODES_DIR_NAME,
                reach=order.reach,
                job_id=order.job_id,
                issuer=runtime.settings.issuer,
            ).rows
    except Exception:
        # The cause goes to the log; the job says "failed" and keeps what was committed.
        log.exception("import job %s failed", order.job_id)
        _conclude(runtime, order, rows=None, failed=True)
        return
    _conclude(runtime, order, rows=rows, failed=False)


def _mark_started(factory: sessionmaker[Session], clock: Clock, order: RunOrder) -> None:
    with transaction(factory) as session:
        job = session.scalar(select(ImportJob).where(ImportJob.job_id == order.job_id))
        if job is None:
            raise LookupError(order.job_id)
        state = api_state(job)
        state.pop("concluded", None)
        state.pop("results", None)
        state["started_at"] = clock.now().isoformat()
        set_api_state(job, state)
        if order.dry_run:
            job.status = RUNNING


def _dry_run(factory: sessionmaker[Session], clock: Clock, order: RunOrder) -> list[RowPlan]:
    def progress(done: int, total: int) -> None:
        with transaction(factory) as session:
            session.execute(
                update(ImportJob)
                .where(ImportJob.job_id == order.job_id)
                .values(processed_rows=done)
            )

    with transaction(factory) as session:
        plan = build_plan(
            session, order.file, today=clock.now().date(), reach=order.reach, on_progress=progress
        )
    return plan.rows


def _conclude(
    runtime: IdpRuntime, order: RunOrder, *, rows: list[RowPlan] | None, failed: bool
) -> None:
    directory = spool_dir(runtime, order.job_id)
    codes_dir = directory / CODES_DIR_NAME
    with transaction(runtime.session_factory) as session:
        job = session.scalar(select(ImportJob).where(ImportJob.job_id == order.job_id))
        if job is None:
            return
        state = api_state(job)
        _seal_codes(runtime, job, state, _codes_in(codes_dir))
        if rows is not None:
            state["results"] = encode_results(rows, order.file)
        state["concluded"] = True
        if failed:
            state["failure"] = "internal_error"
        else:
            state.pop("failure", None)
        set_api_state(job, state)
        if order.dry_run:
            job.status = FAILED if failed else FINISHED
            job.finished_at = runtime.clock.now()
            if rows is not None:
                job.processed_rows = len(rows)
                counts = {action: 0 for action in ACTIONS}
                for row in rows:
                    counts[row.action] += 1
                job.summary = {**job.summary, "total": len(rows), **counts}
        elif failed:
            job.status = FAILED
            job.finished_at = job.finished_at or runtime.clock.now()
    # Only after the commit: the sealed copy now stands in for the plaintext files.
    shutil.rmtree(codes_dir, ignore_errors=True)
    if not failed:
        shutil.rmtree(directory, ignore_errors=True)
