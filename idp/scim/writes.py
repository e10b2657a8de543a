"""The /Users resource, write side: create (RFC 7644 §3.3), replace (§3.5.1), modify (§3.5.2)
and delete (§3.6), within the provisioning client's reach.

Every request is validated in full before anything is written, so a refused request leaves the
official unchanged; the endpoint also rolls the transaction back on any SCIM error. Each change
is audited (actor ``client:<client_id>``) in the same transaction as the change itself.

Attribute names are case-insensitive (RFC 7643 §2.1). ``userName`` is stored lowercase and its
uniqueness ignores case (§4.1.1). A deleted official keeps the row and its history but is
invisible to SCIM and cannot log in; usernames and citizen IDs of deleted officials stay taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import DomainError
from idp import accounts, lifecycle, official_data, units
from idp.admin_scope import AdminScope
from idp.agencies import AGENCY_KINDS, agency_kind
from idp.bulk_import import plan as import_plan
from idp.models import Account, AccountMove, AccountProfile, Agency, Unit
from idp.passwords import PasswordHasher
from idp.scim.errors import Forbidden, InvalidSyntax, InvalidValue, Uniqueness
from idp.scim.schemas import CORE_USER_SCHEMA, OFFICIAL_SCHEMA
from idp.scim.users import Row

MAX_EXTERNAL_ID_LENGTH = 200  # AccountProfile.external_id

# Our field names (DomainError.field) -> the SCIM attribute a client sent.
ATTRIBUTE_OF_FIELD = {
    "username": "userName",
    "full_name": "name.formatted",
    "email": "emails",
    "phone": "phoneNumbers",
    "citizen_id": f"{OFFICIAL_SCHEMA}:citizenId",
    "unit_code": f"{OFFICIAL_SCHEMA}:unitCode",
    "agency": f"{OFFICIAL_SCHEMA}:agency",
    "position": f"{OFFICIAL_SCHEMA}:position",
}


@dataclass(frozen=True)
class Desired:
    """A User as the client wants it, validated and normalised."""

    username: str
    full_name: str
    email: str | None
    phone: str | None
    active: bool
    external_id: str | None
    unit: Unit
    agency: str | None  # as sent: an agency kind, or the name of an agency of the unit
    citizen_id: str | None
    position: str | None


def _get(mapping: Mapping[str, Any], name: str) -> Any:
    """Case-insensitive attribute lookup (RFC 7643 §2.1); None when absent."""
    wanted = name.lower()
    for key, value in mapping.items():
        if key.lower() == wanted:
            return value
    return None


def _invalid(attribute: str, message: str) -> InvalidValue:
    return InvalidValue(f"{attribute}: {message}")


def _from_domain(error: DomainError, default: str) -> InvalidValue:
    attribute = ATTRIBUTE_OF_FIELD.get(error.field or "", default)
    return _invalid(attribute, error.text())


def _string(value: Any, attribute: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(attribute, "must be a string.")
    return value.strip() or None


def _boolean(value: Any, attribute: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # some clients send booleans as strings
    raise _invalid(attribute, "must be true or false.")


def _chosen_value(value: Any, attribute: str) -> str | None:
    """The primary (else the first) ``value`` of a multi-valued attribute (RFC 7643 §2.4)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _invalid(attribute, "must be a list of objects with a 'value'.")
    if not value:
        return None
    primaries = [item for item in value if _get(item, "primary") is True]
    if len(primaries) > 1:
        raise _invalid(attribute, "at most one value can be primary.")
    chosen = primaries[0] if primaries else value[0]
    return _string(_get(chosen, "value"), f"{attribute}.value")


def _full_name(body: Mapping[str, Any]) -> str:
    name = _get(body, "name")
    if name is not None and not isinstance(name, dict):
        raise _invalid("name", "must be an object.")
    formatted = _string(_get(name, "formatted"), "name.formatted") if name else None
    if formatted is None and name:
        # Vietnamese order: family name, middle name, given name.
        parts = [
            _string(_get(name, part), f"name.{part}")
            for part in ("familyName", "middleName", "givenName")
        ]
        formatted = " ".join(part for part in parts if part) or None
    attribute = "name.formatted"
    if formatted is None:
        formatted = _string(_get(body, "displayName"), "displayName")
        attribute = "displayName"
    if formatted is None:
        raise _invalid(
            "name.formatted", "the full name (name.formatted or displayName) is required."
        )
    try:
        return official_data.normalise_full_name(formatted)
    except DomainError as error:
        raise _invalid(attribute, error.text()) from None


def _unit(session: Session, reach: AdminScope, code: str | None) -> Unit:
    attribute = f"{OFFICIAL_SCHEMA}:unitCode"
    if code is None:
        raise _invalid(attribute, "the unit code is required.")
    unit = units.find_by_code(session, code)
    if unit is None:
        raise _invalid(attribute, f"unknown unit code {code}.")
    if not reach.covers(unit):
        raise Forbidden(f"{attribute}: unit {code} is outside this client's reach.")
    if unit.status != "active":
        raise _invalid(attribute, f"unit {code} is {unit.status}; use the unit it became.")
    return unit


