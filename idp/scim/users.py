"""The /Users resource, read side: search (RFC 7644 §3.4.2) and retrieval (§3.4.1).

Every query is filtered in SQL by the caller's reach, the filter and ``deleted_at IS NULL`` (a
deleted official answers 404 and vanishes from queries, §3.6). Without a filter (a client
walking the directory) a page costs two statements: the reach's unit ids, then one statement
that counts (the live-by-unit index), picks the page's ids (OFFSET skips entries of the narrow
``live`` index, not joined rows) and reads their values and groups: Core statements, no ORM
objects (:class:`UserView`).

Representations are built as plain dicts (:func:`to_document`): building scim2-models objects
cost ~35 ms per 100 users. The dict is the same JSON as the scim2-models dump of
:func:`to_resource` (a test compares both); the models are still used whenever
``attributes``/``excludedAttributes`` ask for a projection. Writes load the ORM rows
(:class:`Row`) and show them through the same view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    Select,
    any_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from core.errors import DomainError
from idp import official_data
from idp.admin_scope import AdminScope
from idp.models import (
    Account,
    AccountProfile,
    Agency,
    Group,
    GroupMember,
    Unit,
    UnitLiveOfficials,
    UnitLiveOfficialsChange,
)
from idp.scim.attributes import ENTERPRISE, NAME_PARTS, SIMPLE
from idp.scim.errors import InvalidValue
from idp.scim.filter import USER_ATTRIBUTES, stored, to_clause
from idp.scim.schemas import (
    CORE_USER_SCHEMA,
    DEFAULT_COUNT,
    ENTERPRISE_SCHEMA,
    MAX_COUNT,
    OFFICIAL_SCHEMA,
    ScimUser,
)

SORT_COLUMNS: dict[str, Any] = {
    "id": Account.subject,
    "username": Account.username,
    "name.formatted": AccountProfile.search_name,
    "displayname": AccountProfile.search_name,
    "externalid": AccountProfile.external_id,
    **{f"name.{part.lower()}": stored("name", part) for part in NAME_PARTS},
    **{name.lower(): stored(name) for name in SIMPLE},
    **{
        f"{ENTERPRISE_SCHEMA.lower()}:{name.lower()}": stored("enterprise", name)
        for name in ENTERPRISE
        if name != "manager"
    },
    "meta.created": Account.created_at,
    "meta.lastmodified": Account.updated_at,
}
_CORE_PREFIX = "urn:ietf:params:scim:schemas:core:2.0:user:"


@dataclass(frozen=True)
class Membership:
    """One group of an official, as the ``groups`` attribute shows it (RFC 7643 §4.1.2)."""

    scim_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class UserView:
    """What a User resource shows, as plain values: a page of search results is read into
    these with one Core query (ORM objects for 100 officials cost more than the SQL)."""

    account_id: int
    subject: str
    username: str
    full_name: str
    email: str | None
    phone: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    external_id: str | None
    citizen_id: str | None
    position: str | None
    version: int
    unit_name: str
    unit_code: str
    province_code: str
    agency_name: str | None
    # Client-owned attributes (idp.scim.attributes); None if no directory described the official.
    attributes: dict[str, Any] | None = None
    groups: tuple[Membership, ...] = ()


@dataclass(frozen=True)
class Row:
    """An official's ORM rows, for the writes (PUT, PATCH, DELETE) that change them."""

    account: Account
    profile: AccountProfile
    unit: Unit
    agency: Agency | None
    groups: tuple[Membership, ...] = ()

    @property
    def view(self) -> UserView:
        account, profile, unit, agency = self.account, self.profile, self.unit, self.agency
        return UserView(
            account_id=account.id,
            subject=account.subject,
            username=account.username,
            full_name=account.full_name,
            email=account.email,
            phone=account.phone,
            status=account.status,
            created_at=account.created_at,
            updated_at=account.updated_at,
            external_id=profile.external_id,
            citizen_id=profile.citizen_id,
            position=profile.position,
            version=profile.version,
            unit_name=unit.name,
            unit_code=unit.code,
            province_code=unit.province_code,
            agency_name=agency.name if agency else None,
            attributes=profile.scim_attributes,
            groups=self.groups,
        )


