"""SCIM filters (RFC 7644 §3.4.2.2) translated to SQL, never evaluated over loaded rows.

``scim2-models`` parses the filter; :class:`SqlFilter` walks its syntax tree and builds one
WHERE clause. Users are filtered over ``Account`` joined with ``AccountProfile``, ``Unit`` and
``Agency`` (:data:`USER_ATTRIBUTES`), Groups over ``Group`` joined with its ``Unit``
(:data:`GROUP_ATTRIBUTES`).

Supported: every operator on the attributes the tables name, ``pr``, ``and``/``or`` with the
RFC's precedence and parentheses, ``not (...)``, ``gt/ge/lt/le`` on dateTimes, and value
filters on multi-valued attributes (``emails[type eq "work" and value co "@laocai"]``,
``members[value eq "..."]``; a dotted ``members.value eq "..."`` means the same). A value
filter over values kept in other rows (group members) becomes ``EXISTS (...)``; one over the
single work e-mail or phone of an official is a clause over its columns. An attribute we do
not know is 400 ``invalidFilter`` naming it.

Every clause it builds is TRUE or FALSE, never NULL: an absent attribute makes a comparison
false rather than unknown, so that ``not (...)`` and ``ne`` include officials without the
attribute (SQL's three-valued logic would silently drop them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scim2_models import ScimFilter
from scim2_models.exceptions import InvalidFilterException
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from idp.models import Account, AccountProfile, Agency, Group, GroupMember, Unit
from idp.official_data import fold_for_search
from idp.scim.attributes import ENTERPRISE, NAME_PARTS, SIMPLE
from idp.scim.errors import InvalidFilter
from idp.scim.schemas import (
    CORE_GROUP_SCHEMA,
    CORE_USER_SCHEMA,
    ENTERPRISE_SCHEMA,
    OFFICIAL_GROUP_SCHEMA,
    OFFICIAL_SCHEMA,
)

# A filter is one query-string parameter; longer ones are abuse, not provisioning.
MAX_FILTER_LENGTH = 2048

Value = Any


@dataclass(frozen=True)
class Attribute:
    """How one SCIM attribute maps to a column (RFC 7643 §2.2 ``caseExact``, type)."""

    column: Any  # a mapped column (or a constant) of the tables the resource is read from
    kind: str = "string"  # string | boolean | dateTime
    case_exact: bool = False
    # Folded columns hold fold_for_search() of the value: compare with a folded operand.
    folded: bool = False
    # Usernames are stored lowercase: compare with a lowercased operand, keeping the index.
    stored_lowercase: bool = False
    nullable: bool = True
    # Booleans: the clause that holds when the attribute is true.
    truth: Any = None


@dataclass(frozen=True)
class MultiValued:
    """A multi-valued attribute: its sub-attributes, and how a clause over one value becomes
    a clause over the resource (``EXISTS`` over other rows, or "has a value and ...")."""

    sub_attributes: dict[str, Attribute]
    any_value: Callable[[ColumnElement[bool]], ColumnElement[bool]]


@dataclass(frozen=True)
class ResourceAttributes:
    """What one resource type can be filtered on."""

    resource: str
    core_schema: str
    attributes: dict[tuple[str, str], Attribute]
    multi_valued: dict[tuple[str, str], MultiValued]

    def schema(self, uri: str) -> str | None:
        known = {schema for schema, _ in self.attributes} | {self.core_schema}
        return next((schema for schema in known if schema.lower() == uri.lower()), None)


def _constant(text: str) -> Attribute:
    return Attribute(literal(text, String), nullable=False)


_EMAIL_PRESENT = and_(Account.email.is_not(None), Account.email != "")
_PHONE_PRESENT = and_(Account.phone.is_not(None), Account.phone != "")


def stored(*path: str) -> Any:
    """A client-owned string kept in the JSON column (idp.scim.attributes), as SQL text:
    JSON_EXTRACT on SQLite, ``#>>`` on PostgreSQL."""
    return AccountProfile.scim_attributes[path].as_string()


