"""PATCH operations (RFC 7644 §3.5.2) applied to a copy of the User's representation.

The patched document is then validated in full by :func:`idp.scim.writes.parse` and written
by :func:`idp.scim.writes.apply`, exactly as a PUT: a failing operation or an invalid result
leaves the official unchanged (the operations are atomic).

Supported paths: ``active``, ``userName``, ``name`` and its sub-attributes, ``displayName``
(the full name, an alias of ``name.formatted``), ``emails``, ``phoneNumbers`` (with a value
filter of one ``eq`` comparison, e.g. ``emails[type eq "work"].value``), ``externalId`` and our
extension's ``unitCode``, ``citizenId``, ``agency``, ``position``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

from scim2_models.path import Comparison, LogicalExpr, LogicalOperator, Not, Present

from idp.scim.attributes import ENTERPRISE, SIMPLE, names_extension
from idp.scim.attributes import MULTI_VALUED as MULTI_VALUED_ATTRIBUTES
from idp.scim.errors import (
    InvalidFilter,
    InvalidPath,
    InvalidSyntax,
    InvalidValue,
    Mutability,
    NoTarget,
)
from idp.scim.filter import parse as parse_filter
from idp.scim.schemas import (
    CORE_GROUP_SCHEMA,
    CORE_USER_SCHEMA,
    ENTERPRISE_SCHEMA,
    OFFICIAL_GROUP_SCHEMA,
    OFFICIAL_SCHEMA,
)

PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_OPERATIONS = 100

CORE_ATTRIBUTES = {
    name.lower(): name
    for name in (
        "active",
        "userName",
        "name",
        "displayName",
        "externalId",
        *SIMPLE,
        *MULTI_VALUED_ATTRIBUTES,
    )
}
MULTI_VALUED = set(MULTI_VALUED_ATTRIBUTES)
OFFICIAL_ATTRIBUTES = {
    name.lower(): name for name in ("unitCode", "citizenId", "agency", "position")
}
ENTERPRISE_ATTRIBUTES = {name.lower(): name for name in ENTERPRISE}
# Complex single-valued attributes, whose sub-attributes a path may name.
COMPLEX = {"name", "manager"}
READ_ONLY = {"id", "meta", "groups", "schemas", "provincecode", "unitname"}
# Published required (idp.scim.schemas): every official is enabled or not and has a unit, so a
# remove is refused (400 mutability) instead of silently putting the default back.
REQUIRED = {"active", "unitCode"}
EXTENSIONS = (OFFICIAL_SCHEMA, ENTERPRISE_SCHEMA)

_ATTRIBUTE = re.compile(
    r"^(?P<attr>[A-Za-z][\w$-]*)(?:\[(?P<filter>[^\]]+)\])?(?:\.(?P<sub>[A-Za-z][\w$-]*))?$"
)
_COMPARISON = re.compile(
    r'^\s*(?P<attr>[A-Za-z][\w$-]*)\s+eq\s+(?P<value>"(?:[^"\\]|\\.)*"|true|false|null)\s*$',
    re.IGNORECASE,
)


def _key(mapping: dict[str, Any], name: str) -> str:
    """The key ``mapping`` already uses for ``name`` (any case), else ``name``."""
    for key in mapping:
        if key.lower() == name.lower():
            return key
    return name


class _Target:
    def __init__(self, container: dict[str, Any], key: str, filter_: str | None, sub: str | None):
        self.container = container
        self.key = key
        self.filter = filter_
        self.sub = sub

    @property
    def multi_valued(self) -> bool:
        return self.key in MULTI_VALUED


def _resolve(document: dict[str, Any], path: str) -> _Target:
    rest = path.strip()
    container = document
    allowed = CORE_ATTRIBUTES
    lowered = rest.lower()
    if lowered.startswith(OFFICIAL_SCHEMA.lower() + ":"):
        rest = rest[len(OFFICIAL_SCHEMA) + 1 :]
        container = document.setdefault(_key(document, OFFICIAL_SCHEMA), {})
        allowed = OFFICIAL_ATTRIBUTES
    elif lowered.startswith(ENTERPRISE_SCHEMA.lower() + ":"):
        rest = rest[len(ENTERPRISE_SCHEMA) + 1 :]
        container = document.setdefault(_key(document, ENTERPRISE_SCHEMA), {})
        allowed = ENTERPRISE_ATTRIBUTES
    elif lowered.startswith(CORE_USER_SCHEMA.lower() + ":"):
        rest = rest[len(CORE_USER_SCHEMA) + 1 :]
    if not isinstance(container, dict):
        raise InvalidPath(f"'{path}': the extension is not an object.")
    match = _ATTRIBUTE.match(rest)
    if match is None:
        raise InvalidPath(f"'{path}' is not a valid attribute path.")
    attr, filter_, sub = match["attr"], match["filter"], match["sub"]
    if attr.lower() in READ_ONLY:
        raise Mutability(f"{path}: {attr} is read-only.")
    canonical = allowed.get(attr.lower())
    if canonical is None:
        raise InvalidPath(f"'{path}': no such attribute (or it cannot be modified).")
    if filter_ is not None and canonical not in MULTI_VALUED:
        raise InvalidPath(f"'{path}': only multi-valued attributes take a value filter.")
    if sub is not None and canonical not in MULTI_VALUED | COMPLEX:
        raise InvalidPath(f"'{path}': {canonical} has no sub-attributes.")
    return _Target(container, _key(container, canonical), filter_, sub)


def _matcher(filter_: str) -> Any:
    match = _COMPARISON.match(filter_)
    if match is None:
        raise InvalidFilter(f"'{filter_}': only one 'attribute eq value' comparison is supported.")
    attr = match["attr"]
    expected = json.loads(match["value"].lower() if match["value"][0] != '"' else match["value"])

    def matches(item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        actual = item.get(_key(item, attr))
        if isinstance(expected, str) and isinstance(actual, str):
            return actual.lower() == expected.lower()
        return bool(actual == expected)

    return matches


def _as_items(value: Any, attribute: str) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, dict) for item in items):
        raise InvalidValue(f"{attribute}: must be a list of objects with a 'value'.")
    return copy.deepcopy(items)


def _clear_primary(items: list[Any]) -> None:
    """RFC 7644 §3.5.2: a value made primary makes the others "primary": false (a value
    without the sub-attribute is not primary already, and stays as the client sent it)."""
    for item in items:
        if isinstance(item, dict) and _key(item, "primary") in item:
            item[_key(item, "primary")] = False


def _apply_each_attribute(
    document: dict[str, Any],
    op: str,
    value: Any,
    *,
    extensions: tuple[str, ...],
    apply: Callable[[dict[str, Any], str, str | None, Any], None],
) -> None:
    """An operation without a path (RFC 7644 §3.5.2.1, .3): ``value`` is an object of
    attributes, each applied as if it were the path. An extension's object is unfolded into
    ``extension:attribute`` paths; keys may also be dotted (``name.givenName``) or carry an
    extension's URN (``urn:...:enterprise:2.0:User:department``), as Microsoft Entra ID sends
    them."""
    if op == "remove":
        raise NoTarget("A remove operation needs a path.")
    if not isinstance(value, dict):
        raise InvalidValue("An operation without a path takes an object of attributes.")
    for name, item in value.items():
        if name.lower() == "schemas":
            continue
        extension = next((urn for urn in extensions if urn.lower() == name.lower()), None)
        if extension is not None:
            if not isinstance(item, dict):
                raise InvalidValue(f"{extension}: must be an object.")
            for sub_name, sub_value in item.items():
                if sub_name.lower() == "schemas" and names_extension(sub_value, extension):
                    continue  # the extension object as scim2-models and others write it
                apply(document, op, f"{extension}:{sub_name}", sub_value)
        else:
            apply(document, op, name, item)


def _match_filter_item(filter_: str) -> dict[str, Any] | None:
    """The value an ``attr eq "text"`` filter describes ({"type": "work"}), for an add that
    finds no value to change (Entra ID adds ``emails[type eq "work"].value`` that way)."""
    match = _COMPARISON.match(filter_)
    if match is None or match["value"][0] != '"':
        return None
    return {match["attr"]: json.loads(match["value"])}


def _apply(document: dict[str, Any], op: str, path: str | None, value: Any) -> None:
    if path is None:
        _apply_each_attribute(document, op, value, extensions=EXTENSIONS, apply=_apply)
        return
    extension = next((urn for urn in EXTENSIONS if urn.lower() == path.strip().lower()), None)
    if extension is not None:  # the whole extension object
        given = value if isinstance(value, dict) else {}
        if extension == OFFICIAL_SCHEMA and (
            op == "remove" or (op == "replace" and _key(given, "unitCode") not in given)
        ):
            raise Mutability(f"{path}: unitCode is required and cannot be removed.")
        if op == "remove":
            document.pop(_key(document, extension), None)
            return
        if op == "replace":
            document[_key(document, extension)] = {}
        _apply_each_attribute(document, op, {extension: value}, extensions=EXTENSIONS, apply=_apply)
        return
    target = _resolve(document, path)
    container, key = target.container, target.key
    if target.filter is not None:
        matches = _matcher(target.filter)
        items = container.get(key) or []
        matched = [item for item in items if matches(item)]
        described = _match_filter_item(target.filter)
        if not matched and op == "add" and target.sub is not None and described is not None:
            container[key] = [*items, {**described, target.sub: copy.deepcopy(value)}]
            return
        if not matched:
            raise NoTarget(f"'{path}': the filter matches no value.")
        if op == "remove":
            if target.sub is None:
                container[key] = [item for item in items if not matches(item)]
            else:
                for item in matched:
                    item.pop(_key(item, target.sub), None)
            return
        if target.sub is not None:
            if target.sub.lower() == "primary" and value is True:
                _clear_primary(items)
            for item in matched:
                item[_key(item, target.sub)] = copy.deepcopy(value)
            return
        if not isinstance(value, dict):
            raise InvalidValue(f"{path}: the value must be an object.")
        if any(v is True for k, v in value.items() if k.lower() == "primary"):
            _clear_primary(items)
        for item in matched:
            for name, item_value in value.items():
                item[_key(item, name)] = copy.deepcopy(item_value)
        return
    if target.sub is not None:
        if target.multi_valued:
            items = container.get(key) or []
            if op == "remove":
                for item in items:
                    item.pop(_key(item, target.sub), None)
            else:
                if not items:
                    raise NoTarget(f"'{path}': {key} has no value to modify.")
                for item in items:
                    item[_key(item, target.sub)] = copy.deepcopy(value)
            return
        complex_value = container.get(key)
        if op == "remove":
            if isinstance(complex_value, dict):
                complex_value.pop(_key(complex_value, target.sub), None)
            return
        if not isinstance(complex_value, dict):
            complex_value = container[key] = {}
        complex_value[_key(complex_value, target.sub)] = copy.deepcopy(value)
        return
    if op == "remove":
        if key in REQUIRED:
            raise Mutability(f"{path}: {key} is required and cannot be removed.")
        container.pop(key, None)
        return
    if target.multi_valued:
        new_items = _as_items(value, key)
        if op == "replace":
            container[key] = new_items
            return
        existing = container.get(key) or []
        if any(_key(i, "primary") in i and i[_key(i, "primary")] is True for i in new_items):
            _clear_primary(existing)
        container[key] = existing + [item for item in new_items if item not in existing]
        return
    if key in COMPLEX and isinstance(value, dict):
        current = container.get(key)
        merged = dict(current) if isinstance(current, dict) else {}
        for name, item_value in value.items():
            merged[_key(merged, name)] = item_value
        container[key] = merged
        return
    container[key] = copy.deepcopy(value)


def _operations(body: Any) -> list[tuple[str, str | None, Any]]:
    """The PatchOp message's operations as (op, path, value), checked (RFC 7644 §3.5.2)."""
    if not isinstance(body, dict):
        raise InvalidSyntax("The request body must be a PatchOp message.")
    schemas = body.get(_key(body, "schemas"))
    if not isinstance(schemas, list) or PATCH_SCHEMA not in schemas:
        raise InvalidSyntax(f"schemas: must list {PATCH_SCHEMA}.")
    operations = body.get(_key(body, "Operations"))
    if not isinstance(operations, list) or not operations:
        raise InvalidSyntax("Operations: at least one operation is required.")
    if len(operations) > MAX_OPERATIONS:
        raise InvalidValue(f"Operations: at most {MAX_OPERATIONS} per request.")
    checked = []
    for operation in operations:
        if not isinstance(operation, dict):
            raise InvalidSyntax("Operations: each operation is an object.")
        op = operation.get(_key(operation, "op"))
        if not isinstance(op, str) or op.lower() not in ("add", "replace", "remove"):
            raise InvalidSyntax("op: must be 'add', 'replace' or 'remove'.")
        path = operation.get(_key(operation, "path"))
        if path is not None and not isinstance(path, str):
            raise InvalidPath("path: must be a string.")
        has_value = any(k.lower() == "value" for k in operation)
        if op.lower() != "remove" and not has_value:
            raise InvalidValue(f"{op}: a value is required.")
        checked.append((op.lower(), path, operation.get(_key(operation, "value"))))
    return checked