@dataclass(frozen=True)
class Page:
    total: int
    start_index: int
    rows: list[UserView]


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
    return with_groups(session, reach, rows)[0] if rows else None


def integer_parameter(raw: str | int | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise InvalidValue(f"'{name}' must be an integer.")
    if isinstance(raw, int):
        return raw
    try:
        return int(raw)
    except ValueError:
        raise InvalidValue(f"'{name}' must be an integer.") from None


def page_window(start_index: str | int | None, count: str | int | None) -> tuple[int, int]:
    """RFC 7644 §3.4.2: startIndex is 1-based (below 1 means 1), a negative count means 0,
    a count above the maximum is lowered to it. Returns (start, size)."""
    start = max(integer_parameter(start_index, "startIndex", 1), 1)
    size = min(max(integer_parameter(count, "count", DEFAULT_COUNT), 0), MAX_COUNT)
    return start, size


def ordering(
    sort_by: str | None,
    sort_order: str | None,
    *,
    columns: dict[str, Any],
    row_id: Any,
    core_prefix: str,
    refusal: str,
) -> list[Any]:
    """ORDER BY for ``sortBy``/``sortOrder`` (names case-insensitive, with or without the core
    schema's URN); the row id breaks ties, so that pages do not overlap or skip resources.
    ``refusal`` is the message for an unknown attribute, with ``{sort_by}`` in it."""
    order = (sort_order or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise InvalidValue("'sortOrder' is 'ascending' or 'descending'.")
    if not sort_by:
        return [row_id]
    column = columns.get(sort_by.lower().removeprefix(core_prefix))
    if column is None:
        raise InvalidValue(refusal.format(sort_by=sort_by))
    if order == "descending":
        return [column.desc(), row_id.desc()]
    return [column.asc(), row_id.asc()]


def _units_in_reach(reach: AdminScope) -> Select[int]:
    return select(Unit.id).where(reach.units_clause())


def _one_of(column: Any, values: frozenset[int]) -> ColumnElement[bool]:
    """``column IN (1, 2, ...)`` with the integers written into the statement text: as one
    array parameter PostgreSQL planned OFFSET without knowing them (16 ms, not 1.5), and
    as a hundred parameters they cost more to render than the query took. The text is the
    same for every request of the same reach, so the compiled statement is cached."""
    listed = ", ".join(str(int(value)) for value in sorted(values)) or "NULL"
    return column.op("IN")(literal_column(f"({listed})"))


def _within(column: Any, values: frozenset[int]) -> ColumnElement[bool]:
    """:func:`_one_of` with runs of consecutive ids as ranges: a province's wards were loaded
    together, so its reach is one or two ranges. The OFFSET of a page tests every skipped
    entry; a range test is cheaper than a lookup in a hundred values (SQLite 1.9 -> 0.8 ms
    at startIndex 17,500). Counting stays on :func:`_one_of`, which an index can search."""
    ordered = sorted(values)
    runs: list[list[int]] = []
    for value in ordered:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    singles = frozenset(value for run in runs if len(run) < 3 for value in run)
    tests = [
        column.between(literal_column(str(int(run[0]))), literal_column(str(int(run[-1]))))
        for run in runs
        if len(run) >= 3
    ]
    if singles or not tests:
        tests.append(_one_of(column, singles))
    return or_(*tests)


def _page_ids(column: Any, dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the page's ids (parameter ``ids``, a list): one parameter on
    either database, so the statement text is the same for every page and both compile it
    once (PostgreSQL an array; SQLite a JSON array read by ``json_each``: the hundred values of
    an expanding IN list were rendered into the statement on every request)."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", type_=postgresql.ARRAY(Integer)))
    listed: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(bindparam("ids", type_=JSON))
    )
    return column.in_(listed.scalar_subquery())


def _unit_ids_in_reach(connection: Connection, reach: AdminScope) -> frozenset[int] | None:
    """The ids of the units in reach, None for every unit (a system-wide reach)."""
    return None if reach.system else frozenset(connection.scalars(_units_in_reach(reach)))


