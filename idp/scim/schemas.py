"""The resources we serve and how we describe them (RFC 7643 §4, §5, §6, §7).

The wire format comes from ``scim2-models``: the core User schema, the enterprise extension
(§4.3) and an extension of ours for where an official works.
"""

from __future__ import annotations

from typing import Any

from scim2_models import (
    URN,
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    Extension,
    Filter,
    ListResponse,
    Patch,
    Reference,
    ResourceType,
    ServiceProviderConfig,
    Sort,
    User,
)

OFFICIAL_SCHEMA = "urn:commune-sso:scim:schemas:extension:official:1.0:User"
CORE_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

DEFAULT_COUNT = 100
MAX_COUNT = 500


class OfficialUser(Extension):
    """Where a commune official works: unit, province, agency, citizen ID and position."""

    __schema__ = URN(OFFICIAL_SCHEMA)

    unit_code: str | None = None
    """Official code of the commune, ward or special zone (5 digits) or province (2 digits)."""

    province_code: str | None = None
    """Official 2-digit code of the province."""

    agency: str | None = None
    """The agency inside the unit (People's Committee, Party Committee, ...)."""

    citizen_id: str | None = None
    """Citizen identity card number (CCCD, 12 digits)."""

    position: str | None = None
    """Position or title."""


ScimUser = User[EnterpriseUser | OfficialUser]
UserListResponse = ListResponse[ScimUser]


def service_provider_config() -> ServiceProviderConfig:
    """RFC 7643 §5, truthful: PATCH yes; no bulk, /.search or password change."""
    return ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
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
                {"schema": OFFICIAL_SCHEMA, "required": False},
            ],
        }
    )


def schema_documents() -> list[dict[str, Any]]:
    """RFC 7643 §7: the schemas a User is made of."""
    return [model.to_schema().model_dump() for model in (User, EnterpriseUser, OfficialUser)]
