"""Which claims each scope releases (OIDC Core §5.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from idp.models import Account

STANDARD_SCOPES = ("openid", "profile", "email", "phone", "offline_access")
# Ours (DESIGN: claims beyond the standard ones): where the official works. The values come
# from idp.units.unit_claims, which needs the database; callers pass them in.
UNIT_SCOPE = "unit"
UNIT_CLAIMS = ("province_code", "province_name", "unit_code", "unit_name", "agency", "position")
# The official's citizen ID (CCCD), for apps that must tie an official to national records
# and for another commune-sso that signs officials in through this one (idp.federation links
# by it). Under a scope of its own: few apps need it, and consent names it.
CITIZEN_ID_SCOPE = "citizen_id"
CITIZEN_ID_CLAIM = "citizen_id"
# Provisioning clients (client_credentials) use it for the SCIM 2.0 API at /scim/v2.
SCIM_SCOPE = "scim"
# The CA's REST API at /ca/api/v1 (ca_admin/web/api.py): read, request, approve, revoke, and
# validate signatures (a shared app checking documents it receives).
CA_SCOPES = ("ca:read", "ca:request", "ca:approve", "ca:revoke", "ca:validate")
# An administrator's own token for the admin API at /admin/api/v1 (idp/admin_api/).
ADMIN_SCOPE = "admin"
SUPPORTED_SCOPES = (
    *STANDARD_SCOPES,
    UNIT_SCOPE,
    CITIZEN_ID_SCOPE,
    SCIM_SCOPE,
    *CA_SCOPES,
    ADMIN_SCOPE,
)

CLAIMS_BY_SCOPE: dict[str, tuple[str, ...]] = {
    "profile": ("name", "preferred_username", "updated_at", "locale"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
}

SUPPORTED_CLAIMS = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "sid",
    "amr",
    "acr",
    *(claim for claims in CLAIMS_BY_SCOPE.values() for claim in claims),
    *UNIT_CLAIMS,
    CITIZEN_ID_CLAIM,
)


def wants_directory_claims(scope: str) -> bool:
    """Whether ``scope`` releases claims from the official's profile (idp.units)."""
    return not {UNIT_SCOPE, CITIZEN_ID_SCOPE}.isdisjoint(scope.split())


def claims_for_scope(
    account: Account, scope: str, *, directory_claims: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``directory_claims`` (from idp.units.directory_claims): the unit claims are released
    only under the unit scope, the citizen ID only under its own."""
    scopes = set(scope.split())
    claims: dict[str, Any] = {}
    if "profile" in scopes:
        claims["name"] = account.full_name
        claims["preferred_username"] = account.username
        claims["updated_at"] = int(account.updated_at.timestamp())
        claims["locale"] = "vi-VN"
    if "email" in scopes and account.email:
        claims["email"] = account.email
        claims["email_verified"] = account.email_verified
    if "phone" in scopes and account.phone:
        claims["phone_number"] = account.phone
        claims["phone_number_verified"] = False
    if UNIT_SCOPE in scopes and directory_claims:
        claims.update(
            {name: directory_claims[name] for name in UNIT_CLAIMS if name in directory_claims}
        )
    if CITIZEN_ID_SCOPE in scopes and directory_claims and directory_claims.get(CITIZEN_ID_CLAIM):
        claims[CITIZEN_ID_CLAIM] = directory_claims[CITIZEN_ID_CLAIM]
    return claims