def _groups_of(
    session: Session, reach: AdminScope, account_ids: list[int]
) -> dict[int, tuple[Membership, ...]]:
    """The groups of each official, among the groups the caller can see (a group outside the
    caller's reach is not revealed by its members)."""
    found: dict[int, list[Membership]] = {}
    query = (
        select(GroupMember.account_id, Group.scim_id, Group.display_name)
        .join(Group, Group.id == GroupMember.group_id)
        .where(
            GroupMember.account_id.in_(account_ids),
            Group.unit_id.in_(_units_in_reach(reach)),
        )
        .order_by(Group.id)
    )
    for account_id, scim_id, display_name in session.execute(query):
        found.setdefault(account_id, []).append(Membership(scim_id, display_name))
    return {account_id: tuple(groups) for account_id, groups in found.items()}


def with_groups(session: Session, reach: AdminScope, rows: list[Row]) -> list[Row]:
    if not rows:
        return rows
    found = _groups_of(session, reach, [row.account.id for row in rows])
    return [
        Row(row.account, row.profile, row.unit, row.agency, found.get(row.account.id, ()))
        for row in rows
    ]


_VIEW_COLUMNS = (
    Account.id,
    Account.subject,
    Account.username,
    Account.full_name,
    Account.email,
    Account.phone,
    Account.status,
    Account.created_at,
    Account.updated_at,
    AccountProfile.external_id,
    AccountProfile.citizen_id,
    AccountProfile.position,
    AccountProfile.version,
    Unit.name,
    Unit.code,
    Unit.province_code,
    Agency.name,
    AccountProfile.scim_attributes,
)


@cache
def _views_by_account(dialect: str) -> Select[*tuple[Any, ...]]:
    """The page's officials with their groups, one row per (official, group) or one row with
    NULL group columns: one statement instead of two (a round trip on PostgreSQL)."""
    return (
        select(
            *_VIEW_COLUMNS, AccountProfile.unit_id, Group.scim_id, Group.display_name, Group.unit_id
        )
        .join(AccountProfile, AccountProfile.account_id == Account.id)
        .join(Unit, Unit.id == AccountProfile.unit_id)
        .outerjoin(Agency, Agency.id == AccountProfile.agency_id)
        .outerjoin(GroupMember, GroupMember.account_id == Account.id)
        .outerjoin(Group, Group.id == GroupMember.group_id)
        .where(_page_ids(Account.id, dialect), AccountProfile.deleted_at.is_(None))
        .order_by(Group.id)
    )


_VIEW_WIDTH = len(_VIEW_COLUMNS)


def _views_of_rows(rows: Iterable[Any], units: frozenset[int] | None) -> dict[int, UserView]:
    """Rows of :func:`_views_by_account` (one per official and group) as views, in the order
    the officials first appear; officials out of ``units`` (the reach) are left out, and so
    are groups of units out of reach (checked here rather than in SQL: a hundred unit ids
    written into the statement cost more)."""
    values: dict[int, tuple[Any, ...]] = {}
    groups: dict[int, list[Membership]] = {}
    for row in rows:
        account_id: int = row[0]
        unit_id, group_id, group_name, group_unit_id = row[_VIEW_WIDTH : _VIEW_WIDTH + 4]
        if units is not None and unit_id not in units:
            continue
        if account_id not in values:
            values[account_id] = tuple(row)[:_VIEW_WIDTH]
        if group_id is not None and (units is None or group_unit_id in units):
            groups.setdefault(account_id, []).append(Membership(group_id, group_name))
    return {
        account_id: UserView(*(*value, tuple(groups.get(account_id, ()))))
        for account_id, value in values.items()
    }


# The common case (a client walking the directory) reads the profile table alone, through
# the partial "live" index (SQLite's planner, without statistics, would pick the unit_id index
# and sort: 30 ms instead of 2 ms for 35,200 officials), and the counts per unit. The
# statements depend only on the reach's units: built once per reach, not on every request.
_LIVE = AccountProfile.deleted_at.is_(None)


@lru_cache(maxsize=256)
def _live_count(units: frozenset[int] | None) -> Select[Any]:
    """The live officials of the reach's units, from the counts the database keeps per unit
    (idp.live_officials): a row per unit, not an index entry per official."""
    counted = []
    for table, column in (
        (UnitLiveOfficials, UnitLiveOfficials.live),
        (UnitLiveOfficialsChange, UnitLiveOfficialsChange.change),
    ):
        summed = select(func.coalesce(func.sum(column), 0))
        if units is not None:
            summed = summed.where(_one_of(table.unit_key, units))
        counted.append(summed.scalar_subquery())
    return select(counted[0] + counted[1])


