"""Authlib's view of a presented token for the introspection and revocation endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from sqlalchemy.orm import Session

from idp import token_store
from idp.authentication_levels import acr_of
from idp.models import RefreshToken
from idp.oauth.access_tokens import AccessTokenView, looks_like_jwt, read_access_token
from idp.oauth.grants import OAuthClient
from idp.runtime import IdpRuntime

INTROSPECTED_CLAIMS = (
    "scope",
    "client_id",
    "sub",
    "aud",
    "iss",
    "exp",
    "iat",
    "jti",
    "sid",
    # RFC 9068 §2.2.1: how the official behind the token signed in (the grant's login).
    "auth_time",
    "acr",
    "amr",
    "cnf",  # RFC 9449 §6.2, RFC 8705 §3.2: the resource server checks the binding
)


def access_token_introspection(
    claims: Mapping[str, Any], *, username: str | None
) -> dict[str, Any]:
    """RFC 7662 §2.2 members of an active access token (Authlib adds ``active`` last); the
    username when the token has an official behind it."""
    body: dict[str, Any] = {key: claims[key] for key in INTROSPECTED_CLAIMS if key in claims}
    body["token_type"] = "DPoP" if "jkt" in claims.get("cnf", {}) else "Bearer"
    if username is not None:
        body["username"] = username
    return body


class PresentedAccessToken:
    kind = "access_token"

    def __init__(self, runtime: IdpRuntime, session: Session, view: AccessTokenView) -> None:
        self.runtime, self.session, self.view = runtime, session, view

    def check_client(self, client: OAuthClient) -> bool:
        return self.view.client_id == client.client_id

    def is_expired(self) -> bool:
        return int(self.view.claims["exp"]) <= self.runtime.clock.now().timestamp()

    def is_revoked(self) -> bool:
        grant = self.view.grant
        if grant is not None and not token_store.is_grant_usable(grant, self.runtime.clock.now()):
            return True
        return token_store.is_access_token_revoked(self.session, self.view.jti)

    def introspection(self) -> dict[str, Any]:
        grant = self.view.grant
        return access_token_introspection(
            self.view.claims, username=grant.account.username if grant is not None else None
        )


class PresentedRefreshToken:
    kind = "refresh_token"

    def __init__(self, runtime: IdpRuntime, row: RefreshToken) -> None:
        self.runtime, self.row = runtime, row

    def check_client(self, client: OAuthClient) -> bool:
        return self.row.grant.client_pk == client.info.id

    def is_expired(self) -> bool:
        return self.runtime.clock.now() >= self.row.expires_at

    def is_revoked(self) -> bool:
        now = self.runtime.clock.now()
        return (
            self.row.revoked_at is not None
            or self.row.rotated_at is not None
            or not token_store.is_grant_usable(self.row.grant, now)
        )

    def introspection(self) -> dict[str, Any]:
        grant = self.row.grant
        return {
            "scope": self.row.scope,
            "client_id": grant.client.client_id,
            "sub": grant.account.subject,
            "username": grant.account.username,
            "iss": self.runtime.settings.issuer,
            "exp": int(self.row.expires_at.timestamp()),
            "iat": int(self.row.created_at.timestamp()),
            "auth_time": int(grant.auth_time.timestamp()),
            "acr": acr_of(grant.amr),
            "token_type": "refresh_token",
        }


PresentedToken = PresentedAccessToken | PresentedRefreshToken
TOKEN_TYPE_HINTS = ("access_token", "refresh_token")


class UnsupportedTokenTypeError(OAuth2Error):
    """RFC 7009 §2.2.1, presented as every RFC 6749 §5.2 error: a 400. (Authlib's own class
    answers 401 without a WWW-Authenticate challenge, which RFC 9110 §15.5.2 forbids.)"""

    error = "unsupported_token_type"
    status_code = 400


def check_token_parameters(form: Mapping[str, str]) -> None:
    """RFC 7009 §2.1 / RFC 7662 §2.1: ``token`` is required, ``token_type_hint`` optional."""
    if "token" not in form:
        raise InvalidRequestError("Missing 'token' parameter.")
    hint = form.get("token_type_hint")
    if hint and hint not in TOKEN_TYPE_HINTS:
        raise UnsupportedTokenTypeError("Unsupported 'token_type_hint'.")


def find_presented_token(
    runtime: IdpRuntime, session: Session, token: str, hint: str | None
) -> PresentedToken | None:
    """RFC 7009 §2.1 / RFC 7662 §2.1: the hint only orders the search."""
    lookups = ["access_token", "refresh_token"]
    if hint == "refresh_token":
        lookups.reverse()
    for kind in lookups:
        if kind == "access_token" and looks_like_jwt(token):
            view = read_access_token(runtime, session, token, check_status=False)
            if view is not None:
                return PresentedAccessToken(runtime, session, view)
        if kind == "refresh_token":
            row = token_store.find_refresh_token(session, token)
            if row is not None:
                return PresentedRefreshToken(runtime, row)
    return None
