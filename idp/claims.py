"""Which claims each scope releases (OIDC Core §5.4)."""

from __future__ import annotations

from typing import Any

from idp.models import Account

STANDARD_SCOPES = ("openid", "profile", "email", "phone", "offline_access")

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
    *(claim for claims in CLAIMS_BY_SCOPE.values() for claim in claims),
)


def claims_for_scope(account: Account, scope: str) -> dict[str, Any]:
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
    return claims