@lru_cache(maxsize=256)
def _live_page(units: frozenset[int] | None) -> Select[Any]:
    return (
        select(AccountProfile.account_id)
        .with_hint(AccountProfile, "INDEXED BY ix_idp_account_profile_live", "sqlite")
        .where(_LIVE)
        .where(*([] if units is None else [_within(AccountProfile.unit_id, units)]))
        .order_by(AccountProfile.account_id)
        .offset(bindparam("skip"))
        .limit(bindparam("size"))
    )


@lru_cache(maxsize=256)
def _live_page_ids(units: frozenset[int] | None) -> Select[Any]:
    """The page's ids (parameters ``skip`` and ``size``), each row with the count of the
    reach's live officials (an uncorrelated subquery, computed once per statement; a page
    past the end has no row to carry it, and :func:`search` counts again then).

    The values are read by a second statement, :func:`_views_by_account` on the ids: joined
    into this one, PostgreSQL planned the eight-table join afresh for every page (a custom
    plan, as OFFSET is a parameter: 3 ms, more than the page took to run), while the values by
    an array of ids are planned once per connection (a prepared statement's generic plan)."""
    return _live_page(units).add_columns(_live_count(units).scalar_subquery())


def _views(
    connection: Connection, units: frozenset[int] | None, account_ids: list[int]
) -> list[UserView]:
    """The officials of ``account_ids`` in that order, with their groups; those deleted or
    moved out of the reach since the ids were read are left out."""
    query = _views_by_account(connection.dialect.name)
    found = _views_of_rows(connection.execute(query, {"ids": account_ids}), units)
    return [found[account_id] for account_id in account_ids if account_id in found]


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
    unit_ids: frozenset[int] | None = None,
) -> Page:
    """RFC 7644 §3.4.2 (see :func:`page_window`). ``unit_ids``: the ids of the units in
    ``reach`` when the caller knows them (a provisioning client's are cached); else read."""
    start, size = page_window(start_index, count)
    # Core statements on the session's connection: the ORM's execution layer costs ~0.05 ms a
    # statement and nothing here needs it (no entities); pending changes are flushed first.
    session.flush()
    connection = session.connection()
    dialect = connection.dialect.name
    filtered = filter_text is not None and bool(filter_text.strip())
    order = ordering(
        sort_by,
        sort_order,
        columns=SORT_COLUMNS,
        row_id=Account.id,
        core_prefix=_CORE_PREFIX,
        refusal="Cannot sort by '{sort_by}'.",
    )
    # The units as a list of ids rather than a subquery, so that PostgreSQL's planner sees how
    # many officials they hold: a province's officials are all in its own units, and from a
    # subquery it guessed 1/33 of them and chose to sort (5× slower).
    units = unit_ids if unit_ids is not None else _unit_ids_in_reach(connection, reach)
    window = {"skip": start - 1, "size": size}
    if not (filtered or sort_by):
        # The common case, a client walking the directory: the ids with the count, then
        # their values.
        rows = list(connection.execute(_live_page_ids(units), window)) if size else []
        if rows:
            total: int = rows[0][1]
            return Page(total, start, _views(connection, units, [row[0] for row in rows]))
        return Page(connection.scalar(_live_count(units)) or 0, start, [])
    where: list[ColumnElement[bool]] = []
    if filter_text is not None and filtered:
        where.append(
            to_clause(
                filter_text,
                dialect=dialect,
                attributes=USER_ATTRIBUTES,
                unknown_is_false=unknown_is_false,
            )
        )
    ids = (
        select(Account.id)
        .join(AccountProfile, AccountProfile.account_id == Account.id)
        .join(Unit, Unit.id == AccountProfile.unit_id)
        .outerjoin(Agency, Agency.id == AccountProfile.agency_id)
        .where(reach.units_clause(), AccountProfile.deleted_at.is_(None), *where)
    )
    if size:
        # The count, the page's ids and their values in one statement (one round trip, not
        # three): the window functions run over every match before OFFSET and LIMIT.
        page_rows = list(connection.execute(_filtered_page_views(ids, order), window))
        if page_rows:
            total = page_rows[0][_VIEW_WIDTH + 4]
            return Page(total, start, [*_views_of_rows(page_rows, units).values()])
        if start == 1:
            return Page(0, start, [])  # no match at all: nothing to count
    total = connection.scalar(select(func.count()).select_from(ids.subquery())) or 0
    return Page(total=total, start_index=start, rows=[])


