"""The User attributes a SCIM client owns and no column of ours holds (RFC 7643 §4.1, §4.3).

``/Schemas`` publishes the whole core User and the enterprise extension as ``readWrite``; what
has no column of its own (name parts, ``displayName``, ``nickName``, ``title``, every e-mail,
phone and address, the enterprise attributes, ...) is kept, validated, in one JSON column
(``AccountProfile.scim_attributes``) and shown back exactly as stored. The e-mail and phone
that the rest of the service uses (notifications, claims) stay in their columns: the primary
value (else the first) of ``emails`` and ``phoneNumbers``.

Names are case-insensitive on the way in (RFC 7643 §2.1) and canonical on the way out. Empty
strings and empty objects count as absent. A value we cannot keep is refused (400
``invalidValue`` naming the attribute), never dropped.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from idp.scim.errors import InvalidValue

# Core simple attributes kept as sent (RFC 7643 §4.1.1); preferredLanguage, locale and timezone
# are not checked against their registries: a directory's value is shown back as it sent it.
SIMPLE = (
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
)
NAME_PARTS = ("familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix")
_PLURAL = ("value", "display", "type", "primary")
# Multi-valued attributes (RFC 7643 §2.4, §4.1.2) and their sub-attributes.
MULTI_VALUED: dict[str, tuple[str, ...]] = {
    "emails": _PLURAL,
    "phoneNumbers": _PLURAL,
    "ims": _PLURAL,
    "photos": _PLURAL,
    "addresses": (
        "formatted",
        "streetAddress",
        "locality",
        "region",
        "postalCode",
        "country",
        "type",
        "primary",
    ),
    "entitlements": _PLURAL,
    "roles": _PLURAL,
    "x509Certificates": _PLURAL,
}
ENTERPRISE = (
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
    "manager",
)
MAX_STRING_LENGTH = 2048
MAX_VALUES = 50  # of one multi-valued attribute: a person, not a mailing list


def get(mapping: Mapping[str, Any] | None, name: str) -> Any:
    """Case-insensitive attribute lookup (RFC 7643 §2.1); None when absent."""
    if not mapping:
        return None
    wanted = name.lower()
    for key, value in mapping.items():
        if key.lower() == wanted:
            return value
    return None


def invalid(attribute: str, message: str) -> InvalidValue:
    return InvalidValue(f"{attribute}: {message}")


def text(value: Any, attribute: str) -> str | None:
    """A string attribute: trimmed, NFC, no control character (PostgreSQL refuses NUL, and
    they are invisible where the value is shown); empty means absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(attribute, "must be a string.")
    value = unicodedata.normalize("NFC", value.strip())
    if len(value) > MAX_STRING_LENGTH:
        raise invalid(attribute, f"at most {MAX_STRING_LENGTH} characters.")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise invalid(attribute, "must not contain control characters.")
    return value or None


def boolean(value: Any, attribute: str) -> bool:
    """A boolean; Microsoft Entra ID sends "True"/"False" as strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise invalid(attribute, "must be true or false.")


def object_value(value: Any, attribute: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(attribute, "must be an object.")
    return value


def multi_valued(value: Any, attribute: str) -> list[dict[str, Any]]:
    """A multi-valued attribute as a list of canonical objects; at most one is primary
    (RFC 7643 §2.4: "the primary attribute value 'true' MUST appear no more than once")."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]  # one value sent without its list (seen from PATCH clients)
    if not isinstance(value, list):
        raise invalid(attribute, "must be a list of objects.")
    if len(value) > MAX_VALUES:
        raise invalid(attribute, f"at most {MAX_VALUES} values.")
    known = MULTI_VALUED[attribute]
    items: list[dict[str, Any]] = []
    for raw in value:
        if not isinstance(raw, dict):
            raise invalid(attribute, "must be a list of objects.")
        item: dict[str, Any] = {}
        for key, sub_value in raw.items():
            canonical = next((name for name in known if name.lower() == key.lower()), None)
            if canonical is None:
                raise invalid(attribute, f"has no sub-attribute '{key}'.")
            if canonical == "primary":
                # false is a value (RFC 7643 §2.4): shown back as sent, like true.
                if sub_value is not None:
                    item["primary"] = boolean(sub_value, f"{attribute}.primary")
                continue
            kept = text(sub_value, f"{attribute}.{canonical}")
            if kept is not None:
                item[canonical] = kept
        if set(item) - {"primary"} and item not in items:
            items.append(item)
    if sum(1 for item in items if item.get("primary")) > 1:
        raise invalid(attribute, "at most one value can be primary.")
    return items


def chosen(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The primary value, else the first (the one our columns hold)."""
    return next((item for item in items if item.get("primary")), items[0] if items else None)


def _manager(value: Any) -> dict[str, str] | None:
    """RFC 7643 §4.3 ``manager``: its ``value`` is the manager's id (``$ref`` is derived and
    ``displayName`` is readOnly). Entra ID sends the id as a plain string."""
    attribute = "manager"
    if isinstance(value, str):
        identifier = text(value, attribute)
    else:
        identifier = text(get(object_value(value, attribute), "value"), f"{attribute}.value")
    return {"value": identifier} if identifier else None


def names_extension(schemas: Any, extension: str) -> bool:
    """``schemas`` is ``[extension]``: what clients (scim2-models among them) write inside an
    extension's object. It says what the object is and sets nothing; any other ``schemas``
    member there is refused (readOnly, RFC 7643 §3)."""
    return (
        isinstance(schemas, list)
        and len(schemas) == 1
        and isinstance(schemas[0], str)
        and schemas[0].lower() == extension.lower()
    )


def enterprise(value: Any, attribute: str) -> dict[str, Any]:
    """The enterprise extension (RFC 7643 §4.3), every attribute client-owned."""
    given = object_value(value, attribute) or {}
    kept: dict[str, Any] = {}
    for key, sub_value in given.items():
        if key.lower() == "schemas" and names_extension(sub_value, attribute):
            continue
        canonical = next((name for name in ENTERPRISE if name.lower() == key.lower()), None)
        if canonical is None:
            raise invalid(attribute, f"has no attribute '{key}'.")
        if canonical == "manager":
            manager = _manager(sub_value)
            if manager:
                kept["manager"] = manager
            continue
        found = text(sub_value, f"{attribute}:{canonical}")
        if found is not None:
            kept[canonical] = found
    return kept


def name_parts(name: Mapping[str, Any] | None) -> dict[str, str]:
    parts: dict[str, str] = {}
    for part in NAME_PARTS:
        found = text(get(name, part), f"name.{part}")
        if found is not None:
            parts[part] = found
    return parts
