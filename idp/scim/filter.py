"""SCIM filters (RFC 7644 §3.4.2.2) translated to SQL, never evaluated over loaded rows.

``scim2-models`` parses the filter; :class:`SqlFilter` walks its syntax tree and builds one
WHERE clause over ``Account`` joined with ``AccountProfile``, ``Unit`` and ``Agency``.

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
from sqlalchemy import ColumnElement, and_, func, not_, or_, true

from idp.models import Account, AccountProfile, Agency, Unit
from idp.official_data import fold_for_search
from idp.scim.errors import InvalidFilter
from idp.scim.schemas import CORE_USER_SCHEMA, ENTERPRISE_SCHEMA, OFFICIAL_SCHEMA

# A filter is one query-string parameter; longer ones are abuse, not provisioning.
MAX_FILTER_LENGTH = 2048

Value = Any


@dataclass(frozen=True)
class Attribute:
    """How one SCIM attribute maps to a column (RFC 7643 §2.2 ``caseExact``, type)."""

    column: Any  # a mapped column of Account, AccountProfile, Unit or Agency
    kind: str = "string"  # string | boolean | dateTime
    case_exact: bool = False
    # Folded columns hold fold_for_search() of the value: compare with a folded operand.
    folded: bool = False
    # Usernames are stored lowercase: compare with a lowercased operand, keeping the index.
    stored_lowercase: bool = False
    nullable: bool = True


ATTRIBUTES: dict[tuple[str, str], Attribute] = {
    (CORE_USER_SCHEMA, "id"): Attribute(Account.subject, case_exact=True, nullable=False),
    (CORE_USER_SCHEMA, "externalid"): Attribute(AccountProfile.external_id, case_exact=True),
    (CORE_USER_SCHEMA, "username"): Attribute(
        Account.username, stored_lowercase=True, nullable=False
    ),
    (CORE_USER_SCHEMA, "name.formatted"): Attribute(
        AccountProfile.search_name, folded=True, nullable=False
    ),
    (CORE_USER_SCHEMA, "displayname"): Attribute(
        AccountProfile.search_name, folded=True, nullable=False
    ),
    (CORE_USER_SCHEMA, "emails"): Attribute(Account.email),
    (CORE_USER_SCHEMA, "emails.value"): Attribute(Account.email),
    (CORE_USER_SCHEMA, "phonenumbers"): Attribute(Account.phone),
    (CORE_USER_SCHEMA, "phonenumbers.value"): Attribute(Account.phone),
    (CORE_USER_SCHEMA, "active"): Attribute(Account.status, kind="boolean", nullable=False),
    (CORE_USER_SCHEMA, "meta.created"): Attribute(
        Account.created_at, kind="dateTime", nullable=False
    ),
    (CORE_USER_SCHEMA, "meta.lastmodified"): Attribute(
        Account.updated_at, kind="dateTime", nullable=False
    ),
    (ENTERPRISE_SCHEMA, "organization"): Attribute(Unit.name, nullable=False),
    (ENTERPRISE_SCHEMA, "department"): Attribute(Agency.name),
    (OFFICIAL_SCHEMA, "unitcode"): Attribute(Unit.code, nullable=False),
    (OFFICIAL_SCHEMA, "provincecode"): Attribute(Unit.province_code, nullable=False),
    (OFFICIAL_SCHEMA, "agency"): Attribute(Agency.name),
    (OFFICIAL_SCHEMA, "citizenid"): Attribute(AccountProfile.citizen_id, case_exact=True),
    (OFFICIAL_SCHEMA, "position"): Attribute(AccountProfile.position),
}
_SCHEMAS = {CORE_USER_SCHEMA.lower(): CORE_USER_SCHEMA}
_SCHEMAS.update({ENTERPRISE_SCHEMA.lower(): ENTERPRISE_SCHEMA})
_SCHEMAS.update({OFFICIAL_SCHEMA.lower(): OFFICIAL_SCHEMA})


def resolve(path: AttrPath) -> Attribute:
    """Attribute names are case-insensitive (RFC 7643 §2.1). Unqualified names are core
    attributes, or, as a convenience, extension attributes whose name is not a core one."""
    name = path.attr.lower() + (f".{path.sub_attr.lower()}" if path.sub_attr else "")
    if path.uri is not None:
        schema = _SCHEMAS.get(path.uri.lower())
        found = ATTRIBUTES.get((schema, name)) if schema else None
    else:
        found = ATTRIBUTES.get((CORE_USER_SCHEMA, name))
        if found is None:
            matches = [a for (s, n), a in ATTRIBUTES.items() if n == name]
            found = matches[0] if len(matches) == 1 else None
    if found is None:
        raise InvalidFilter(f"The attribute '{path}' cannot be filtered on.")
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


def to_clause(text: str, *, dialect: str) -> ColumnElement[bool]:
    """The WHERE clause for a filter string, on the given SQL dialect ("sqlite", ...)."""
    return SqlFilter(dialect).visit(parse(text))


def _parse_datetime(value: Value, path: AttrPath) -> datetime:
    if not isinstance(value, str):
        raise InvalidFilter(f"'{path}' is compared with a dateTime string.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidFilter(f"'{value}' is not an RFC 3339 dateTime (for '{path}').") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class SqlFilter(FilterVisitor[ColumnElement[bool]]):
    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def visit_logical_expr(self, node: LogicalExpr) -> ColumnElement[bool]:
        terms = [self.visit(term) for term in node.terms]
        return and_(*terms) if node.op == LogicalOperator.and_ else or_(*terms)

    def visit_not(self, node: Not) -> ColumnElement[bool]:
        return not_(self.visit(node.expr))

    def visit_value_path(self, node: ValuePath) -> ColumnElement[bool]:
        raise InvalidFilter(f"Value filters such as '{node}' are not supported yet.")

    def visit_present(self, node: Present) -> ColumnElement[bool]:
        attribute = resolve(node.attr_path)
        column = attribute.column
        if not attribute.nullable:
            return true()
        if attribute.kind == "string":
            return and_(column.is_not(None), column != "")
        return column.is_not(None)

    def visit_comparison(self, node: Comparison) -> ColumnElement[bool]:
        attribute = resolve(node.attr_path)
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
            clause = self._boolean(column, op, value, path)
        elif attribute.kind == "dateTime":
            clause = self._ordered(column, op, _parse_datetime(value, path), path)
        else:
            clause = self._string(attribute, column, op, value, path)
        return and_(column.is_not(None), clause) if attribute.nullable else clause

    @staticmethod
    def _boolean(
        column: Any, op: CompareOperator, value: Value, path: AttrPath
    ) -> ColumnElement[bool]:
        if op != CompareOperator.eq or not isinstance(value, bool):
            raise InvalidFilter(f"'{path}' is a boolean: use eq true or eq false.")
        # active = the account's status is "active"; disabled and locked are not.
        return column == "active" if value else column != "active"

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
