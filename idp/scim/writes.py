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

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import DomainError
from core.web.i18n import N_
from idp import accounts, lifecycle, official_data, units
from idp.admin_scope import AdminScope
from idp.agencies import AGENCY_KINDS, agency_kind
from idp.bulk_import import plan as import_plan
from idp.models import Account, AccountMove, AccountProfile, Agency, Unit
from idp.passwords import PasswordHasher
from idp.scim import attributes as scim_attributes
from idp.scim.errors import Forbidden, InvalidSyntax, InvalidValue, Uniqueness
from idp.scim.schemas import CORE_USER_SCHEMA, ENTERPRISE_SCHEMA, OFFICIAL_SCHEMA
from idp.scim.users import Row

MAX_EXTERNAL_ID_LENGTH = 200  # AccountProfile.external_id
MAX_DIRECTORY_CITIZEN_ID_LENGTH = 64  # AccountProfile.citizen_id

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
    full_name: str  # "" when the client sent no name (name and displayName are optional)
    email: str | None  # the primary (else first) e-mail, as its column holds it
    phone: str | None  # the primary (else first) phone, when it is a Vietnamese number
    active: bool
    external_id: str | None
    unit: Unit
    agency: str | None  # as sent: an agency kind, or the name of an agency of the unit
    citizen_id: str | None
    position: str | None
    # Client-owned attributes without a column of their own (idp.scim.attributes).
    attributes: dict[str, Any] = field(default_factory=dict)


_get = scim_attributes.get
_invalid = scim_attributes.invalid


def _from_domain(error: DomainError, default: str) -> InvalidValue:
    attribute = ATTRIBUTE_OF_FIELD.get(error.field or "", default)
    return _invalid(attribute, error.text())


def _string(value: Any, attribute: str) -> str | None:
    return scim_attributes.text(value, attribute)


def _boolean(value: Any, attribute: str) -> bool:
    return scim_attributes.boolean(value, attribute)


def directory_name(raw: str, attribute: str) -> str:
    """A name as a directory sends it: any printable Unicode (digits and parentheses too: HR
    systems write "Nguyễn Văn An (2)"), single spaces, at most 200 characters. The spreadsheet
    import keeps its stricter rule (official_data.normalise_full_name). A name starting with
    = + - @ is still refused: names end up in exported CSV files (OWASP CSV injection)."""
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if len(name) > official_data.MAX_FULL_NAME_LENGTH:
        raise _invalid(attribute, "at most 200 characters.")
    if official_data.is_formula_like(name):
        raise _invalid(attribute, "cannot start with =, +, - or @.")
    if any(unicodedata.category(char)[0] == "C" for char in name):
        raise _invalid(attribute, "must not contain control or format characters.")
    return name


def _names(body: Mapping[str, Any]) -> tuple[str, str | None, dict[str, str]]:
    """(full name, displayName, name as stored). The full name is name.formatted, else the parts in
    Vietnamese order (family, middle, given), else displayName, else "" (RFC 7643 §4.1.1: none
    of them is required). displayName is kept as sent, even with name parts beside it."""
    name = scim_attributes.object_value(_get(body, "name"), "name")
    parts = scim_attributes.name_parts(name)
    formatted = _string(_get(name, "formatted"), "name.formatted")
    if formatted is not None:
        formatted = parts["formatted"] = directory_name(formatted, "name.formatted")
    elif parts:
        ordered = [parts.get(part) for part in ("familyName", "middleName", "givenName")]
        joined = " ".join(part for part in ordered if part)
        formatted = directory_name(joined, "name") if joined else None
    display_name = _string(_get(body, "displayName"), "displayName")
    if display_name is not None:
        display_name = directory_name(display_name, "displayName")
    return formatted or display_name or "", display_name, parts


def _unit(session: Session, reach: AdminScope, code: str | None) -> Unit:
    """The unit named by unitCode; without one, the client's own unit when its reach is one
    unit or one province (Entra ID and Okta send no extension of ours)."""
    attribute = f"{OFFICIAL_SCHEMA}:unitCode"
    if code is None:
        code = _default_unit_code(session, reach)
        if code is None:
            raise _invalid(
                attribute, "the unit code is required (this client reaches several units)."
            )
    unit = units.find_by_code(session, code)
    if unit is None:
        raise _invalid(attribute, f"unknown unit code {code}.")
    if not reach.covers(unit):
        raise Forbidden(f"{attribute}: unit {code} is outside this client's reach.")
    if unit.status != "active":
        raise _invalid(attribute, f"unit {code} is {unit.status}; use the unit it became.")
    return unit


def _default_unit_code(session: Session, reach: AdminScope) -> str | None:
    if reach.system:
        return None
    if len(reach.unit_ids) == 1 and not reach.province_codes:
        unit = session.get(Unit, next(iter(reach.unit_ids)))
        return unit.code if unit else None
    if len(reach.province_codes) == 1 and not reach.unit_ids:
        return next(iter(reach.province_codes))  # the province's own unit has its code
    return None


def _directory_citizen_id(raw: str, *, today: date) -> str:
    """A CCCD normalised (spaces out) when it is one; any other value kept as the directory
    sent it. Refusing it would refuse the official's whole account, and with it sign-in to
    every shared app, over a field only certificates use: the certificate request checks it
    and says "profile incomplete" (ca_admin.profiles)."""
    try:
        return official_data.normalise_citizen_id(raw, today=today)
    except DomainError:
        kept = " ".join(raw.split())
        if not kept or len(kept) > MAX_DIRECTORY_CITIZEN_ID_LENGTH:
            raise _invalid(
                f"{OFFICIAL_SCHEMA}:citizenId",
                f"1 to {MAX_DIRECTORY_CITIZEN_ID_LENGTH} characters.",
            ) from None
        return kept