ATTRIBUTES: dict[tuple[str, str], Attribute] = {
    (CORE_USER_SCHEMA, "id"): Attribute(Account.subject, case_exact=True, nullable=False),
    (CORE_USER_SCHEMA, "externalid"): Attribute(AccountProfile.external_id, case_exact=True),
    (CORE_USER_SCHEMA, "username"): Attribute(
        Account.username, stored_lowercase=True, nullable=False
    ),
    (CORE_USER_SCHEMA, "name.formatted"): Attribute(
        AccountProfile.search_name, folded=True, nullable=False
    ),
    # The full name, folded ("do thi" finds "Đỗ Thị"): a displayName sent beside a different
    # name.formatted is shown as sent but found by the full name.
    (CORE_USER_SCHEMA, "displayname"): Attribute(
        AccountProfile.search_name, folded=True, nullable=False
    ),
    **{
        (CORE_USER_SCHEMA, f"name.{part.lower()}"): Attribute(stored("name", part))
        for part in NAME_PARTS
    },
    **{(CORE_USER_SCHEMA, name.lower()): Attribute(stored(name)) for name in SIMPLE},
    (CORE_USER_SCHEMA, "emails"): Attribute(Account.email),
    (CORE_USER_SCHEMA, "emails.value"): Attribute(Account.email),
    (CORE_USER_SCHEMA, "phonenumbers"): Attribute(Account.phone),
    (CORE_USER_SCHEMA, "phonenumbers.value"): Attribute(Account.phone),
    (CORE_USER_SCHEMA, "active"): Attribute(
        Account.status, kind="boolean", nullable=False, truth=Account.status == "active"
    ),
    (CORE_USER_SCHEMA, "meta.created"): Attribute(
        Account.created_at, kind="dateTime", nullable=False
    ),
    (CORE_USER_SCHEMA, "meta.lastmodified"): Attribute(
        Account.updated_at, kind="dateTime", nullable=False
    ),
    **{
        (ENTERPRISE_SCHEMA, name.lower()): Attribute(stored("enterprise", name))
        for name in ENTERPRISE
        if name != "manager"
    },
    (ENTERPRISE_SCHEMA, "manager"): Attribute(
        stored("enterprise", "manager", "value"), case_exact=True
    ),
    (ENTERPRISE_SCHEMA, "manager.value"): Attribute(
        stored("enterprise", "manager", "value"), case_exact=True
    ),
    (OFFICIAL_SCHEMA, "unitcode"): Attribute(Unit.code, nullable=False),
    (OFFICIAL_SCHEMA, "unitname"): Attribute(Unit.name, nullable=False),
    (OFFICIAL_SCHEMA, "provincecode"): Attribute(Unit.province_code, nullable=False),
    (OFFICIAL_SCHEMA, "agency"): Attribute(Agency.name),
    (OFFICIAL_SCHEMA, "citizenid"): Attribute(AccountProfile.citizen_id, case_exact=True),
    (OFFICIAL_SCHEMA, "position"): Attribute(AccountProfile.position),
}

USER_ATTRIBUTES = ResourceAttributes(
    resource="User",
    core_schema=CORE_USER_SCHEMA,
    attributes=ATTRIBUTES,
    multi_valued={
        # An official has at most one e-mail and one phone, both of type "work"; the e-mail
        # is the primary one (as users.to_document shows them).
        (CORE_USER_SCHEMA, "emails"): MultiValued(
            sub_attributes={
                "value": Attribute(Account.email),
                "type": _constant("work"),
                "primary": Attribute(true(), kind="boolean", nullable=False, truth=true()),
            },
            any_value=lambda clause: and_(_EMAIL_PRESENT, clause),
        ),
        (CORE_USER_SCHEMA, "phonenumbers"): MultiValued(
            sub_attributes={"value": Attribute(Account.phone), "type": _constant("work")},
            any_value=lambda clause: and_(_PHONE_PRESENT, clause),
        ),
    },
)

GROUP_ATTRIBUTES = ResourceAttributes(
    resource="Group",
    core_schema=CORE_GROUP_SCHEMA,
    attributes={
        (CORE_GROUP_SCHEMA, "id"): Attribute(Group.scim_id, case_exact=True, nullable=False),
        (CORE_GROUP_SCHEMA, "externalid"): Attribute(Group.external_id, case_exact=True),
        (CORE_GROUP_SCHEMA, "displayname"): Attribute(
            Group.search_name, folded=True, nullable=False
        ),
        (CORE_GROUP_SCHEMA, "meta.created"): Attribute(
            Group.created_at, kind="dateTime", nullable=False
        ),
        (CORE_GROUP_SCHEMA, "meta.lastmodified"): Attribute(
            Group.updated_at, kind="dateTime", nullable=False
        ),
        (OFFICIAL_GROUP_SCHEMA, "unitcode"): Attribute(Unit.code, nullable=False),
        (OFFICIAL_GROUP_SCHEMA, "provincecode"): Attribute(Unit.province_code, nullable=False),
    },
    multi_valued={
        (CORE_GROUP_SCHEMA, "members"): MultiValued(
            sub_attributes={
                "value": Attribute(Account.subject, case_exact=True, nullable=False),
                "display": Attribute(AccountProfile.search_name, folded=True, nullable=False),
                "type": _constant("User"),
            },
            any_value=lambda clause: exists(
                select(GroupMember.account_id)
                .join(Account, Account.id == GroupMember.account_id)
                .join(AccountProfile, AccountProfile.account_id == Account.id)
                .where(
                    GroupMember.group_id == Group.id,
                    AccountProfile.deleted_at.is_(None),
                    clause,
                )
            ),
        ),
    },
)


