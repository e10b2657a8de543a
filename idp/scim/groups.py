"""The /Groups resource, read side: search (RFC 7644 §3.4.2) and retrieval (§3.4.1).

Who sees what: a group belongs to one unit (our extension attribute ``unitCode``, a ward or a
province). A provisioning client sees and manages the groups of the units in its reach, and
only officials of the group's unit may be members (see :mod:`idp.scim.group_writes`). The
``members`` a client is shown are the members it can see: an official who has since moved out
of the client's reach, or was deleted, is left out (and left alone by its writes), so a group
never reveals officials outside the client's reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from idp.admin_scope import AdminScope
from idp.models import Account, AccountProfile, Group, GroupMember, Unit
from idp.scim.filter import GROUP_ATTRIBUTES, to_clause
from idp.scim.schemas import (
    CORE_GROUP_SCHEMA,
    OFFICIAL_GROUP_SCHEMA,
)
from idp.scim.users import instant, ordering, page_window

SORT_COLUMNS: dict[str, Any] = {
    "id": Group.scim_id,
    "displayname": Group.search_name,
    "externalid": Group.external_id,
    "meta.created": Group.created_at,
    "meta.lastmodified": Group.updated_at,
}
_CORE_PREFIX = CORE_GROUP_SCHEMA.lower() + ":"


@dataclass(frozen=True)
class Member:
    account_id: int
    subject: str
    display: str


@dataclass(frozen=True)
class GroupRow:
    group: Group
    unit: Unit
    members: tuple[Member, ...]  # the ones the caller can see


@dataclass(frozen=True)
class Page:
    total: int
    start_index: int
    rows: list[GroupRow]


def _visible(reach: AdminScope) -> Select[Group, Unit]:
    return (
        select(Group, Unit)
        .join(Unit, Unit.id == Group.unit_id)
        .where(reach.units_clause(), Group.deleted_at.is_(None))
    )


def members_in_reach(
    session: Session, reach: AdminScope, group_ids: list[int]
) -> dict[int, list[Member]]:
    found: dict[int, list[Member]] = {}
    if not group_ids:
        return found
    query = (
        select(GroupMember.group_id, Account.id, Account.subject, Account.full_name)
        .join(Account, Account.id == GroupMember.account_id)
        .join(AccountProfile, AccountProfile.account_id == Account.id)
        .join(Unit, Unit.id == AccountProfile.unit_id)
        .where(
            GroupMember.group_id.in_(group_ids),
            AccountProfile.deleted_at.is_(None),
            reach.units_clause(),
        )
        .order_by(GroupMember.group_id, Account.id)
    )
    for group_id, account_id, subject, full_name in session.execute(query):
        found.setdefault(group_id, []).append(Member(account_id, subject, full_name))
    return found


def _rows(session: Session, reach: AdminScope, pairs: list[Any]) -> list[GroupRow]:
    members = members_in_reach(session, reach, [group.id for group, _ in pairs])
    return [
        GroupRow(group=group, unit=unit, members=tuple(members.get(group.id, ())))
        for group, unit in pairs
    ]


def find(
    session: Session, *, reach: AdminScope, scim_id: str, for_update: bool = False
) -> GroupRow | None:
    """Missing and out-of-reach groups are the same None (the endpoint's 404)."""
    query = _visible(reach).where(Group.scim_id == scim_id)
    if for_update:
        query = query.with_for_update(of=Group)
    pairs = session.execute(query).all()
    return _rows(session, reach, list(pairs))[0] if pairs else None


def search(
    session: Session,
    *,
    reach: AdminScope,
    filter_text: str | None,
    sort_by: str | None,
    sort_order: str | None,
    start_index: str | int | None,
    count: str | int | None,
    unknown_is_false: bool = False,
) -> Page:
    """RFC 7644 §3.4.2, as for Users."""
    start, size = page_window(start_index, count)
    where: list[ColumnElement[bool]] = []
    if filter_text is not None and filter_text.strip():
        dialect = session.get_bind().dialect.name
        where.append(
            to_clause(
                filter_text,
                dialect=dialect,
                attributes=GROUP_ATTRIBUTES,
                unknown_is_false=unknown_is_false,
            )
        )
    order = ordering(
        sort_by,
        sort_order,
        columns=SORT_COLUMNS,
        row_id=Group.id,
        core_prefix=_CORE_PREFIX,
        refusal="Cannot sort Groups by '{sort_by}'.",
    )
    query = _visible(reach).where(*where)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows: list[GroupRow] = []
    if size and start <= total:
        pairs = session.execute(query.order_by(*order).offset(start - 1).limit(size)).all()
        rows = _rows(session, reach, list(pairs))
    return Page(total=total, start_index=start, rows=rows)


def etag(row: GroupRow) -> str:
    return f'W/"{row.group.version}"'


def to_document(row: GroupRow, *, base_url: str, requested: bool = False) -> dict[str, Any]:
    """The Group resource (RFC 7643 §4.2) with our extension, as scim2-models dumps it;
    ``requested`` adds the province, returned on request only (RFC 7643 §7). A member's
    display is the official's name, left out when the official has none."""
    group, unit = row.group, row.unit
    document: dict[str, Any] = {
        "schemas": [CORE_GROUP_SCHEMA, OFFICIAL_GROUP_SCHEMA],
        "id": group.scim_id,
        **({"externalId": group.external_id} if group.external_id is not None else {}),
        "meta": {
            "resourceType": "Group",
            "created": instant(group.created_at),
            "lastModified": instant(group.updated_at),
            "location": f"{base_url}/Groups/{group.scim_id}",
            "version": etag(row),
        },
    }
    document["displayName"] = group.display_name
    if row.members:
        document["members"] = [
            {
                "value": member.subject,
                "$ref": f"{base_url}/Users/{member.subject}",
                "type": "User",
                **({"display": member.display} if member.display else {}),
            }
            for member in row.members
        ]
    document[OFFICIAL_GROUP_SCHEMA] = {"unitCode": unit.code}
    if requested:
        document[OFFICIAL_GROUP_SCHEMA]["provinceCode"] = unit.province_code
    return document


def check_filter(session: Session, text: str) -> None:
    """Raise InvalidFilter unless ``text`` is a valid filter over Groups."""
    to_clause(text, dialect=session.get_bind().dialect.name, attributes=GROUP_ATTRIBUTES)
