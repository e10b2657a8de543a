"""The /Users resource, read side: search (RFC 7644 §3.4.2) and retrieval (§3.4.1).

One query per page plus one count, both filtered in SQL by the caller's reach, the filter and
``deleted_at IS NULL`` (a deleted official answers 404 and vanishes from queries, §3.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim2_models import Email, EnterpriseUser, Meta, Name, PhoneNumber
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from idp.admin_scope import AdminScope
from idp.models import Account, AccountProfile, Agency, Unit
from idp.scim.errors import InvalidValue
from idp.scim.filter import to_clause
from idp.scim.schemas import DEFAULT_COUNT, MAX_COUNT, OfficialUser, ScimUser

SORT_COLUMNS: dict[str, Any] = {
    "id": Account.subject,
    "username": Account.username,
    "name.formatted": AccountProfile.search_name,
    "displayname": AccountProfile.search_name,
    "externalid": AccountProfile.external_id,
    "meta.created": Account.created_at,
    "meta.lastmodified": Account.updated_at,
}
_CORE_PREFIX = "urn:ietf:params:scim:schemas:core:2.0:user:"


@dataclass(frozen=True)
class Row:
    account: Account
    profile: AccountProfile
    unit: Unit
    agency: Agency | None


@dataclass(frozen=True)
class Page:
    total: int
    start_index: int
    rows: list[Row]


def _visible(reach: AdminScope) -> Select[Account, AccountProfile, Unit, Agency]:
    """Officials in reach and not deleted; an official attached to no unit is in no reach."""
    return (
        select(Account, AccountProfile, Unit, Agency)
        .join(AccountProfile, AccountProfile.account_id == Account.id)
        .join(Unit, Unit.id == AccountProfile.unit_id)
        .outerjoin(Agency, Agency.id == AccountProfile.agency_id)
        .where(reach.units_clause(), AccountProfile.deleted_at.is_(None))
    )


def _rows(result: Any) -> list[Row]:
    return [Row(account=a, profile=p, unit=u, agency=g) for a, p, u, g in result]


def find(
    session: Session, *, reach: AdminScope, subject: str, for_update: bool = False
) -> Row | None:
    """``for_update`` locks the official's rows (PostgreSQL) so that an If-Match check and
    the write that follows it see the same version."""
    query = _visible(reach).where(Account.subject == subject)
    if for_update:
        query = query.with_for_update(of=[Account, AccountProfile])
    rows = _rows(session.execute(query).all())
    return rows[0] if rows else None


def _integer(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidValue(f"'{name}' must be an integer.") from None


def _order(sort_by: str | None, sort_order: str | None) -> list[Any]:
    order = (sort_order or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise InvalidValue("'sortOrder' is 'ascending' or 'descending'.")
    if not sort_by:
        return [Account.id]
    key = sort_by.lower()
    if key.startswith(_CORE_PREFIX):
        key = key[len(_CORE_PREFIX) :]
    column = SORT_COLUMNS.get(key)
    if column is None:
        raise InvalidValue(f"Cannot sort by '{sort_by}'.")
    # The row id breaks ties, so that pages do not overlap or skip officials.
    if order == "descending":
        return [column.desc(), Account.id.desc()]
    return [column.asc(), Account.id.asc()]


def search(
    session: Session,
    *,
    reach: AdminScope,
    filter_text: str | None,
    sort_by: str | None,
    sort_order: str | None,
    start_index: str | None,
    count: str | None,
) -> Page:
    """RFC 7644 §3.4.2: startIndex is 1-based (below 1 means 1), a negative count means 0,
    a count above the maximum is lowered to it."""
    start = max(_integer(start_index, "startIndex", 1), 1)
    size = min(max(_integer(count, "count", DEFAULT_COUNT), 0), MAX_COUNT)
    dialect = session.get_bind().dialect.name
    where: list[ColumnElement[bool]] = []
    if filter_text is not None and filter_text.strip():
        where.append(to_clause(filter_text, dialect=dialect))
    order = _order(sort_by, sort_order)
    query = _visible(reach).where(*where)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows: list[Row] = []
    if size:
        rows = _rows(session.execute(query.order_by(*order).offset(start - 1).limit(size)).all())
    return Page(total=total, start_index=start, rows=rows)


def etag(row: Row) -> str:
    return f'W/"{row.profile.version}"'


def to_resource(row: Row, *, base_url: str) -> Any:
    """The User resource (RFC 7643 §4.1) with the enterprise (§4.3) and official extensions."""
    account, profile, unit, agency = row.account, row.profile, row.unit, row.agency
    user = ScimUser(
        id=account.subject,
        external_id=profile.external_id,
        user_name=account.username,
        name=Name(formatted=account.full_name),
        display_name=account.full_name,
        emails=[Email(value=account.email, type=Email.Type.work, primary=True)]
        if account.email
        else None,
        phone_numbers=[PhoneNumber(value=account.phone, type=PhoneNumber.Type.work)]
        if account.phone
        else None,
        active=account.status == "active",
        meta=Meta(
            resource_type="User",
            created=account.created_at,
            last_modified=account.updated_at,
            location=f"{base_url}/Users/{account.subject}",
            version=etag(row),
        ),
    )
    user[EnterpriseUser] = EnterpriseUser(
        organization=unit.name, department=agency.name if agency else None
    )
    user[OfficialUser] = OfficialUser(
        unit_code=unit.code,
        province_code=unit.province_code,
        agency=agency.name if agency else None,
        citizen_id=profile.citizen_id,
        position=profile.position,
    )
    return user