def parse(session: Session, body: Any, *, reach: AdminScope, today: date) -> Desired:
    """Validate a full User representation (POST or PUT body)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("The request body must be a JSON object (a User resource).")
    schemas = _get(body, "schemas")
    if not isinstance(schemas, list) or CORE_USER_SCHEMA not in schemas:
        raise InvalidSyntax(f"schemas: must list {CORE_USER_SCHEMA}.")
    username = _string(_get(body, "userName"), "userName")
    if username is None:
        raise _invalid("userName", "is required.")
    username = accounts.normalise_username(username)
    if not accounts.USERNAME_PATTERN.match(username):
        raise _invalid(
            "userName",
            "2 to 64 lowercase ASCII letters, digits, dots, hyphens or underscores.",
        )
    full_name = _full_name(body)
    email = _chosen_value(_get(body, "emails"), "emails")
    phone = _chosen_value(_get(body, "phoneNumbers"), "phoneNumbers")
    try:
        email = official_data.normalise_email(email) if email else None
        phone = official_data.normalise_phone(phone) if phone else None
    except DomainError as error:
        raise _from_domain(error, "emails") from None
    active_raw = _get(body, "active")
    active = True if active_raw is None else _boolean(active_raw, "active")
    external_id = _string(_get(body, "externalId"), "externalId")
    if external_id is not None and len(external_id) > MAX_EXTERNAL_ID_LENGTH:
        raise _invalid("externalId", "at most 200 characters.")
    extension = _get(body, OFFICIAL_SCHEMA)
    if extension is None:
        extension = {}
    if not isinstance(extension, dict):
        raise _invalid(OFFICIAL_SCHEMA, "must be an object.")
    unit = _unit(session, reach, _string(_get(extension, "unitCode"), "unitCode"))
    citizen_id = _string(_get(extension, "citizenId"), f"{OFFICIAL_SCHEMA}:citizenId")
    position = _string(_get(extension, "position"), f"{OFFICIAL_SCHEMA}:position")
    agency = _string(_get(extension, "agency"), f"{OFFICIAL_SCHEMA}:agency")
    try:
        if citizen_id is not None:
            citizen_id = official_data.normalise_citizen_id(citizen_id, today=today)
        if position is not None:
            position = " ".join(position.split())
            if len(position) > import_plan.MAX_POSITION_LENGTH:
                raise DomainError("A position is at most 200 characters long.", field="position")
    except DomainError as error:
        raise _from_domain(error, OFFICIAL_SCHEMA) from None
    return Desired(
        username=username,
        full_name=full_name,
        email=email,
        phone=phone,
        active=active,
        external_id=external_id,
        unit=unit,
        agency=agency,
        citizen_id=citizen_id,
        position=position,
    )


def _agency(session: Session, unit: Unit, raw: str | None) -> Agency | None:
    """The agency of ``unit`` named ``raw``, else the one of the kind ``raw`` names (created
    with its standard name when the unit has none yet)."""
    if raw is None:
        return None
    in_unit = list(session.scalars(select(Agency).where(Agency.unit_id == unit.id)))
    folded = official_data.fold_for_search(raw)
    for agency in in_unit:
        if official_data.fold_for_search(agency.name) == folded:
            return agency
    try:
        kind = agency_kind(raw)
    except DomainError as error:
        raise _from_domain(error, f"{OFFICIAL_SCHEMA}:agency") from None
    of_kind = [agency for agency in in_unit if agency.kind == kind]
    standard = [a for a in of_kind if a.name == AGENCY_KINDS[kind]]
    if standard or of_kind:
        return (standard or of_kind)[0]
    agency = Agency(unit_id=unit.id, kind=kind, name=AGENCY_KINDS[kind])
    session.add(agency)
    session.flush()
    return agency


def _check_unique(session: Session, desired: Desired, *, account_id: int | None) -> None:
    taken = session.scalar(
        select(Account.id).where(Account.username == desired.username, Account.id != account_id)
    )
    if taken is not None:
        raise Uniqueness(f"userName: {desired.username} is already taken.")
    if desired.citizen_id is not None:
        holder = session.scalar(
            select(AccountProfile.account_id).where(
                AccountProfile.citizen_id == desired.citizen_id,
                AccountProfile.account_id != account_id,
            )
        )
        if holder is not None:
            raise Uniqueness(f"{OFFICIAL_SCHEMA}:citizenId: already belongs to another official.")


def _flush(session: Session) -> None:
    """A concurrent request may have taken the username or citizen ID since we checked."""
    try:
        session.flush()
    except IntegrityError:
        raise Uniqueness("userName or citizenId is already taken.") from None


def create(
    *,
    session: Session,
    clock: Clock,
    passwords: PasswordHasher,
    actor: str,
    reach: AdminScope,
    body: Any,
) -> Row:
    """RFC 7644 §3.3. New officials get no password (they are given an activation code)."""
    desired = parse(session, body, reach=reach, today=clock.now().date())
    _check_unique(session, desired, account_id=None)
    agency = _agency(session, desired.unit, desired.agency)
    try:
        account = accounts.create(
            session=session,
            clock=clock,
            passwords=passwords,
            actor=actor,
            username=desired.username,
            full_name=desired.full_name,
        )
    except DomainError as error:
        raise _from_domain(error, "userName") from None
    account.email = desired.email
    account.phone = desired.phone
    account.status = "active" if desired.active else "disabled"
    profile = AccountProfile(
        account_id=account.id,
        citizen_id=desired.citizen_id,
        unit_id=desired.unit.id,
        agency_id=agency.id if agency else None,
        position=desired.position,
        search_name=official_data.fold_for_search(desired.full_name)[:200],
        external_id=desired.external_id,
        version=1,
    )
    session.add(profile)
    _flush(session)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="scim.user.create",
        target=f"account:{account.username}",
        details={
            "unit": desired.unit.code,
            "external_id": desired.external_id,
            "active": desired.active,
        },
    )
    return Row(account=account, profile=profile, unit=desired.unit, agency=agency)


def _move(
    session: Session, clock: Clock, *, actor: str, row: Row, target: Unit, reason: str
) -> None:
    session.add(
        AccountMove(
            account_id=row.account.id,
            from_unit_id=row.unit.id,
            to_unit_id=target.id,
            reason=reason,
            at=clock.now(),
            actor=actor,
        )
    )
    lifecycle.publish(
        session=session,
        clock=clock,
        kind=lifecycle.ACCOUNT_MOVED,
        subject=row.account.subject,
        payload={"from": row.unit.code, "to": target.code, "by": actor},
    )
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="account.move",
        target=f"account:{row.account.username}",
        details={"from": row.unit.code, "to": target.code, "reason": reason},
    )


def apply(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    row: Row,
    desired: Desired,
    operation: str,
) -> Row:
    """Make the official look like ``desired``; version and lastModified move only when
    something changed. ``operation`` (replace, patch) names the audit entry."""
    account, profile = row.account, row.profile
    _check_unique(session, desired, account_id=account.id)
    agency = _agency(session, desired.unit, desired.agency)
    changed: list[str] = []

    def put(obj: object, attribute: str, value: Any, label: str) -> None:
        if getattr(obj, attribute) != value:
            setattr(obj, attribute, value)
            changed.append(label)

    old_username = account.username
    put(account, "username", desired.username, "userName")
    put(account, "full_name", desired.full_name, "name")
    put(profile, "search_name", official_data.fold_for_search(desired.full_name)[:200], "name")
    put(account, "email", desired.email, "emails")
    put(account, "phone", desired.phone, "phoneNumbers")
    put(profile, "external_id", desired.external_id, "externalId")
    put(profile, "citizen_id", desired.citizen_id, "citizenId")
    put(profile, "position", desired.position, "position")
    put(profile, "agency_id", agency.id if agency else None, "agency")
    if desired.unit.id != row.unit.id:
        _move(
            session,
            clock,
            actor=actor,
            row=row,
            target=desired.unit,
            reason=f"SCIM {operation} by {actor}",
        )
        profile.unit_id = desired.unit.id
        changed.append("unitCode")
    if desired.active and account.status == "disabled":
        accounts.enable(session=session, clock=clock, actor=actor, account=account)
        changed.append("active")
    elif not desired.active and account.status != "disabled":
        accounts.disable(session=session, clock=clock, actor=actor, account=account)
        changed.append("active")
    if changed:
        profile.version += 1
        account.updated_at = clock.now()
        _flush(session)
        audit.record(
            session,
            clock=clock,
            actor=actor,
            action=f"scim.user.{operation}",
            target=f"account:{account.username}",
            details={
                "changed": sorted(set(changed)),
                **({"previous_username": old_username} if "userName" in changed else {}),
            },
        )
    return Row(account=account, profile=profile, unit=desired.unit, agency=agency)


def replace(
    *, session: Session, clock: Clock, actor: str, reach: AdminScope, row: Row, body: Any
) -> Row:
    """RFC 7644 §3.5.1: attributes not supplied are cleared (all ours may be, but the
    required userName, name and unitCode)."""
    desired = parse(session, body, reach=reach, today=clock.now().date())
    return apply(
        session=session, clock=clock, actor=actor, row=row, desired=desired, operation="replace"
    )


def delete(*, session: Session, clock: Clock, actor: str, row: Row) -> None:
    """RFC 7644 §3.6 (see PITFALLS): soft delete, then 404 for every SCIM request."""
    accounts.mark_deleted(
        session=session, clock=clock, actor=actor, account=row.account, profile=row.profile
    )