def _filtered_page_views(ids: Select[Any], order: list[Any]) -> Select[*tuple[Any, ...]]:
    """One page of ``ids`` (in ``order``, parameters ``skip`` and ``size``) with the count of
    every match and each official's values and groups, in the page's order."""
    page = (
        ids.add_columns(
            func.count().over().label("matches"),
            func.row_number().over(order_by=order).label("position"),
        )
        .order_by(*order)
        .offset(bindparam("skip"))
        .limit(bindparam("size"))
        .subquery("page")
    )
    return (
        select(
            *_VIEW_COLUMNS,
            AccountProfile.unit_id,
            Group.scim_id,
            Group.display_name,
            Group.unit_id,
            page.c.matches,
        )
        .select_from(page)
        .join(Account, Account.id == page.c.id)
        .join(AccountProfile, AccountProfile.account_id == Account.id)
        .join(Unit, Unit.id == AccountProfile.unit_id)
        .outerjoin(Agency, Agency.id == AccountProfile.agency_id)
        .outerjoin(GroupMember, GroupMember.account_id == Account.id)
        .outerjoin(Group, Group.id == GroupMember.group_id)
        .order_by(page.c.position, Group.id)
    )


def view_of(
    session: Session, *, reach: AdminScope, subject: str, unit_ids: frozenset[int] | None = None
) -> UserView | None:
    """One official in reach, with the groups in reach, for reading (one Core statement; the
    writes use :func:`find`, which locks and returns the ORM rows)."""
    session.flush()
    connection = session.connection()
    units = unit_ids if unit_ids is not None else _unit_ids_in_reach(connection, reach)
    query = (
        select(
            *_VIEW_COLUMNS, AccountProfile.unit_id, Group.scim_id, Group.display_name, Group.unit_id
        )
        .join(AccountProfile, AccountProfile.account_id == Account.id)
        .join(Unit, Unit.id == AccountProfile.unit_id)
        .outerjoin(Agency, Agency.id == AccountProfile.agency_id)
        .outerjoin(GroupMember, GroupMember.account_id == Account.id)
        .outerjoin(Group, Group.id == GroupMember.group_id)
        .where(Account.subject == subject, AccountProfile.deleted_at.is_(None))
        .order_by(Group.id)
    )
    found = _views_of_rows(connection.execute(query), units)
    return next(iter(found.values()), None)


def etag(user: UserView) -> str:
    return f'W/"{user.version}"'


def to_resource(user: UserView, *, base_url: str) -> Any:
    """The User resource (RFC 7643 §4.1) with the enterprise (§4.3) and official extensions,
    as scim2-models objects (for ``attributes``/``excludedAttributes`` projections)."""
    return ScimUser.model_validate(to_document(user, base_url=base_url, requested=True))


def instant(moment: datetime) -> str:
    """RFC 3339 in UTC with "Z", as pydantic (and so scim2-models) writes it."""
    if moment.tzinfo is not UTC:  # the columns give UTC already: paging formats 200 a page
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat() + "Z"


_SCHEMAS = [CORE_USER_SCHEMA, ENTERPRISE_SCHEMA, OFFICIAL_SCHEMA]
# Single-valued core attributes shown as the client sent them, in scim2-models' dump order.
_SINGLE_VALUED = (
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
)


def _with_column(
    items: list[dict[str, Any]],
    column: str | None,
    new: dict[str, Any],
    normalise: Callable[[str], str],
) -> list[dict[str, Any]]:
    """The stored values, with the chosen one (primary, else first) showing what its column
    holds now when another path changed it (admin pages, the official's own page, the
    import): the column is what the rest of the service uses. A value the column holds in
    normalised form (an E.164 phone, a lower-case domain) is shown as the client sent it."""
    if not items:  # no directory described the official (an import): the column alone
        return [] if column is None else [{"value": column, **new}]
    items = [dict(item) for item in items]
    if column is None:
        return items
    chosen = next((item for item in items if item.get("primary")), items[0])
    sent = chosen.get("value")
    # Equal as stored is the common case, and the cheap test: paging builds 100 of these.
    if sent != column and _normalised(normalise, sent) != column:
        chosen["value"] = column
    return items