def _name(path: AttrPath) -> str:
    return path.attr.lower() + (f".{path.sub_attr.lower()}" if path.sub_attr else "")


def _lookup(
    table: dict[tuple[str, str], Any], on: ResourceAttributes, path: AttrPath, name: str
) -> Any:
    """Attribute names are case-insensitive (RFC 7643 §2.1). Unqualified names are core
    attributes, or, as a convenience, extension attributes whose name is not a core one."""
    if path.uri is not None:
        schema = on.schema(path.uri)
        return table.get((schema, name)) if schema else None
    found = table.get((on.core_schema, name))
    if found is None:
        matches = [a for (_, n), a in table.items() if n == name]
        found = matches[0] if len(matches) == 1 else None
    return found


def resolve(path: AttrPath, on: ResourceAttributes = USER_ATTRIBUTES) -> Attribute:
    found: Attribute | None = _lookup(on.attributes, on, path, _name(path))
    if found is None:
        raise InvalidFilter(f"The attribute '{path}' cannot be filtered on ({on.resource}s).")
    return found


def parse(text: str) -> FilterNode:
    """Parse a filter; a syntax error is 400 ``invalidFilter`` saying where (RFC 7644 §3.12)."""
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilter(f"The filter is longer than {MAX_FILTER_LENGTH} characters.")
    try:
        return ScimFilter(text).ast
    except InvalidFilterException as error:
        raise InvalidFilter(f"The filter does not parse: {error.detail}.") from None
    except (ValueError, RecursionError):
        raise InvalidFilter("The filter does not parse.") from None


def to_clause(
    text: str,
    *,
    dialect: str,
    attributes: ResourceAttributes = USER_ATTRIBUTES,
    unknown_is_false: bool = False,
) -> ColumnElement[bool]:
    """The WHERE clause for a filter string, on the given SQL dialect ("sqlite", ...).

    ``unknown_is_false``: a search at the server root (§3.4.3) covers several resource types;
    an attribute this one lacks makes its comparisons false instead of an error."""
    return SqlFilter(dialect, attributes, unknown_is_false=unknown_is_false).visit(parse(text))


