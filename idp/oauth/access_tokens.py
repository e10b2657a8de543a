"""Validation of our own RFC 9068 access tokens for userinfo, introspection and revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from sqlalchemy.orm import Session

from core.web.client_certificate import has_thumbprint
from idp import token_store
from idp.models import Grant
from idp.runtime import IdpRuntime
from idp.token_state import TokenCheck
from keys.errors import InvalidToken


@dataclass
class AccessTokenView:
    claims: dict[str, Any]
    grant: Grant | None
    # The token state cache's version before the grant was read (idp/token_state.py): what
    # the general path learns is kept only if nothing changed since.
    state_version: int | None = None

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])

    @property
    def client_id(self) -> str:
        return str(self.claims["client_id"])

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(int(self.claims["exp"]), UTC)


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and len(token) < 8192


def verified_access_claims(runtime: IdpRuntime, token: str) -> dict[str, Any] | None:
    """The claims of one of our RFC 9068 access tokens, signature and expiry checked (no
    database: the key ring is in memory), or None."""
    if not looks_like_jwt(token):
        return None
    now = runtime.clock.now()
    try:
        verified = runtime.keyring.verify_jwt(token, now=now)
    except InvalidToken:
        return None
    header, claims = verified.header, dict(verified.claims)
    if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
        return None  # an ID token or logout token is not an access token (RFC 9068 §4)
    if claims.get("iss") != runtime.settings.issuer or "jti" not in claims:
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now.timestamp():
        return None
    return claims


def cached_token_check(runtime: IdpRuntime, claims: dict[str, Any]) -> TokenCheck | None:
    """The token state cache's verdict on verified claims (None: ask the database)."""
    grant_id = claims.get("grant_id")
    return runtime.token_state.check(
        grant_id=None if grant_id is None else str(grant_id),
        jti=str(claims["jti"]),
        now=runtime.clock.now().timestamp(),
    )


def is_sender_constrained(claims: dict[str, Any]) -> bool:
    """Bound to a DPoP key or a certificate (``cnf``, RFC 9449 §6, RFC 8705 §3)."""
    return "cnf" in claims


def read_access_token(
    runtime: IdpRuntime,
    session: Session,
    token: str,
    *,
    check_status: bool = True,
    sender_verified: bool = False,
    client_certificate: x509.Certificate | None = None,
) -> AccessTokenView | None:
    """The token's claims if it is ours, unexpired, not revoked and its grant still stands.

    A sender-constrained token stands only where its caller proved the key
    (``sender_verified``: a DPoP proof) or where the request came with the very certificate
    the token is bound to (``client_certificate``, forwarded by our proxy: RFC 8705 §3.2):
    presented as a plain bearer token otherwise it is refused (RFC 9449 §7.2, RFC 8705 §3),
    wherever our tokens are accepted (userinfo, SCIM, the admin and CA APIs). Introspection
    and revocation read it with ``check_status=False``.
    """
    claims = verified_access_claims(runtime, token)
    if claims is None:
        return None
    if (
        check_status
        and is_sender_constrained(claims)
        and not sender_verified
        # RFC 8705 §3.1: the certificate's x5t#S256 (idp/oauth/mutual_tls.py binds it).
        and not has_thumbprint(client_certificate, claims["cnf"].get("x5t#S256"))
    ):
        return None
    now = runtime.clock.now()
    state_version = runtime.token_state.version
    if check_status and "grant_id" not in claims:
        # A client's own token (client_credentials, e.g. SCIM provisioning) stands unless its
        # jti was revoked: the token state cache knows that without a query while it is fresh.
        verdict = cached_token_check(runtime, claims)
        if verdict is not None:
            if not verdict.usable:
                return None
            return AccessTokenView(claims=claims, grant=None, state_version=state_version)
    grant = None
    if "grant_id" in claims:
        grant = token_store.find_grant(session, str(claims["grant_id"]))
        if grant is None:
            return None
        runtime.token_state.remember_grant(grant, read_at_version=state_version)
    view = AccessTokenView(claims=claims, grant=grant, state_version=state_version)
    if check_status:
        if grant is not None and not token_store.is_grant_usable(grant, now):
            return None
        if token_store.is_access_token_revoked(session, view.jti):
            return None
    return view
