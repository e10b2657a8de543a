"""Authlib grant classes with thin storage hooks (CONVENTIONS §2): no SQL here, only calls to
:mod:`idp.token_store`. What Authlib does not provide (PITFALLS) is added here: rotation of
refresh tokens with reuse detection, an ID token on refresh, revocation on code replay.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749 import ClientMixin, InvalidGrantError, InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc7636 import CodeChallenge

from core import audit
from core.clock import Clock
from core.web.client_certificate import has_thumbprint
from idp import clients, token_store
from idp.clients import ClientInfo
from idp.models import Account, AuthorizationCode, BrowserSession, RefreshToken
from idp.oauth.token_issuer import issue_id_token

if TYPE_CHECKING:
    from idp.oauth.server import OAuthServer

log = logging.getLogger(__name__)

# The order is Authlib's order of trying them; a request authenticates one client, with the
# method that client registered (OAuthClient.check_endpoint_auth_method).
CONFIDENTIAL_ONLY = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "tls_client_auth",  # RFC 8705 §2.1 (idp/oauth/mutual_tls.py)
    "self_signed_tls_client_auth",  # RFC 8705 §2.2
]
CONFIDENTIAL_OR_PUBLIC = [*CONFIDENTIAL_ONLY, "none"]


class OAuthClient(ClientMixin):
    """Authlib's view of a registered client; ``clock`` decides whether a secret replaced with
    an overlap is still accepted."""

    def __init__(self, info: ClientInfo, clock: Clock) -> None:
        self.info = info
        self.client_id = info.client_id
        self.clock = clock

    def get_client_id(self) -> str:
        return self.info.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OIDC Core §3.1.2.1: redirect_uri is required; never guess one.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.info.scope.split())
        return " ".join(s for s in dict.fromkeys(scope.split()) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.info.redirect_uris  # exact string match, RFC 9700 §4.1.3

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.check_secret(self.info, client_secret, now=self.clock.now())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.info.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.info.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.info.grant_types

    @property
    def id_token_signed_response_alg(self) -> str:
        return self.info.id_token_signed_response_alg


@dataclass
class AuthenticatedUser:
    """The official behind an authorization request, as Authlib's ``request.user``."""

    account: Account
    browser_session: BrowserSession
    auth_time: datetime
    amr: list[str]


class CodeRecord:
    """Authlib's view of a redeemed authorization code."""

    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.grant = row.grant
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


class RefreshRecord:
    def __init__(self, row: RefreshToken) -> None:
        self.row = row
        self.grant = row.grant

    def check_client(self, client: OAuthClient) -> bool:
        return self.grant.client_pk == client.info.id

    def get_scope(self) -> str:
        return self.row.scope


class InvalidDpopProofError(OAuth2Error):
    """RFC 9449 §5 / §12.2."""

    error = "invalid_dpop_proof"


class SenderConstrainedTokens:
    """After client authentication, before anything is redeemed: a client registered for
    DPoP-bound tokens (RFC 9449 §5.2, or the FAPI 2.0 profile) must send a proof, and one
    registered for certificate-bound tokens (RFC 8705 §3) must present its certificate."""

    server: OAuthServer
    request: Any

    def authenticate_token_endpoint_client(self) -> OAuthClient:
        client: OAuthClient = super().authenticate_token_endpoint_client()  # type: ignore[misc]
        if client.info.requires_dpop and self.server.dpop_jkt is None:
            raise InvalidDpopProofError("This client must send a DPoP proof.")
        if (
            client.info.tls_client_certificate_bound_access_tokens
            and self.request.http.client_certificate is None
        ):
            raise InvalidRequestError(
                "This client's tokens are bound to its TLS client certificate: present it."
            )
        return client