def apply_operations(document: dict[str, Any], body: Any) -> dict[str, Any]:
    """Return a patched copy of ``document``; ``document`` itself is never changed."""
    operations = _operations(body)
    patched = copy.deepcopy(document)
    patched.pop(_key(patched, "groups"), None)  # readOnly: changed through /Groups
    for op, path, value in operations:
        _apply(patched, op, path, value)
    return patched


def keep_agency_kind_on_move(
    document: dict[str, Any], patched: dict[str, Any], kind: str | None
) -> None:
    """An official moved without a new agency keeps the same kind of agency in the new unit
    (the old agency's name belongs to the old unit)."""
    before = document.get(OFFICIAL_SCHEMA) or {}
    after = patched.get(_key(patched, OFFICIAL_SCHEMA)) or {}
    if not isinstance(after, dict) or kind is None:
        return
    unit_key, agency_key = _key(after, "unitCode"), _key(after, "agency")
    moved = after.get(unit_key) != before.get("unitCode")
    if moved and after.get(agency_key) == before.get("agency") and before.get("agency"):
        after[agency_key] = kind


# --- Groups ----------------------------------------------------------------------------------

GROUP_ATTRIBUTES = {name.lower(): name for name in ("displayName", "externalId", "members")}
GROUP_READ_ONLY = {"id", "meta", "schemas"}