def _normalised(normalise: Callable[[str], str], value: Any) -> str | None:
    try:
        return normalise(value) if isinstance(value, str) else None
    except DomainError:
        return None


def to_document(user: UserView, *, base_url: str, requested: bool = False) -> dict[str, Any]:
    """The User as JSON, without building models (the hot path of paging): keys in the order
    scim2-models dumps them, absent values left out. What the client sent is shown as stored
    (idp.scim.attributes); an official no directory described shows the columns.
    ``requested`` adds the attributes returned on request only (the unit's name and province,
    RFC 7643 §7), for a projection to pick from."""
    stored = user.attributes
    document: dict[str, Any] = {
        "schemas": list(_SCHEMAS),
        "id": user.subject,
        **({"externalId": user.external_id} if user.external_id is not None else {}),
        "meta": {
            "resourceType": "User",
            "created": instant(user.created_at),
            "lastModified": instant(user.updated_at),
            "location": f"{base_url}/Users/{user.subject}",
            "version": etag(user),
        },
    }
    document["userName"] = user.username
    # name.formatted as the client sent it (derived from the parts, it is not shown: a PATCH
    # of a part then derives it again); the column holds it, whoever changed it last.
    if stored is None:
        name: dict[str, Any] = {"formatted": user.full_name} if user.full_name else {}
    else:
        name = dict(stored.get("name") or {})
        if "formatted" in name:
            name["formatted"] = user.full_name
    if name:
        document["name"] = name
    display_name = stored.get("displayName") if stored is not None else user.full_name
    if display_name:
        document["displayName"] = display_name
    if stored:
        for attribute in _SINGLE_VALUED:
            if stored.get(attribute) is not None:
                document[attribute] = stored[attribute]
    document["active"] = user.status == "active"
    emails = _with_column(
        (stored or {}).get("emails") or [],
        user.email,
        {"type": "work", "primary": True},
        official_data.normalise_email,
    )
    if emails:
        document["emails"] = emails
    phones = (stored or {}).get("phoneNumbers") or []
    if user.phone is not None or stored is None:
        phones = _with_column(phones, user.phone, {"type": "work"}, official_data.normalise_phone)
    if phones:
        document["phoneNumbers"] = phones
    if stored:
        for attribute in ("ims", "photos", "addresses"):
            if stored.get(attribute):
                document[attribute] = [dict(item) for item in stored[attribute]]
    if user.groups:
        document["groups"] = [
            {
                "value": group.scim_id,
                "$ref": f"{base_url}/Groups/{group.scim_id}",
                "display": group.display_name,
                "type": "direct",
            }
            for group in user.groups
        ]
    if stored:
        for attribute in ("entitlements", "roles", "x509Certificates"):
            if stored.get(attribute):
                document[attribute] = [dict(item) for item in stored[attribute]]
    enterprise = dict(stored.get("enterprise") or {}) if stored else {}
    manager = enterprise.get("manager")
    if manager:
        enterprise["manager"] = {
            "value": manager["value"],
            "$ref": f"{base_url}/Users/{manager['value']}",
        }
    if enterprise:
        document[ENTERPRISE_SCHEMA] = enterprise
    else:
        document["schemas"] = [CORE_USER_SCHEMA, OFFICIAL_SCHEMA]
    official = {"unitCode": user.unit_code}
    if requested:
        official |= {"unitName": user.unit_name, "provinceCode": user.province_code}
    for key, value in (
        ("agency", user.agency_name),
        ("citizenId", user.citizen_id),
        ("position", user.position),
    ):
        if value is not None:
            official[key] = value
    document[OFFICIAL_SCHEMA] = official
    return document


def check_filter(session: Session, text: str) -> None:
    """Raise InvalidFilter unless ``text`` is a valid filter over Users."""
    to_clause(text, dialect=session.get_bind().dialect.name, attributes=USER_ATTRIBUTES)
