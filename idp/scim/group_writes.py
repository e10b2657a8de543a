"""The /Groups resource, write side: create (RFC 7644 §3.3), replace (§3.5.1), modify (§3.5.2,
through :func:`idp.scim.patching.apply_group_operations`) and delete (§3.6).

Rules (decided here, documented in the README's SCIM section):

* A group belongs to one unit, given as our extension's ``unitCode`` on creation (a client
  whose reach is a single unit may leave it out) and immutable afterwards. The client must
  reach that unit (403 otherwise, as for Users).
* Members are Users only (no nested groups) and must be live officials of the group's unit
  (the ward itself, or any ward of a province group) that the client reaches. Anything else is
  400 ``invalidValue`` with the same words whether the official exists or not: no leak.
* Writes act on the members the client can see; members it cannot see (moved out of its
  reach) stay as they are.
* ``displayName`` is unique within a unit, ignoring case and diacritics (409 ``uniqueness``).
* DELETE really deletes (§3.6): the group row and its memberships go, the audit log keeps who
  deleted what, with the group's name, unit and member count.

Every write is validated in full before anything changes and audited (actor
``client:<client_id>``) in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from idp import official_data, units
from idp.admin_scope import AdminScope
from idp.models import Account, AccountProfile, Group, GroupMember, Unit
from idp.scim.errors import Forbidden, InvalidSyntax, InvalidValue, Mutability, Uniqueness
from idp.scim.groups import GroupRow, Member, members_in_reach
from idp.scim.schemas import CORE_GROUP_SCHEMA, OFFICIAL_GROUP_SCHEMA

MAX_NAME_LENGTH = 200
MAX_MEMBERS = 10_000


@dataclass(frozen=True)
class DesiredGroup:
    display_name: str
    external_id: str | None
    unit: Unit
    members: dict[str, int]  # subject -> account id, the visible members wanted


def _get(mapping: Mapping[str, Any], name: str) -> Any:
    wanted = name.lower()
    return next((value for key, value in mapping.items() if key.lower() == wanted), None)


def _string(value: Any, attribute: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"{attribute}: must be a string.")
    return " ".join(value.split()) or None


def _default_unit(session: Session, reach: AdminScope) -> Unit:
    """The client's only unit, when it has exactly one."""
    if len(reach.unit_ids) + len(reach.province_codes) != 1:
        raise InvalidValue(f"{OFFICIAL_GROUP_SCHEMA}:unitCode: the group's unit is required.")
    if reach.unit_ids:
        (unit_id,) = reach.unit_ids
        unit = session.get(Unit, unit_id)
    else:
        (code,) = reach.province_codes
        unit = session.scalar(select(Unit).where(Unit.level == "province", Unit.code == code))
    if unit is None:
        raise InvalidValue(f"{OFFICIAL_GROUP_SCHEMA}:unitCode: the group's unit is required.")
    return unit


def _unit(
    session: Session, reach: AdminScope, body: Mapping[str, Any], current: Unit | None
) -> Unit:
    attribute = f"{OFFICIAL_GROUP_SCHEMA}:unitCode"
    extension = _get(body, OFFICIAL_GROUP_SCHEMA)
    if extension is not None and not isinstance(extension, dict):
        raise InvalidValue(f"{OFFICIAL_GROUP_SCHEMA}: must be an object.")
    code = _string(_get(extension or {}, "unitCode"), attribute)
    if current is not None:
        if code is not None and code != current.code:
            raise Mutability(f"{attribute}: a group's unit cannot change.")
        return current
    if code is None:
        return _default_unit(session, reach)
    unit = units.find_by_code(session, code)
    if unit is None:
        raise InvalidValue(f"{attribute}: unknown unit code {code}.")
    if not reach.covers(unit):
        raise Forbidden(f"{attribute}: unit {code} is outside this client's reach.")
    if unit.status != "active":
        raise InvalidValue(f"{attribute}: unit {code} is {unit.status}.")
    return unit


def resolve_members(
    session: Session, reach: AdminScope, unit: Unit, values: list[str]
) -> dict[str, int]:
    """Subjects of live officials of ``unit`` (or of its province's wards) in reach."""
    if not values:
        return {}
    within = (
        Unit.province_code == unit.province_code if unit.level == "province" else Unit.id == unit.id
    )
    found = dict(
        session.execute(
            select(Account.subject, Account.id)
            .join(AccountProfile, AccountProfile.account_id == Account.id)
            .join(Unit, Unit.id == AccountProfile.unit_id)
            .where(
                Account.subject.in_(sorted(set(values))),
                AccountProfile.deleted_at.is_(None),
                reach.units_clause(),
                within,
            )
        ).all()
    )
    for value in values:
        if value not in found:
            raise InvalidValue(
                f"members: '{value}' is not an official of unit {unit.code} "
                "that this client can manage."
            )
    return found