def _member_matcher(filter_: str) -> Any:
    """A value filter over members (``value``, ``display``, ``type``), evaluated in Python
    over the group's document: the same grammar as search filters (RFC 7644 §3.4.2.2)."""
    node = parse_filter(filter_)

    def text(item: dict[str, Any], name: str) -> Any:
        return item.get(_key(item, name))

    def evaluate(expression: Any, item: dict[str, Any]) -> bool:
        if isinstance(expression, LogicalExpr):
            results = [evaluate(term, item) for term in expression.terms]
            return all(results) if expression.op == LogicalOperator.and_ else any(results)
        if isinstance(expression, Not):
            return not evaluate(expression.expr, item)
        if isinstance(expression, Present | Comparison):
            path = expression.attr_path
            if path.uri or path.sub_attr or path.attr.lower() not in ("value", "display", "type"):
                raise InvalidFilter(f"'{filter_}': members are filtered on value, display, type.")
            actual = text(item, path.attr)
            if isinstance(expression, Present):
                return actual not in (None, "")
            expected, op = expression.value, expression.op.value
            if not isinstance(actual, str) or not isinstance(expected, str):
                return op == "ne" and actual != expected
            if path.attr.lower() != "value":  # value is caseExact (RFC 7643 §4.2)
                actual, expected = actual.lower(), expected.lower()
            checks = {
                "eq": actual == expected,
                "ne": actual != expected,
                "co": expected in actual,
                "sw": actual.startswith(expected),
                "ew": actual.endswith(expected),
            }
            if op not in checks:
                raise InvalidFilter(f"'{filter_}': '{op}' does not apply to members.")
            return checks[op]
        raise InvalidFilter(f"'{filter_}': not a filter over members.")

    return lambda item: isinstance(item, dict) and evaluate(node, item)