def _parse_datetime(value: Value, path: AttrPath) -> datetime:
    if not isinstance(value, str):
        raise InvalidFilter(f"'{path}' is compared with a dateTime string.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidFilter(f"'{value}' is not an RFC 3339 dateTime (for '{path}').") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SqlFilter(FilterVisitor[ColumnElement[bool]]):
    def __init__(
        self,
        dialect: str,
        attributes: ResourceAttributes = USER_ATTRIBUTES,
        *,
        unknown_is_false: bool = False,
        inside: str | None = None,
    ) -> None:
        self.dialect = dialect
        self.on = attributes
        self.unknown_is_false = unknown_is_false
        self.inside = inside  # the multi-valued attribute whose value filter is visited

    def _multi(self, path: AttrPath) -> MultiValued | None:
        found: MultiValued | None = _lookup(self.on.multi_valued, self.on, path, path.attr.lower())
        return found

    def _attribute(self, path: AttrPath) -> Attribute | None:
        """The attribute, or None for "a sub-attribute of a multi-valued one kept in other
        rows" (``members.value``) and, at the root, for an attribute this type lacks."""
        if self.inside is not None:
            multi = self._multi(AttrPath(self.inside))
            found = (
                multi.sub_attributes.get(path.attr.lower())
                if multi and path.uri is None and path.sub_attr is None
                else None
            )
            if found is None:
                raise InvalidFilter(
                    f"The attribute '{self.inside}[{path}]' cannot be filtered on "
                    f"({self.on.resource}s)."
                )
            return found
        try:
            return resolve(path, self.on)
        except InvalidFilter:
            if path.sub_attr is not None and self._multi(path) is not None:
                return None
            if self.unknown_is_false:
                return None
            raise

    def _through_values(self, path: AttrPath, node: FilterNode) -> ColumnElement[bool]:
        """``members.value eq "x"`` means ``members[value eq "x"]`` (RFC 7644 §3.4.2.2)."""
        multi = self._multi(path)
        if multi is None or path.sub_attr is None:
            return false()  # an attribute this resource type lacks (root search)
        inner = SqlFilter(self.dialect, self.on, inside=path.attr)
        return multi.any_value(inner.visit(node))

    def visit_logical_expr(self, node: LogicalExpr) -> ColumnElement[bool]:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_not(self, node: Not) -> ColumnElement[bool]:
        return not_(self.visit(node.expr))

    def visit_value_path(self, node: ValuePath) -> ColumnElement[bool]:
        if self.inside is not None:
            raise InvalidFilter(f"Value filters cannot be nested: '{node}'.")
        multi = self._multi(node.attr_path)
        if multi is None or node.attr_path.sub_attr is not None:
            if self.unknown_is_false and multi is None:
                return false()
            raise InvalidFilter(
                f"'{node.attr_path}' is not a multi-valued attribute that takes a value "
                f"filter ({self.on.resource}s)."
            )
        inner = SqlFilter(self.dialect, self.on, inside=node.attr_path.attr)
        return multi.any_value(inner.visit(node.val_filter))

    def visit_present(self, node: Present) -> ColumnElement[bool]:
        attribute = self._attribute(node.attr_path)
        if attribute is None:
            sub = node.attr_path.sub_attr
            return self._through_values(node.attr_path, Present(AttrPath(sub or "value")))
        column = attribute.column
        if not attribute.nullable:
            return true()
        if attribute.kind == "string":
            return and_(column.is_not(None), column != "")
        return column.is_not(None)

    def visit_comparison(self, node: Comparison) -> ColumnElement[bool]:
        attribute = self._attribute(node.attr_path)
        if attribute is None:
            bare = AttrPath(node.attr_path.sub_attr or "value")
            return self._through_values(node.attr_path, Comparison(bare, node.op, node.value))
        op, value = node.op, node.value
        if value is None:  # "attr eq null" is "not present" (RFC 7644 §3.4.2.2 pr)
            if op not in (CompareOperator.eq, CompareOperator.ne):
                raise InvalidFilter(f"Only eq and ne compare '{node.attr_path}' with null.")
            present = self.visit_present(Present(node.attr_path))
            return not_(present) if op == CompareOperator.eq else present
        if op == CompareOperator.ne:
            return not_(self._positive(attribute, CompareOperator.eq, value, node.attr_path))
        return self._positive(attribute, op, value, node.attr_path)

    def _positive(
        self, attribute: Attribute, op: CompareOperator, value: Value, path: AttrPath
    ) -> ColumnElement[bool]:
        column = attribute.column
        if attribute.kind == "boolean":
            clause = self._boolean(attribute.truth, op, value, path)
        elif attribute.kind == "dateTime":
            clause = self._ordered(column, op, _parse_datetime(value, path), path)
        else:
            clause = self._string(attribute, column, op, value, path)
        return and_(column.is_not(None), clause) if attribute.nullable else clause

    @staticmethod
    def _boolean(
        truth: Any, op: CompareOperator, value: Value, path: AttrPath
    ) -> ColumnElement[bool]:
        if op != CompareOperator.eq or not isinstance(value, bool):
            raise InvalidFilter(f"'{path}' is a boolean: use eq true or eq false.")
        # active = the account's status is "active"; disabled and locked are not.
        clause: ColumnElement[bool] = truth if value else not_(truth)
        return clause

    @staticmethod
    def _ordered(
        column: Any, op: CompareOperator, value: Any, path: AttrPath
    ) -> ColumnElement[bool]:
        comparisons: dict[CompareOperator, Callable[[], ColumnElement[bool]]] = {
            CompareOperator.eq: lambda: column == value,
            CompareOperator.gt: lambda: column > value,
            CompareOperator.ge: lambda: column >= value,
            CompareOperator.lt: lambda: column < value,
            CompareOperator.le: lambda: column <= value,
        }
        if op not in comparisons:
            raise InvalidFilter(f"'{op.value}' does not apply to '{path}'.")
        return comparisons[op]()

    def _string(
        self,
        attribute: Attribute,
        column: Any,
        op: CompareOperator,
        value: Value,
        path: AttrPath,
    ) -> ColumnElement[bool]:
        if not isinstance(value, str):
            raise InvalidFilter(f"'{path}' is compared with a string.")
        if attribute.folded:
            operand = fold_for_search(value)
        elif attribute.stored_lowercase:
            operand = value.lower()
        elif not attribute.case_exact:
            column, operand = func.lower(column), value.lower()
        else:
            operand = value
        if op in (CompareOperator.co, CompareOperator.sw, CompareOperator.ew):
            if operand == "":  # every string contains, starts and ends with ""
                return true()
            return self._match(column, op, operand, case_exact=attribute.case_exact)
        return self._ordered(column, op, operand, path)

    def _match(
        self, column: Any, op: CompareOperator, operand: str, *, case_exact: bool
    ) -> ColumnElement[bool]:
        # SQLite's LIKE ignores ASCII case: case-exact attributes use instr/substr there.
        if case_exact and self.dialect == "sqlite":
            if op == CompareOperator.co:
                return func.instr(column, operand) > 0
            if op == CompareOperator.sw:
                return func.substr(column, 1, len(operand)) == operand
            return func.substr(column, -len(operand)) == operand
        if op == CompareOperator.co:
            return column.contains(operand, autoescape=True)
        if op == CompareOperator.sw:
            return column.startswith(operand, autoescape=True)
        return column.endswith(operand, autoescape=True)
