"""Administrative units: the 34 provinces and 3,321 communes, wards and special zones.

Codes and names come from the ``vietnam-provinces`` package (the official lists in force since
1 July 2025). Units are never deleted: a reform renames, merges or dissolves them, each change is
a :class:`~idp.models.UnitEvent`, and officials attached to a merged unit move with a recorded
reason (:class:`~idp.models.AccountMove`).

Service functions take keyword-only arguments (CONVENTIONS §7) and never commit; each change
writes its audit entry into the same transaction.
"""

from __future__ import annotations

import importlib.metadata
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.clock import Clock
from core.db import is_postgresql, transaction
from core.errors import DomainError, NotFound, Phrase
from core.web.i18n import N_
from idp import lifecycle
from idp.labels import UNIT_STATUSES
from idp.models import (
    Account,
    AccountMove,
    AccountProfile,
    Agency,
    Unit,
    UnitEvent,
    UnitSource,
)
from idp.official_data import fold_for_search

LEVELS = ("province", "ward")
PACKAGE = "vietnam-provinces"
MAX_REASON_LENGTH = 300  # AccountMove.reason
MAX_NAME_LENGTH = 200  # Unit.name

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class PackageUnit:
    code: str
    level: str
    name: str
    division_type: str
    province_code: str


@dataclass(frozen=True)
class SyncResult:
    created: int
    renamed: int
    unchanged: int

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "renamed": self.renamed, "unchanged": self.unchanged}


def package_units() -> Iterator[PackageUnit]:
    """Every unit of the ``vietnam-provinces`` package, provinces first."""
    from vietnam_provinces import Province, Ward

    for province in Province.iter_all():
        code = f"{int(province.code):02d}"
        yield PackageUnit(
            code=code,
            level="province",
            name=province.name,
            division_type=province.division_type.value,
            province_code=code,
        )
    for ward in Ward.iter_all():
        yield PackageUnit(
            code=f"{int(ward.code):05d}",
            level="ward",
            name=ward.name,
            division_type=ward.division_type.value,
            province_code=f"{int(ward.province_code):02d}",
        )