def _contacts(body: Mapping[str, Any], attributes: dict[str, Any]) -> tuple[str | None, str | None]:
    """Every e-mail and phone is kept as sent; the chosen (primary, else first) ones also go to
    their columns, normalised (a Vietnamese phone number in E.164). Another phone number stays
    in the list only (our SMS and claims are for Vietnamese numbers)."""
    email: str | None = None
    phone: str | None = None
    emails = attributes.get("emails") or []
    chosen_email = scim_attributes.chosen(emails)
    if chosen_email is not None and chosen_email.get("value"):
        try:
            email = official_data.normalise_email(chosen_email["value"])
        except DomainError as error:
            raise _invalid("emails.value", error.text()) from None
    phones = attributes.get("phoneNumbers") or []
    chosen_phone = scim_attributes.chosen(phones)
    if chosen_phone is not None and chosen_phone.get("value"):
        try:
            phone = official_data.normalise_phone(chosen_phone["value"])
        except DomainError:
            phone = None
    return email, phone


def _client_owned(body: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name in scim_attributes.SIMPLE:
        value = _string(_get(body, name), name)
        if value is not None:
            attributes[name] = value
    for name in scim_attributes.MULTI_VALUED:
        items = scim_attributes.multi_valued(_get(body, name), name)
        if items:
            attributes[name] = items
    enterprise = scim_attributes.enterprise(_get(body, ENTERPRISE_SCHEMA), ENTERPRISE_SCHEMA)
    if enterprise:
        attributes["enterprise"] = enterprise
    return attributes


def _username(body: Mapping[str, Any]) -> str:
    username = _string(_get(body, "userName"), "userName")
    if username is None:
        raise _invalid("userName", "is required.")
    try:
        return accounts.validate_username(username)
    except DomainError as error:
        raise _invalid("userName", error.text()) from None


def parse(session: Session, body: Any, *, reach: AdminScope, today: date) -> Desired:
    """Validate a full User representation (POST or PUT body). Only userName is required
    (RFC 7643 §4.1.1); the unit defaults to the client's own (see :func:`_unit`)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("The request body must be a JSON object (a User resource).")
    schemas = _get(body, "schemas")
    if not isinstance(schemas, list) or CORE_USER_SCHEMA not in schemas:
        raise InvalidSyntax(f"schemas: must list {CORE_USER_SCHEMA}.")
    username = _username(body)
    full_name, display_name, parts = _names(body)
    attributes = _client_owned(body)
    if display_name is not None:
        attributes["displayName"] = display_name
    if parts:
        attributes["name"] = parts
    email, phone = _contacts(body, attributes)
    active_raw = _get(body, "active")
    active = True if active_raw is None else _boolean(active_raw, "active")
    external_id = _string(_get(body, "externalId"), "externalId")
    if external_id is not None and len(external_id) > MAX_EXTERNAL_ID_LENGTH:
        raise _invalid("externalId", "at most 200 characters.")
    extension = scim_attributes.object_value(_get(body, OFFICIAL_SCHEMA), OFFICIAL_SCHEMA) or {}
    unit = _unit(session, reach, _string(_get(extension, "unitCode"), "unitCode"))
    citizen_id = _string(_get(extension, "citizenId"), f"{OFFICIAL_SCHEMA}:citizenId")
    position = _string(_get(extension, "position"), f"{OFFICIAL_SCHEMA}:position")
    agency = _string(_get(extension, "agency"), f"{OFFICIAL_SCHEMA}:agency")
    if citizen_id is not None:
        citizen_id = _directory_citizen_id(citizen_id, today=today)
    try:
        if position is not None:
            position = " ".join(position.split())
            if len(position) > import_plan.MAX_POSITION_LENGTH:
                raise DomainError(
                    N_("A position is at most 200 characters long."), field="position"
                )
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
        attributes=attributes,
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
    """RFC 7644 §3.3. New officials get no password (they are given an activation code).
    A userName already taken is 409 whatever else the body lacks (a client retrying a create
    learns the user exists before anything else)."""
    if isinstance(body, dict) and isinstance(_get(body, "userName"), str):
        username = _username(body)
        if session.scalar(select(Account.id).where(Account.username == username)) is not None:
            raise Uniqueness(f"userName: {username} is already taken.")
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
            full_name_required=False,
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
        scim_attributes=desired.attributes,
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
    for name in sorted(set(profile.scim_attributes or {}) | set(desired.attributes)):
        if (profile.scim_attributes or {}).get(name) != desired.attributes.get(name):
            changed.append(name)
    if profile.scim_attributes != desired.attributes:
        profile.scim_attributes = desired.attributes
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
    """RFC 7644 §3.5.1: attributes not supplied are cleared (all may be, but the required
    userName; a unit is always kept: without unitCode, the client's own)."""
    desired = parse(session, body, reach=reach, today=clock.now().date())
    return apply(
        session=session, clock=clock, actor=actor, row=row, desired=desired, operation="replace"
    )


def delete(*, session: Session, clock: Clock, actor: str, row: Row) -> None:
    """RFC 7644 §3.6 (see PITFALLS): soft delete, then 404 for every SCIM request."""
    accounts.mark_deleted(
        session=session, clock=clock, actor=actor, account=row.account, profile=row.profile
    )