def _group_apply(document: dict[str, Any], op: str, path: str | None, value: Any) -> None:
    if path is None:
        _apply_each_attribute(
            document, op, value, extensions=(OFFICIAL_GROUP_SCHEMA,), apply=_group_apply
        )
        return
    rest = path.strip()
    if rest.lower() == OFFICIAL_GROUP_SCHEMA.lower():  # the whole extension object
        given = value if isinstance(value, dict) else {}
        if op == "remove" or (op == "replace" and _key(given, "unitCode") not in given):
            raise Mutability(f"{path}: a group's unit cannot change.")
        _apply_each_attribute(
            document,
            op,
            {OFFICIAL_GROUP_SCHEMA: value},
            extensions=(OFFICIAL_GROUP_SCHEMA,),
            apply=_group_apply,
        )
        return
    if rest.lower().startswith(OFFICIAL_GROUP_SCHEMA.lower() + ":"):
        name = rest[len(OFFICIAL_GROUP_SCHEMA) + 1 :]
        if name.lower() not in ("unitcode", "provincecode"):
            raise InvalidPath(f"'{path}': no such attribute.")
        extension = document.get(OFFICIAL_GROUP_SCHEMA) or {}
        if op == "remove" or value != extension.get(name[0].lower() + name[1:]):
            raise Mutability(f"{path}: a group's unit cannot change.")
        return
    if rest.lower().startswith(CORE_GROUP_SCHEMA.lower() + ":"):
        rest = rest[len(CORE_GROUP_SCHEMA) + 1 :]
    match = _ATTRIBUTE.match(rest)
    if match is None:
        raise InvalidPath(f"'{path}' is not a valid attribute path.")
    attr, filter_, sub = match["attr"], match["filter"], match["sub"]
    if attr.lower() in GROUP_READ_ONLY:
        raise Mutability(f"{path}: {attr} is read-only.")
    canonical = GROUP_ATTRIBUTES.get(attr.lower())
    if canonical is None:
        raise InvalidPath(f"'{path}': no such attribute (or it cannot be modified).")
    if canonical != "members":
        if filter_ or sub:
            raise InvalidPath(f"'{path}': {canonical} has no sub-attributes.")
        if op == "remove":
            if canonical == "displayName":
                raise InvalidValue("displayName: is required and cannot be removed.")
            document.pop(canonical, None)
        else:
            document[canonical] = copy.deepcopy(value)
        return
    if sub is not None:
        raise Mutability(f"'{path}': a member's sub-attributes cannot be modified.")
    members: list[Any] = document.get("members") or []
    if filter_ is not None:
        if op != "remove":
            raise InvalidPath(f"'{path}': add or replace members without a value filter.")
        matches = _member_matcher(filter_)
        kept = [item for item in members if not matches(item)]
        if len(kept) == len(members):
            raise NoTarget(f"'{path}': the filter matches no member.")
        document["members"] = kept
        return
    if op == "remove":
        if value is None:
            document["members"] = []
            return
        # Azure AD's form: remove the members listed in the value.
        gone = {_key_value(item) for item in _as_items(value, "members")}
        document["members"] = [item for item in members if _key_value(item) not in gone]
        return
    new_items = _as_items(value, "members")
    if op == "replace":
        document["members"] = new_items
        return
    known = {_key_value(item) for item in members}
    document["members"] = members + [i for i in new_items if _key_value(i) not in known]


def _key_value(item: dict[str, Any]) -> Any:
    return item.get(_key(item, "value"))


def apply_group_operations(document: dict[str, Any], body: Any) -> dict[str, Any]:
    """Return a patched copy of a Group's ``document`` (members as ``{"value": id}``); the
    result is then validated in full as a PUT body, so a failing operation changes nothing."""
    operations = _operations(body)
    patched = copy.deepcopy(document)
    patched["members"] = [{"value": m["value"]} for m in patched.get("members") or []]
    for op, path, value in operations:
        _group_apply(patched, op, path, value)
    return patched