def sync_from_package(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    source: Iterable[PackageUnit] | None = None,
) -> SyncResult:
    """Bring the unit table in line with the package: create missing units, restore names.

    Idempotent. One SELECT of every unit and bulk inserts: no query per unit. Status and
    merges made here are kept (a merged unit the package still lists stays merged). Loading
    the package itself (no ``source``) records its version, which start-ups compare with the
    installed one (:func:`load_package_if_changed`).
    """
    _lock_unit_loading(session)
    now = clock.now()
    existing = {unit.code: unit for unit in session.scalars(select(Unit))}
    new_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    renamed = unchanged = 0
    for item in source if source is not None else package_units():
        unit = existing.get(item.code)
        if unit is None:
            new_rows.append(
                {
                    "code": item.code,
                    "level": item.level,
                    "name": item.name,
                    "division_type": item.division_type,
                    "province_code": item.province_code,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            continue
        if unit.name == item.name and unit.division_type == item.division_type:
            unchanged += 1
            continue
        details: dict[str, Any] = {"old_name": unit.name, "new_name": item.name, "source": "sync"}
        if unit.division_type != item.division_type:
            details["old_division_type"] = unit.division_type
            details["new_division_type"] = item.division_type
        unit.name = item.name
        unit.division_type = item.division_type
        unit.updated_at = now
        events.append(_event_row(unit.id, "renamed", now, actor, details))
        renamed += 1
    if new_rows:
        created_ids = session.execute(insert(Unit).returning(Unit.id, Unit.code), new_rows)
        events.extend(
            _event_row(unit_id, "created", now, actor, {"code": code, "source": "sync"})
            for unit_id, code in created_ids
        )
    if events:
        session.execute(insert(UnitEvent), events)
    if source is None:
        _record_loaded_version(session, package_version(), now)
    result = SyncResult(created=len(new_rows), renamed=renamed, unchanged=unchanged)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="unit.sync",
        target="units:vietnam-provinces",
        details=result.as_dict(),
    )
    return result


def package_version() -> str:
    """The installed ``vietnam-provinces`` release: its data changes only with it."""
    return importlib.metadata.version(PACKAGE)


def loaded_version(session: Session) -> str | None:
    """The package version the unit table was last loaded from; None before the first load."""
    return session.scalar(select(UnitSource.version).where(UnitSource.package == PACKAGE))


def _record_loaded_version(session: Session, version: str, now: datetime) -> None:
    source = session.get(UnitSource, PACKAGE)
    if source is None:
        session.add(UnitSource(package=PACKAGE, version=version, loaded_at=now))
    else:
        source.version = version
        source.loaded_at = now


def _lock_unit_loading(session: Session) -> None:
    """One loader at a time, until this transaction ends: instances starting together on one
    database would otherwise all find the table empty and insert the same codes.

    PostgreSQL: a table lock that conflicts only with itself and with writes to the version
    row (plain reads go on). SQLite: ``FOR UPDATE`` makes :mod:`core.db` take the database's
    write lock (``BEGIN IMMEDIATE``) before the version is read.
    """
    if is_postgresql(session):
        session.execute(text("LOCK TABLE idp_unit_source IN SHARE ROW EXCLUSIVE MODE"))
    else:
        session.execute(select(UnitSource.version).with_for_update())


def load_package_if_changed(
    *, session_factory: sessionmaker[Session], clock: Clock, actor: str
) -> SyncResult | None:
    """Load the units on a first start, refresh them when the package was updated since the
    last load (the same idempotent, audited :func:`sync_from_package` as ``unit sync``).

    None when there was nothing to do: the usual start, which costs one query. When several
    instances start together, the first loads and the others wait for it, then find the
    version recorded and do nothing.
    """
    version = package_version()
    with transaction(session_factory) as session:
        if loaded_version(session) == version:
            return None
    with transaction(session_factory) as session:
        _lock_unit_loading(session)
        if loaded_version(session) == version:
            return None  # another instance loaded it while this one waited for the lock
        return sync_from_package(session=session, clock=clock, actor=actor)


def _event_row(
    unit_id: int, kind: str, at: datetime, actor: str, details: dict[str, Any]
) -> dict[str, Any]:
    return {"unit_id": unit_id, "kind": kind, "at": at, "actor": actor, "details": details}


def find_by_code(session: Session, code: str) -> Unit | None:
    return session.scalar(select(Unit).where(Unit.code == code.strip()))


def names_by_code(session: Session, codes: Iterable[str]) -> dict[str, str]:
    """Unit code -> current name, for the codes that exist (one query)."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    return dict(session.execute(select(Unit.code, Unit.name).where(Unit.code.in_(wanted))).all())


def get_by_code(session: Session, code: str) -> Unit:
    unit = find_by_code(session, code)
    if unit is None:
        raise NotFound(N_("No unit with code %(unit_code)s."), unit_code=code)
    return unit


def count(session: Session, *, level: str | None = None) -> int:
    statement = select(func.count()).select_from(Unit)
    if level is not None:
        statement = statement.where(Unit.level == level)
    return session.scalar(statement) or 0


def list_units(
    session: Session,
    *,
    province_code: str | None = None,
    level: str | None = None,
    query: str | None = None,
    limit: int | None = 50,
) -> list[Unit]:
    """Units ordered by code; ``query`` matches names ignoring case and diacritics.

    The folded match runs in Python: at most 3,355 short names, and Unit has no folded column.
    """
    if level is not None and level not in LEVELS:
        # The codes themselves: they are what the CLI's --level option takes.
        raise DomainError(N_("The unit level is province or ward."), field="level")
    statement = select(Unit).order_by(Unit.code)
    if province_code is not None:
        statement = statement.where(Unit.province_code == province_code.strip())
    if level is not None:
        statement = statement.where(Unit.level == level)
    folded = fold_for_search(query) if query else ""
    if not folded:
        if limit is not None:
            statement = statement.limit(limit)
        return list(session.scalars(statement))
    found = [unit for unit in session.scalars(statement) if folded in fold_for_search(unit.name)]
    return found if limit is None else found[:limit]


def events_of(session: Session, unit: Unit) -> list[UnitEvent]:
    return list(
        session.scalars(
            select(UnitEvent).where(UnitEvent.unit_id == unit.id).order_by(UnitEvent.id)
        )
    )


def attached_account_count(session: Session, unit: Unit) -> int:
    """Officials whose profile points at ``unit`` (SCIM-deleted ones excluded)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(AccountProfile)
            .where(AccountProfile.unit_id == unit.id, AccountProfile.deleted_at.is_(None))
        )
        or 0
    )