def member_values(value: Any) -> list[str]:
    """The ``value`` of each member object (RFC 7643 §4.2); only Users may be members."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidValue("members: must be a list of objects with a 'value'.")
    if len(value) > MAX_MEMBERS:
        raise InvalidValue(f"members: at most {MAX_MEMBERS} per request.")
    values = []
    for item in value:
        kind = _get(item, "type")
        if kind is not None and (not isinstance(kind, str) or kind.lower() != "user"):
            raise InvalidValue("members: only Users can be members (no nested groups).")
        subject = _get(item, "value")
        if not isinstance(subject, str) or not subject:
            raise InvalidValue("members: each member needs a 'value' (the User's id).")
        values.append(subject)
    return values


def parse(
    session: Session, body: Any, *, reach: AdminScope, current: GroupRow | None
) -> DesiredGroup:
    """Validate a full Group representation (POST or PUT body, or a patched document)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("The request body must be a JSON object (a Group resource).")
    schemas = _get(body, "schemas")
    if not isinstance(schemas, list) or CORE_GROUP_SCHEMA not in schemas:
        raise InvalidSyntax(f"schemas: must list {CORE_GROUP_SCHEMA}.")
    display_name = _string(_get(body, "displayName"), "displayName")
    if display_name is None:
        raise InvalidValue("displayName: is required.")
    if len(display_name) > MAX_NAME_LENGTH:
        raise InvalidValue(f"displayName: at most {MAX_NAME_LENGTH} characters.")
    external_id = _string(_get(body, "externalId"), "externalId")
    if external_id is not None and len(external_id) > MAX_NAME_LENGTH:
        raise InvalidValue(f"externalId: at most {MAX_NAME_LENGTH} characters.")
    unit = _unit(session, reach, body, current.unit if current else None)
    members = resolve_members(session, reach, unit, member_values(_get(body, "members")))
    return DesiredGroup(
        display_name=display_name, external_id=external_id, unit=unit, members=members
    )


def _check_unique(session: Session, desired: DesiredGroup, *, group_id: int | None) -> None:
    taken = session.scalar(
        select(Group.id).where(
            Group.unit_id == desired.unit.id,
            Group.search_name == official_data.fold_for_search(desired.display_name)[:200],
            Group.id != (group_id or 0),
        )
    )
    if taken is not None:
        raise Uniqueness(f"displayName: unit {desired.unit.code} already has a group of that name.")


def _target(group: Group) -> str:
    return f"group:{group.scim_id}"


def create(*, session: Session, clock: Clock, actor: str, reach: AdminScope, body: Any) -> GroupRow:
    desired = parse(session, body, reach=reach, current=None)
    _check_unique(session, desired, group_id=None)
    now = clock.now()
    group = Group(
        scim_id=str(uuid.uuid4()),
        display_name=desired.display_name,
        search_name=official_data.fold_for_search(desired.display_name)[:200],
        unit_id=desired.unit.id,
        external_id=desired.external_id,
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(group)
    session.flush()
    session.add_all(
        GroupMember(group_id=group.id, account_id=account_id)
        for account_id in desired.members.values()
    )
    session.flush()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="scim.group.create",
        target=_target(group),
        details={
            "display_name": desired.display_name,
            "unit": desired.unit.code,
            "external_id": desired.external_id,
            "members_added": sorted(desired.members),
        },
    )
    members = members_in_reach(session, reach, [group.id]).get(group.id, [])
    return GroupRow(group=group, unit=desired.unit, members=tuple(members))


def apply(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    reach: AdminScope,
    row: GroupRow,
    desired: DesiredGroup,
    operation: str,
) -> GroupRow:
    """Make the group look like ``desired``; version and lastModified move only when
    something changed. Members the caller cannot see are kept."""
    group = row.group
    _check_unique(session, desired, group_id=group.id)
    changed: list[str] = []
    if group.display_name != desired.display_name:
        group.display_name = desired.display_name
        group.search_name = official_data.fold_for_search(desired.display_name)[:200]
        changed.append("displayName")
    if group.external_id != desired.external_id:
        group.external_id = desired.external_id
        changed.append("externalId")
    current = {member.subject: member.account_id for member in row.members}
    added = sorted(set(desired.members) - set(current))
    removed = sorted(set(current) - set(desired.members))
    if removed:
        session.execute(
            sql_delete(GroupMember).where(
                GroupMember.group_id == group.id,
                GroupMember.account_id.in_([current[s] for s in removed]),
            )
        )
    session.add_all(GroupMember(group_id=group.id, account_id=desired.members[s]) for s in added)
    if added or removed:
        changed.append("members")
    if changed:
        group.version += 1
        group.updated_at = clock.now()
        session.flush()
        audit.record(
            session,
            clock=clock,
            actor=actor,
            action=f"scim.group.{operation}",
            target=_target(group),
            details={
                "changed": changed,
                "members_added": added,
                "members_removed": removed,
            },
        )
    members: list[Member] = members_in_reach(session, reach, [group.id]).get(group.id, [])
    return GroupRow(group=group, unit=row.unit, members=tuple(members))


def replace(
    *, session: Session, clock: Clock, actor: str, reach: AdminScope, row: GroupRow, body: Any
) -> GroupRow:
    """RFC 7644 §3.5.1: attributes not supplied are cleared (externalId, members)."""
    desired = parse(session, body, reach=reach, current=row)
    return apply(
        session=session,
        clock=clock,
        actor=actor,
        reach=reach,
        row=row,
        desired=desired,
        operation="replace",
    )


def delete(*, session: Session, clock: Clock, actor: str, row: GroupRow) -> None:
    """RFC 7644 §3.6: the group is gone (404 afterwards); the audit log says who did it."""
    group = row.group
    total = session.scalar(
        select(func.count()).select_from(GroupMember).where(GroupMember.group_id == group.id)
    )
    session.execute(sql_delete(GroupMember).where(GroupMember.group_id == group.id))
    session.delete(group)
    session.flush()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="scim.group.delete",
        target=_target(group),
        details={
            "display_name": group.display_name,
            "unit": row.unit.code,
            "external_id": group.external_id,
            "members": total,
        },
    )