class CodeGrant(SenderConstrainedTokens, AuthorizationCodeGrant):
    """RFC 6749 §4.1 with PKCE (RFC 7636) for every client."""

    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_OR_PUBLIC
    server: OAuthServer

    def save_authorization_code(self, code: str, request: Any) -> None:
        user: AuthenticatedUser = request.user
        runtime, session = self.server.runtime, self.server.session
        data = request.payload.data
        token_store.create_grant_with_code(
            session=session,
            clock=runtime.clock,
            account=user.account,
            client_pk=request.client.info.id,
            browser_session=user.browser_session,
            scope=request.scope,
            auth_time=user.auth_time,
            amr=user.amr,
            lifetime=timedelta(seconds=runtime.settings.refresh_token_ttl),
            code=token_store.NewCode(
                code=code,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                nonce=data.get("nonce") or None,
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                lifetime=timedelta(seconds=runtime.settings.authorization_code_ttl),
                dpop_jkt=data.get("dpop_jkt") or None,
            ),
        )

    def query_authorization_code(self, code: str, client: OAuthClient) -> CodeRecord | None:
        runtime, session = self.server.runtime, self.server.session
        redemption = token_store.redeem_code(
            session=session, clock=runtime.clock, code=code, client_pk=client.info.id
        )
        if redemption.replayed:
            audit.record(
                session,
                clock=runtime.clock,
                actor=f"client:{client.client_id}",
                action="token.code_replay",
                target=f"client:{client.client_id}",
                client_address=self.request.http.client_address,
            )
        if redemption.code is None:
            return None
        bound_to = redemption.code.dpop_jkt
        if bound_to is not None and bound_to != self.server.dpop_jkt:
            # RFC 9449 §10: the code was bound to a key at the authorization endpoint.
            raise InvalidGrantError("The authorization code is bound to another DPoP key.")
        return CodeRecord(redemption.code)

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Nothing to do: redemption already marked the code consumed (compare-and-set)."""

    def authenticate_user(self, authorization_code: CodeRecord) -> Account | None:
        account = authorization_code.grant.account
        return account if account.is_active else None

    def generate_token(
        self,
        user: Any = None,
        scope: Any = None,
        grant_type: Any = None,
        expires_in: Any = None,
        include_refresh_token: bool = True,
    ) -> dict:
        code: CodeRecord = self.request.authorization_code
        return self.server.token_response(
            client=self.request.client.info,
            grant=code.grant,
            scope=code.get_scope(),
            include_refresh_token=include_refresh_token,
            parent=None,
        )


class RequiredS256Challenge(CodeChallenge):
    """PKCE with S256 only. The authorization endpoint already refuses a missing challenge or
    any other method (Authlib alone would default to "plain" and require PKCE only for public
    clients); here the token endpoint then requires the verifier for every code."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"


class IdTokenExtension:
    """Adds the ID token to code and refresh responses (OIDC Core §3.1.3.3, §12.2)."""

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_create_token_response", self.add_id_token)

    def add_id_token(self, grant: Any, response: tuple[int, dict, Any]) -> None:
        _, token, _ = response
        if "openid" not in token.get("scope", "").split():
            return
        if isinstance(grant, CodeGrant):
            record: CodeRecord = grant.request.authorization_code
            family, nonce = record.grant, record.row.nonce
        else:
            family, nonce = grant.request.refresh_token.grant, None  # §12.2: no nonce
        token["id_token"] = issue_id_token(
            grant.server.runtime,
            client=grant.request.client.info,  # the authenticated client: the family's own
            account=family.account,
            grant=family,
            scope=token["scope"],
            access_token=token["access_token"],
            nonce=nonce,
        )


class RotatingRefreshGrant(SenderConstrainedTokens, RefreshTokenGrant):
    """RFC 6749 §6 with rotation on every use; reuse of a rotated token revokes the family
    (OAuth 2.0 Security BCP, RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_OR_PUBLIC
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: OAuthServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        runtime, session = self.server.runtime, self.server.session
        row = token_store.usable_refresh_token(
            session=session,
            clock=runtime.clock,
            token=refresh_token,
            client_pk=self.request.client.info.id,
        )
        bound_to = row.grant.dpop_jkt if row else None
        if bound_to is not None and bound_to != self.server.dpop_jkt:
            # RFC 9449 §5: a public client's refresh token needs a proof of the same key.
            raise InvalidGrantError("The refresh token is bound to another DPoP key.")
        certificate_bound = row.grant.certificate_thumbprint if row else None
        if certificate_bound is not None and not has_thumbprint(
            self.request.http.client_certificate, certificate_bound
        ):
            # RFC 8705 §3: a public client's refresh token needs the same certificate.
            raise InvalidGrantError("The refresh token is bound to another TLS certificate.")
        return RefreshRecord(row) if row else None

    def authenticate_user(self, refresh_token: RefreshRecord) -> Account | None:
        account = refresh_token.grant.account
        return account if account.is_active else None

    def issue_token(self, user: Account, refresh_token: RefreshRecord) -> dict:
        scope = self.request.payload.scope or refresh_token.get_scope()
        return self.server.token_response(
            client=self.request.client.info,
            grant=refresh_token.grant,
            scope=scope,
            include_refresh_token=True,
            parent=refresh_token.row,
        )

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        runtime = self.server.runtime
        if not token_store.mark_rotated(
            session=self.server.session, clock=runtime.clock, token=refresh_token.row
        ):
            raise InvalidGrantError("The refresh token was already used.")


class ServiceCredentialsGrant(SenderConstrainedTokens, ClientCredentialsGrant):
    """RFC 6749 §4.4 for service clients (confidential only)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_ONLY
    server: OAuthServer

    def generate_token(
        self,
        user: Any = None,
        scope: Any = None,
        grant_type: Any = None,
        expires_in: Any = None,
        include_refresh_token: bool = True,
    ) -> dict:
        client: OAuthClient = self.request.client
        # User-facing scopes mean nothing without a user; by default grant the rest.
        requested = scope or client.info.scope
        granted = " ".join(
            s
            for s in client.get_allowed_scope(requested).split()
            if s not in ("openid", "offline_access")
        )
        return self.server.token_response(
            client=client.info, grant=None, scope=granted, include_refresh_token=False, parent=None
        )