def _clean_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise DomainError(N_("A reason is required."), field="reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise DomainError(N_("A reason is at most 300 characters long."), field="reason")
    return reason


def _require_active(unit: Unit, refusal: str) -> None:
    """``refusal``: a msgid with ``%(unit_code)s`` and ``%(status)s`` (the status's label)."""
    if unit.status != "active":
        status = Phrase(UNIT_STATUSES.get(unit.status, unit.status))
        raise DomainError(refusal, unit_code=unit.code, status=status)


def rename(
    *, session: Session, clock: Clock, actor: str, unit: Unit, new_name: str, reason: str
) -> None:
    """Record a new official name (a reform decision); the old one stays in the history."""
    reason = _clean_reason(reason)
    new_name = _SPACES.sub(" ", unicodedata.normalize("NFC", new_name)).strip()
    if not new_name:
        raise DomainError(N_("The new name is required."), field="name")
    if len(new_name) > MAX_NAME_LENGTH:
        raise DomainError(N_("A unit name is at most 200 characters long."), field="name")
    _require_active(
        unit,
        N_(
            "Unit %(unit_code)s is no longer active (%(status)s): only an active unit can be "
            "renamed."
        ),
    )
    if new_name == unit.name:
        raise DomainError(
            N_("Unit %(unit_code)s is already named %(name)s."),
            field="name",
            unit_code=unit.code,
            name=new_name,
        )
    now = clock.now()
    old_name = unit.name
    unit.name = new_name
    unit.updated_at = now
    details = {"old_name": old_name, "new_name": new_name, "reason": reason}
    session.add(UnitEvent(unit_id=unit.id, kind="renamed", at=now, actor=actor, details=details))
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="unit.rename",
        target=f"unit:{unit.code}",
        details=details,
    )


def merge(
    *, session: Session, clock: Clock, actor: str, source: Unit, target: Unit, reason: str
) -> int:
    """Merge ``source`` into ``target``: every official of ``source`` moves to ``target``.

    Each move is an AccountMove row with the reason and an audit entry; agencies of the
    source unit join the target (or are folded into the target's agency of the same kind and
    name). Merging a province also moves its wards under the target province. Returns the
    number of accounts moved.
    """
    reason = _clean_reason(reason)
    if source.id == target.id:
        raise DomainError(
            N_("Unit %(unit_code)s cannot be merged into itself."), unit_code=source.code
        )
    if source.level != target.level:
        # Two levels only, so the words say which is which without showing the stored codes.
        raise DomainError(
            N_(
                "Units %(source)s and %(target)s are not of the same level (one is a province, "
                "the other a commune or ward): only units of the same level can be merged."
            ),
            source=source.code,
            target=target.code,
        )
    if source.status == "merged":
        raise DomainError(
            N_("Unit %(unit_code)s is already merged into another unit."), unit_code=source.code
        )
    _require_active(
        source,
        N_(
            "Unit %(unit_code)s is no longer active (%(status)s): only an active unit can be "
            "merged."
        ),
    )
    _require_active(
        target,
        N_(
            "Unit %(unit_code)s is no longer active (%(status)s): a unit can only be merged "
            "into an active unit."
        ),
    )
    now = clock.now()

    agency_map = _merge_agencies(session, source=source, target=target)
    profiles = list(
        session.scalars(
            select(AccountProfile)
            .where(AccountProfile.unit_id == source.id)
            .order_by(AccountProfile.account_id)
        )
    )
    names: dict[int, tuple[str, str]] = {
        account_id: (username, subject)
        for account_id, username, subject in session.execute(
            select(Account.id, Account.username, Account.subject).where(
                Account.id.in_([p.account_id for p in profiles])
            )
        )
    }
    for profile in profiles:
        profile.unit_id = target.id
        if profile.agency_id in agency_map:
            profile.agency_id = agency_map[profile.agency_id]
        profile.version += 1
        session.add(
            AccountMove(
                account_id=profile.account_id,
                from_unit_id=source.id,
                to_unit_id=target.id,
                reason=reason,
                at=now,
                actor=actor,
            )
        )
        audit.record(
            session,
            clock=clock,
            actor=actor,
            action="account.move",
            target=f"account:{names[profile.account_id][0]}",
            details={"from_unit": source.code, "to_unit": target.code, "reason": reason},
        )
        lifecycle.publish(
            session=session,
            clock=clock,
            kind=lifecycle.ACCOUNT_MOVED,
            subject=names[profile.account_id][1],
            # The cause tells consumers (the CA) that the whole unit moved, not one official.
            payload={
                "from_unit": source.code,
                "to_unit": target.code,
                "reason": reason,
                "cause": "unit.merge",
            },
        )

    wards_moved = 0
    if source.level == "province":
        moved = session.execute(
            update(Unit)
            .where(Unit.level == "ward", Unit.province_code == source.code)
            .values(province_code=target.code, updated_at=now)
            .execution_options(synchronize_session="fetch")
        )
        wards_moved = moved.rowcount  # type: ignore[attr-defined]

    source.status = "merged"
    source.merged_into_id = target.id
    source.updated_at = target.updated_at = now
    details = {
        "from_unit": source.code,
        "to_unit": target.code,
        "reason": reason,
        "accounts_moved": len(profiles),
        "wards_moved": wards_moved,
    }
    session.add_all(
        [
            UnitEvent(unit_id=source.id, kind="merged", at=now, actor=actor, details=details),
            UnitEvent(
                unit_id=target.id,
                kind="merged",
                at=now,
                actor=actor,
                details={**details, "absorbed": source.code},
            ),
        ]
    )
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="unit.merge",
        target=f"unit:{source.code}",
        details=details,
    )
    return len(profiles)


