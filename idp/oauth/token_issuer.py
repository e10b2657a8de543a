"""Access tokens (RFC 9068 JWT profile) and ID tokens (OIDC Core §2, §3.1.3.6)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import object_session

from idp import units
from idp.authentication_levels import acr_of
from idp.claims import claims_for_scope, wants_directory_claims
from idp.clients import ClientInfo
from idp.models import Account, Client, Grant
from idp.runtime import IdpRuntime

# OIDC Core §3.1.3.6: at_hash uses the hash of the JWS alg; Ed25519 pairs with SHA-512.
HALF_HASH = {"RS256": hashlib.sha256, "ES256": hashlib.sha256, "EdDSA": hashlib.sha512}


def half_hash(value: str, alg: str) -> str:
    digest = HALF_HASH[alg](value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int


def issue_access_token(
    runtime: IdpRuntime,
    *,
    client: ClientInfo,
    scope: str,
    grant: Grant | None,
    confirmation: dict[str, str] | None = None,
) -> IssuedAccessToken:
    """RFC 9068 §2: typ "at+jwt", iss/exp/aud/sub/client_id/iat/jti, plus scope; with an
    official behind it, §2.2.1's auth_time, acr and amr of the login that granted it (the
    grant's: a refreshed token keeps them).

    ``confirmation``: the key the token is bound to, as the ``cnf`` claim (RFC 7800 §3.1):
    ``{"jkt": ...}`` for DPoP (RFC 9449 §6.1), ``{"x5t#S256": ...}`` for a TLS client
    certificate (RFC 8705 §3.1).

    ``grant_id`` ties a user token to its grant, so revoking the grant (logout, code replay,
    refresh reuse) makes userinfo and introspection reject it without a per-token row.
    """
    now = runtime.clock.now()
    ttl = runtime.settings.access_token_ttl
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {
        "iss": runtime.settings.issuer,
        "sub": grant.account.subject if grant else client.client_id,
        "aud": client.client_id,
        "client_id": client.client_id,
        "iat": epoch(now),
        "exp": epoch(now) + ttl,
        "jti": jti,
        "scope": scope,
    }
    if confirmation:
        claims["cnf"] = confirmation
    if grant is not None:
        claims["auth_time"] = epoch(grant.auth_time)
        claims["acr"] = acr_of(grant.amr)
        if grant.amr:
            claims["amr"] = list(grant.amr)
        claims["grant_id"] = grant.grant_id
        if grant.sid:
            claims["sid"] = grant.sid
    token = runtime.keyring.sign_jwt(
        claims, alg=client.access_token_signed_response_alg, now=now, typ="at+jwt"
    )
    return IssuedAccessToken(token=token, jti=jti, expires_in=ttl)


def issue_id_token(
    runtime: IdpRuntime,
    *,
    client: Client | ClientInfo,
    account: Account,
    grant: Grant,
    scope: str,
    access_token: str | None,
    nonce: str | None,
) -> str:
    """OIDC Core §2. ``nonce`` is omitted, never null, when the request had none."""
    now = runtime.clock.now()
    alg = client.id_token_signed_response_alg
    claims: dict[str, Any] = {
        "iss": runtime.settings.issuer,
        "sub": account.subject,
        "aud": client.client_id,
        "iat": epoch(now),
        "exp": epoch(now) + runtime.settings.id_token_ttl,
        "auth_time": epoch(grant.auth_time),
    }
    if nonce:
        claims["nonce"] = nonce
    if access_token:
        claims["at_hash"] = half_hash(access_token, alg)
    if grant.sid:
        claims["sid"] = grant.sid
    if grant.amr:
        claims["amr"] = list(grant.amr)
    # OIDC Core §2: the level the login reached (idp.authentication_levels).
    claims["acr"] = acr_of(grant.amr)
    # The family's account is loaded in the token request's session; the unit claims need it.
    session = object_session(account)
    extra = (
        units.directory_claims(session, account)
        if session and wants_directory_claims(scope)
        else None
    )
    claims.update(claims_for_scope(account, scope, directory_claims=extra))
    return runtime.keyring.sign_jwt(claims, alg=alg, now=now)
