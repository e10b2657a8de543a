"""The resources we serve and how we describe them (RFC 7643 §4, §5, §6, §7).

The wire format comes from ``scim2-models``: the core User schema, the enterprise extension
(§4.3) and an extension of ours for where an official works.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    Extension,
    Filter,
    Group,
    ListResponse,
    Mutability,
    Patch,
    Reference,
    Required,
    ResourceType,
    Returned,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
    User,
)

from idp.agencies import AGENCY_KINDS

OFFICIAL_SCHEMA = "urn:commune-sso:scim:schemas:extension:official:1.0:User"
OFFICIAL_GROUP_SCHEMA = "urn:commune-sso:scim:schemas:extension:official:1.0:Group"
CORE_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

DEFAULT_COUNT = 100
MAX_COUNT = 500
# RFC 7644 §3.7.4: what /Bulk accepts; ServiceProviderConfig says the same.
BULK_MAX_OPERATIONS = 1000
BULK_MAX_PAYLOAD_BYTES = 1_048_576
UNPUBLISHED_USER_ATTRIBUTES = frozenset({"password"})


class OfficialUser(Extension):
    """Where a commune official works: unit, province, agency, citizen ID and position.

    The unit's name and province are derived from ``unitCode`` (readOnly); the enterprise
    extension's ``organization`` and ``department`` are the client's own, never these."""

    __schema__ = URN(OFFICIAL_SCHEMA)

    # Required: every official belongs to a unit, so the attribute cannot be removed; a create
    # or replace without it gets the default (RFC 7644 §3.5.1 lets the provider assign one).
    unit_code: Annotated[str | None, Required.true] = None
    """Official code of the commune, ward or special zone (5 digits) or province (2 digits).
    Defaults to the client's own unit when its reach is one unit or one province."""

    # Derived attributes are returned on request only (RFC 7643 §7 returned "request"): the
    # extension then shows what the client set, and nothing it did not.
    unit_name: Annotated[str | None, Mutability.read_only, Returned.request] = None
    """Name of the unit, derived from the unit code (returned when asked for in attributes)."""

    province_code: Annotated[str | None, Mutability.read_only, Returned.request] = None
    """Official 2-digit code of the province, derived from the unit code (returned when asked
    for in attributes)."""

    # RFC 7643 §7 canonicalValues: the standard name of each kind (a client reaching one unit
    # gets that unit's agency names instead: with_agency_choices). A kind's key
    # ("peoples_committee") or an abbreviation ("UBND") is accepted too.
    agency: str | None = Field(default=None, examples=list(AGENCY_KINDS.values()))
    """The agency inside the unit (People's Committee, Party Committee, ...)."""

    citizen_id: Annotated[str | None, Uniqueness.server] = None
    """Citizen identity card number (CCCD, 12 digits); one person, one official."""

    position: str | None = None
    """Position or title."""


class OfficialGroup(Extension):
    """The unit a group belongs to: who may see and manage it, and whom it may contain."""

    __schema__ = URN(OFFICIAL_GROUP_SCHEMA)

    unit_code: Annotated[str | None, Mutability.immutable, Required.true] = None
    """Official code of the ward (5 digits) or province (2 digits) the group belongs to; set
    when the group is made (default: the client's only unit), never changed."""

    province_code: Annotated[str | None, Mutability.read_only, Returned.request] = None
    """Official 2-digit code of the province, derived from the unit code (returned when asked
    for in attributes)."""


ScimUser = User[EnterpriseUser | OfficialUser]
UserListResponse = ListResponse[ScimUser]
ScimGroup = Group[OfficialGroup]  # type: ignore[type-arg]