def _merge_agencies(session: Session, *, source: Unit, target: Unit) -> dict[int, int]:
    """Give the source's agencies to the target; where the target has one of the same kind and
    name, map to it instead. Returns source agency id -> target agency id for the latter."""
    target_agencies = {
        (agency.kind, agency.name): agency.id
        for agency in session.scalars(select(Agency).where(Agency.unit_id == target.id))
    }
    mapping: dict[int, int] = {}
    for agency in session.scalars(select(Agency).where(Agency.unit_id == source.id)):
        twin = target_agencies.get((agency.kind, agency.name))
        if twin is None:
            agency.unit_id = target.id
        else:
            mapping[agency.id] = twin
    return mapping


def dissolve(*, session: Session, clock: Clock, actor: str, unit: Unit, reason: str) -> None:
    """Mark a unit dissolved. Refused while officials (or, for a province, wards) remain."""
    reason = _clean_reason(reason)
    _require_active(
        unit,
        N_(
            "Unit %(unit_code)s is no longer active (%(status)s): only an active unit can be "
            "dissolved."
        ),
    )
    attached = attached_account_count(session, unit)
    if attached:
        raise DomainError(
            N_(
                "Unit %(unit_code)s still has %(count)s account(s) attached: move them or merge "
                "the unit instead."
            ),
            unit_code=unit.code,
            count=attached,
        )
    if unit.level == "province":
        wards = session.scalar(
            select(func.count())
            .select_from(Unit)
            .where(Unit.province_code == unit.code, Unit.level == "ward", Unit.status == "active")
        )
        if wards:
            raise DomainError(
                N_(
                    "Province %(unit_code)s still has %(count)s active commune(s) or ward(s): "
                    "merge the province instead."
                ),
                unit_code=unit.code,
                count=wards,
            )
    now = clock.now()
    unit.status = "dissolved"
    unit.updated_at = now
    details = {"reason": reason}
    session.add(UnitEvent(unit_id=unit.id, kind="dissolved", at=now, actor=actor, details=details))
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="unit.dissolve",
        target=f"unit:{unit.code}",
        details=details,
    )


def unit_claims(session: Session, account: Account) -> dict[str, Any]:
    """Claims of the ``unit`` scope: where the official works. Absent values are omitted
    (OIDC Core §5.3.2: a claim without a value is left out, not sent as null)."""
    profile = session.get(AccountProfile, account.id)
    if profile is None:
        return {}
    claims: dict[str, Any] = {}
    unit = session.get(Unit, profile.unit_id) if profile.unit_id is not None else None
    if unit is not None:
        province = unit if unit.level == "province" else find_by_code(session, unit.province_code)
        claims["province_code"] = unit.province_code
        if province is not None:
            claims["province_name"] = province.name
        claims["unit_code"] = unit.code
        claims["unit_name"] = unit.name
    agency = session.get(Agency, profile.agency_id) if profile.agency_id is not None else None
    if agency is not None:
        claims["agency"] = agency.name
    if profile.position:
        claims["position"] = profile.position
    return claims


def directory_claims(session: Session, account: Account) -> dict[str, Any]:
    """The unit claims and the citizen ID (scope ``citizen_id``), when recorded; which of them
    a token carries is idp.claims.claims_for_scope's decision."""
    claims = unit_claims(session, account)
    profile = session.get(AccountProfile, account.id)
    if profile is not None and profile.citizen_id and profile.deleted_at is None:
        claims["citizen_id"] = profile.citizen_id
    return claims


def unit_as_dict(session: Session, unit: Unit) -> dict[str, Any]:
    merged_into = session.get(Unit, unit.merged_into_id) if unit.merged_into_id else None
    return {
        "code": unit.code,
        "level": unit.level,
        "name": unit.name,
        "division_type": unit.division_type,
        "province_code": unit.province_code,
        "status": unit.status,
        "merged_into": merged_into.code if merged_into is not None else None,
    }
