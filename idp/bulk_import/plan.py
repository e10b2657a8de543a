"""The plan of an import (the dry run): what each row of the file would do.

Each row is validated with :mod:`idp.official_data`, its unit resolved, duplicates inside the
file found, and then compared with the database keyed on the citizen ID
(``AccountProfile.citizen_id``): *create*, *update* (with the changed fields), *unchanged*, or
*error* (line, field, reason). The database is read in a few big queries: every unit and agency
and every username once, existing officials in chunks of :data:`LOOKUP_CHUNK` citizen IDs.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import DomainError
from core.web.i18n import N_
from idp import official_data
from idp.accounts import USERNAME_PATTERN
from idp.admin_scope import OUT_OF_SCOPE, AdminScope
from idp.agencies import AGENCY_KINDS, agency_kind
from idp.bulk_import.reading import ImportFile, SourceRow
from idp.models import Account, AccountProfile, Agency, Unit

LOOKUP_CHUNK = 1000
MAX_POSITION_LENGTH = 200  # AccountProfile.position
MAX_USERNAME_LENGTH = 64

_UNIT_CODE = re.compile(r"[0-9]{2}|[0-9]{5}")
_USERNAME_JUNK = re.compile(r"[^a-z0-9]+")

CREATE, UPDATE, UNCHANGED, ERROR = "create", "update", "unchanged", "error"
ACTIONS = (CREATE, UPDATE, UNCHANGED, ERROR)
# Fields compared with the database, in the order they are reported.
COMPARED_FIELDS = ("full_name", "email", "phone", "unit_code", "agency", "position")


@dataclass(frozen=True, slots=True)
class RowError:
    """Why a row is refused. ``message`` is an English msgid; translate it, then fill ``params``."""

    line: int
    field: str | None
    message: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def text(self, translate: Callable[[str], str] = str) -> str:
        translated = translate(self.message)
        return translated % self.params if self.params else translated

    def as_dict(self, translate: Callable[[str], str] = str) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.text(translate)}


@dataclass(slots=True)
class Official:
    """A row that passed validation, with canonical values (None: the cell was empty)."""

    line: int
    citizen_id: str
    full_name: str
    username: str | None
    email: str | None
    phone: str | None
    unit_code: str
    agency_kind: str | None
    position: str | None


@dataclass(slots=True)
class RowPlan:
    line: int
    action: str
    citizen_id: str | None = None
    username: str | None = None
    account_id: int | None = None
    # field -> (stored value, value from the file), only for "update"
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    official: Official | None = None
    profile_version: int = 1

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"line": self.line, "action": self.action}
        if self.citizen_id:
            data["citizen_id"] = self.citizen_id
        if self.username:
            data["username"] = self.username
        if self.changes:
            data["changes"] = {
                name: {"old": old, "new": new} for name, (old, new) in self.changes.items()
            }
        if self.errors:
            data["errors"] = [error.as_dict() for error in self.errors]
        return data


@dataclass
class Summary:
    total: int = 0
    create: int = 0
    update: int = 0
    unchanged: int = 0
    error: int = 0

    def add(self, plans: Iterable[RowPlan]) -> None:
        for plan in plans:
            self.total += 1
            setattr(self, plan.action, getattr(self, plan.action) + 1)

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "create": self.create,
            "update": self.update,
            "unchanged": self.unchanged,
            "error": self.error,
        }


@dataclass
class Plan:
    file: ImportFile
    rows: list[RowPlan]

    @property
    def summary(self) -> Summary:
        summary = Summary()
        summary.add(self.rows)
        return summary

    @property
    def errors(self) -> list[RowError]:
        return [error for row in self.rows for error in row.errors]


OFFICIAL_OUT_OF_SCOPE = N_(
    "This citizen ID belongs to an official of a unit you do not administer."
)


@dataclass(frozen=True, slots=True)
class UnitRef:
    id: int
    code: str
    status: str
    merged_into: str | None
    province_code: str


def validate_rows(
    rows: Sequence[SourceRow],
    *,
    units: Mapping[str, UnitRef],
    today: date,
    reach: AdminScope | None = None,
) -> list[Official | RowPlan]:
    """Validate every row alone, then refuse every row of a citizen ID (or username) that
    appears more than once in the file. Returns an :class:`Official` or an error plan per row."""
    checked = [_validate_row(row, units=units, today=today, reach=reach) for row in rows]
    _refuse_duplicates(checked, key="citizen_id")
    _refuse_duplicates(checked, key="username")
    return checked


def _validate_row(
    row: SourceRow, *, units: Mapping[str, UnitRef], today: date, reach: AdminScope | None
) -> Official | RowPlan:
    errors: list[RowError] = []
    line = row.line

    def check(name: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except DomainError as error:
            errors.append(RowError(line, error.field or name, error.message, error.params))
            return None

    if row.extra_cells:
        errors.append(RowError(line, None, N_("This line has more cells than the header.")))
    citizen_id = check(
        "citizen_id", official_data.normalise_citizen_id, row.get("citizen_id"), today=today
    )
    full_name = check("full_name", official_data.normalise_full_name, row.get("full_name"))
    username = (
        check("username", _check_username, row.get("username")) if row.get("username") else None
    )
    email = (
        check("email", official_data.normalise_email, row.get("email"))
        if row.get("email")
        else None
    )
    phone = (
        check("phone", official_data.normalise_phone, row.get("phone"))
        if row.get("phone")
        else None
    )
    unit_code = check("unit_code", _check_unit, row.get("unit_code"), units, reach)
    agency = check("agency", agency_kind, row.get("agency")) if row.get("agency") else None
    position = (
        check("position", _check_position, row.get("position")) if row.get("position") else None
    )
    if errors:
        return RowPlan(line=line, action=ERROR, citizen_id=citizen_id, errors=errors)
    return Official(
        line=line,
        citizen_id=citizen_id,
        full_name=full_name,
        username=username,
        email=email,
        phone=phone,
        unit_code=unit_code,
        agency_kind=agency,
        position=position,
    )


def _check_username(raw: str) -> str:
    username = raw.strip().lower()
    if not USERNAME_PATTERN.match(username):
        raise DomainError(
            N_("A username is 2 to 64 lowercase letters, digits, dots, hyphens or underscores."),
            field="username",
        )
    return username


def _check_unit(raw: str, units: Mapping[str, UnitRef], reach: AdminScope | None) -> str:
    if not raw:
        raise DomainError(N_("The unit code is required."), field="unit_code")
    if not _UNIT_CODE.fullmatch(raw):
        raise DomainError(
            N_(
                "A unit code is 5 digits (commune, ward, special zone) or 2 digits (province), "
                "with its leading zeros (format the column as text); %(code)s given."
            ),
            field="unit_code",
            code=raw,
        )
    unit = units.get(raw)
    if unit is None:
        raise DomainError(N_("Unknown unit code %(code)s."), field="unit_code", code=raw)
    if unit.status == "merged":
        raise DomainError(
            N_("Unit %(code)s was merged into unit %(target)s; use the new code."),
            field="unit_code",
            code=raw,
            target=unit.merged_into or "?",
        )
    if unit.status != "active":
        raise DomainError(
            N_("Unit %(code)s is %(status)s."), field="unit_code", code=raw, status=unit.status
        )
    if reach is not None and not reach.covers(unit):
        raise DomainError(OUT_OF_SCOPE, field="unit_code", code=raw)
    return raw


def _check_position(raw: str) -> str:
    position = " ".join(raw.split())
    if len(position) > MAX_POSITION_LENGTH:
        raise DomainError(N_("A position is at most 200 characters long."), field="position")
    return position


def _refuse_duplicates(checked: list[Official | RowPlan], *, key: str) -> None:
    lines: dict[str, list[int]] = defaultdict(list)
    for item in checked:
        value = getattr(item, key) if isinstance(item, Official) else None
        if value:
            lines[value].append(item.line)
    repeated = {value: found for value, found in lines.items() if len(found) > 1}
    if not repeated:
        return
    message = (
        N_("The citizen ID %(value)s appears on several lines: %(lines)s.")
        if key == "citizen_id"
        else N_("The username %(value)s appears on several lines: %(lines)s.")
    )
    for index, item in enumerate(checked):
        value = getattr(item, key) if isinstance(item, Official) else None
        if value in repeated:
            assert isinstance(item, Official)
            listed = ", ".join(str(n) for n in repeated[value])
            checked[index] = RowPlan(
                line=item.line,
                action=ERROR,
                citizen_id=item.citizen_id,
                errors=[RowError(item.line, key, message, {"value": value, "lines": listed})],
            )


def load_units(session: Session) -> dict[str, UnitRef]:
    rows = session.execute(
        select(Unit.id, Unit.code, Unit.status, Unit.merged_into_id, Unit.province_code)
    ).all()
    codes = {row.id: row.code for row in rows}
    return {
        row.code: UnitRef(
            row.id,
            row.code,
            row.status,
            codes.get(row.merged_into_id) if row.merged_into_id else None,
            row.province_code,
        )
        for row in rows
    }


@dataclass(slots=True)
class _Stored:
    account_id: int
    username: str
    full_name: str
    email: str | None
    phone: str | None
    unit_id: int | None
    agency_id: int | None
    position: str | None
    deleted_at: datetime | None
    version: int


class Differ:
    """Compares validated rows with the database; keeps what it learnt between batches
    (units, agencies, usernames taken) so that each batch costs one query per chunk."""

    def __init__(
        self,
        session: Session,
        *,
        reserved_usernames: Iterable[str] = (),
        reach: AdminScope | None = None,
    ) -> None:
        self.reach = reach
        self.units = load_units(session)
        self.unit_codes = {unit.id: code for code, unit in self.units.items()}
        self.agencies: dict[tuple[int, str], int] = {}
        self.agency_kinds: dict[int, str] = {}
        for agency in session.execute(select(Agency.id, Agency.unit_id, Agency.kind, Agency.name)):
            self.agency_kinds[agency.id] = agency.kind
            if (
                agency.name == AGENCY_KINDS.get(agency.kind)
                or (agency.unit_id, agency.kind) not in self.agencies
            ):
                self.agencies[(agency.unit_id, agency.kind)] = agency.id
        self.taken_usernames = set(session.scalars(select(Account.username)))
        # Usernames that rows of the file ask for: never generated for another row.
        self.reserved_usernames = set(reserved_usernames)

    def _reaches(self, unit_id: int | None) -> bool:
        assert self.reach is not None
        unit = self.units.get(self.unit_codes.get(unit_id, "")) if unit_id is not None else None
        return self.reach.system if unit is None else self.reach.covers(unit)

    def register_agency(self, unit_id: int, kind: str, agency_id: int) -> None:
        self.agencies[(unit_id, kind)] = agency_id
        self.agency_kinds[agency_id] = kind

    def diff(self, session: Session, items: Sequence[Official | RowPlan]) -> list[RowPlan]:
        officials = [item for item in items if isinstance(item, Official)]
        stored: dict[str, _Stored] = {}
        citizen_ids = [official.citizen_id for official in officials]
        for start in range(0, len(citizen_ids), LOOKUP_CHUNK):
            chunk = citizen_ids[start : start + LOOKUP_CHUNK]
            query = (
                select(
                    AccountProfile.citizen_id,
                    Account.id,
                    Account.username,
                    Account.full_name,
                    Account.email,
                    Account.phone,
                    AccountProfile.unit_id,
                    AccountProfile.agency_id,
                    AccountProfile.position,
                    AccountProfile.deleted_at,
                    AccountProfile.version,
                )
                .join(Account, Account.id == AccountProfile.account_id)
                .where(AccountProfile.citizen_id.in_(chunk))
            )
            for row in session.execute(query):
                stored[str(row[0])] = _Stored(*row[1:])
        plans: list[RowPlan] = []
        for item in items:
            if isinstance(item, RowPlan):
                plans.append(item)
            else:
                plans.append(self._diff_one(item, stored.get(item.citizen_id)))
        return plans

    def _diff_one(self, official: Official, stored: _Stored | None) -> RowPlan:
        if stored is None:
            return self._plan_create(official)
        if self.reach is not None and not self._reaches(stored.unit_id):
            # The same answer whether or not the official exists elsewhere would be ideal,
            # but the row must be refused: the citizen ID is taken by an official out of reach.
            return RowPlan(
                line=official.line,
                action=ERROR,
                citizen_id=official.citizen_id,
                errors=[RowError(official.line, "citizen_id", OFFICIAL_OUT_OF_SCOPE, {})],
            )
        plan = RowPlan(
            line=official.line,
            action=UNCHANGED,
            citizen_id=official.citizen_id,
            username=stored.username,
            account_id=stored.account_id,
            official=official,
            profile_version=stored.version,
        )
        if stored.deleted_at is not None:
            plan.action = ERROR
            plan.errors.append(
                RowError(
                    official.line,
                    "citizen_id",
                    N_(
                        "The account %(username)s with this citizen ID was deleted; "
                        "restore it first."
                    ),
                    {"username": stored.username},
                )
            )
            return plan
        if official.username is not None and official.username != stored.username:
            plan.action = ERROR
            plan.errors.append(
                RowError(
                    official.line,
                    "username",
                    N_(
                        "This citizen ID already has the username %(username)s; "
                        "an import cannot change a username."
                    ),
                    {"username": stored.username},
                )
            )
            return plan
        old_unit = self.unit_codes.get(stored.unit_id) if stored.unit_id is not None else None
        old_agency = (
            self.agency_kinds.get(stored.agency_id) if stored.agency_id is not None else None
        )
        candidates = {
            "full_name": (stored.full_name, official.full_name),
            "email": (stored.email, official.email),
            "phone": (stored.phone, official.phone),
            "unit_code": (old_unit, official.unit_code),
            "agency": (old_agency, official.agency_kind),
            "position": (stored.position, official.position),
        }
        for name in COMPARED_FIELDS:
            old, new = candidates[name]
            # An empty optional cell leaves the stored value alone (a missing column is no order
            # to erase); the required ones (name, unit) are never empty here.
            if new is not None and new != old:
                plan.changes[name] = (old, new)
        if plan.changes:
            plan.action = UPDATE
        return plan

    def _plan_create(self, official: Official) -> RowPlan:
        plan = RowPlan(
            line=official.line,
            action=CREATE,
            citizen_id=official.citizen_id,
            official=official,
        )
        if official.username is not None:
            if official.username in self.taken_usernames:
                plan.action = ERROR
                plan.errors.append(
                    RowError(
                        official.line,
                        "username",
                        N_("The username %(username)s is already taken."),
                        {"username": official.username},
                    )
                )
                return plan
            plan.username = official.username
        else:
            plan.username = self.generate_username(official.full_name)
        self.taken_usernames.add(plan.username)
        return plan

    def generate_username(self, full_name: str) -> str:
        """ "Nguyễn Văn An" -> "nguyen.van.an", then "nguyen.van.an2", "nguyen.van.an3", ..."""
        base = ".".join(
            part for part in _USERNAME_JUNK.split(official_data.fold_for_search(full_name)) if part
        )
        base = (base or "official")[: MAX_USERNAME_LENGTH - 6].strip(".")
        if len(base) < 2:
            base = f"{base}.official" if base else "official"
        candidate, number = base, 1
        while candidate in self.taken_usernames or candidate in self.reserved_usernames:
            number += 1
            candidate = f"{base}{number}"
        return candidate


def build_plan(
    session: Session,
    file: ImportFile,
    *,
    today: date,
    reach: AdminScope | None = None,
    chunk: int = LOOKUP_CHUNK,
    on_progress: Callable[[int, int], None] | None = None,
) -> Plan:
    """The dry run: what importing ``file`` would do now, without changing anything."""
    differ = Differ(session, reserved_usernames=explicit_usernames(file), reach=reach)
    checked = validate_rows(file.rows, units=differ.units, today=today, reach=reach)
    rows: list[RowPlan] = []
    for start in range(0, len(checked), chunk):
        rows.extend(differ.diff(session, checked[start : start + chunk]))
        if on_progress is not None:
            on_progress(len(rows), len(checked))
    return Plan(file=file, rows=rows)


def explicit_usernames(file: ImportFile) -> set[str]:
    # Generated usernames must not take a name that a later row of the file asks for.
    return {row.get("username").lower() for row in file.rows if row.get("username")}