def service_provider_config() -> ServiceProviderConfig:
    """RFC 7643 §5, truthful: PATCH, bulk, filter (and /.search), sort and ETags; no
    password change."""
    return ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(
            supported=True,
            max_operations=BULK_MAX_OPERATIONS,
            max_payload_size=BULK_MAX_PAYLOAD_BYTES,
        ),
        filter=Filter(supported=True, max_results=MAX_COUNT),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="OAuth Bearer Token",
                description=(
                    "An RFC 9068 access token from this server's token endpoint, obtained "
                    "with the client_credentials grant and the scope 'scim'."
                ),
                spec_uri=Reference("https://www.rfc-editor.org/rfc/rfc6750"),
                primary=True,
            )
        ],
    )


def user_resource_type() -> ResourceType:
    """RFC 7643 §6."""
    return ResourceType.model_validate(
        {
            "id": "User",
            "name": "User",
            "description": "A commune official",
            "endpoint": "/Users",
            "schema": CORE_USER_SCHEMA,
            "schemaExtensions": [
                {"schema": ENTERPRISE_SCHEMA, "required": False},
                # Required (RFC 7643 §6): every official has a unit, so every User carries
                # the extension; a create without it gets the client's own unit.
                {"schema": OFFICIAL_SCHEMA, "required": True},
            ],
        }
    )


def group_resource_type() -> ResourceType:
    """RFC 7643 §6."""
    return ResourceType.model_validate(
        {
            "id": "Group",
            "name": "Group",
            "description": "A group of commune officials, belonging to one unit",
            "endpoint": "/Groups",
            "schema": CORE_GROUP_SCHEMA,
            # Required, as for Users: every group belongs to a unit.
            "schemaExtensions": [{"schema": OFFICIAL_GROUP_SCHEMA, "required": True}],
        }
    )


# canonicalValues of unitCode are the caller's units when it reaches at most this many (a ward's
# or a province's); a system-wide client would get a 3,321-entry list nobody reads.
MAX_UNIT_CHOICES = 200


def with_unit_choices(documents: list[dict[str, Any]], codes: list[str]) -> list[dict[str, Any]]:
    """``documents`` with the unit codes a client may use as canonicalValues of unitCode
    (RFC 7643 §7: suggested values). A directory's mapping screen, or a tester filling
    attributes, then picks a unit this client may provision instead of guessing."""
    for document in documents:
        if document["id"] not in (OFFICIAL_SCHEMA, OFFICIAL_GROUP_SCHEMA):
            continue
        for attribute in document["attributes"]:
            if attribute["name"] == "unitCode":
                attribute["canonicalValues"] = codes
    return documents


def with_agency_choices(documents: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """``documents`` with ``names`` as canonicalValues of the User's agency, for a client that
    reaches one unit: the names of that unit's agencies (see :func:`with_unit_choices`)."""
    for document in documents:
        if document["id"] != OFFICIAL_SCHEMA:
            continue
        for attribute in document["attributes"]:
            if attribute["name"] == "agency":
                attribute["canonicalValues"] = names
    return documents


def schema_documents() -> list[dict[str, Any]]:
    """RFC 7643 §7: the schemas Users and Groups are made of."""
    models = (User, EnterpriseUser, OfficialUser, Group, OfficialGroup)
    documents = [model.to_schema().model_dump() for model in models]
    # No password is ever set over SCIM (changePassword is false; officials get an
    # activation code): publishing the writeOnly attribute would promise what we drop.
    documents[0]["attributes"] = [
        attribute
        for attribute in documents[0]["attributes"]
        if attribute["name"] not in UNPUBLISHED_USER_ATTRIBUTES
    ]
    for attribute in documents[0]["attributes"]:
        # Every account is enabled or disabled: "active" cannot be removed (a create or
        # replace without it gets true, RFC 7644 §3.5.1).
        if attribute["name"] == "active":
            attribute["required"] = True
    for attribute in documents[3]["attributes"]:
        # A member's display is the official's current name, whatever the client sent
        # (RFC 7643 §2.4 lets it be "a human-readable name"; we derive it).
        if attribute["name"] == "members":
            for sub_attribute in attribute["subAttributes"]:
                if sub_attribute["name"] == "display":
                    sub_attribute["mutability"] = "readOnly"
                    sub_attribute["description"] = "The member's name, derived."
    return documents
