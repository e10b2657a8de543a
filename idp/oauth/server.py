"""Authlib's AuthorizationServer, built per request around one database session.

Authlib's client lookup hooks receive no request, so the database session cannot travel with
the request; a server per request (a handful of small objects) keeps it explicit instead of
hiding it in a context variable.
"""

from __future__ import annotations

import re
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer
from cryptography import x509
from sqlalchemy.orm import Session
from starlette.responses import Response

from idp import token_store
from idp.claims import SUPPORTED_SCOPES
from idp.clients import MTLS_AUTH_METHODS, PRIVATE_KEY_JWT, ClientInfo
from idp.models import Grant, RefreshToken
from idp.oauth.client_assertion import authenticate_private_key_jwt
from idp.oauth.client_authentication import (
    authenticate_client_secret_basic,
    refuse_several_methods,
)
from idp.oauth.grants import (
    CodeGrant,
    IdTokenExtension,
    OAuthClient,
    RequiredS256Challenge,
    RotatingRefreshGrant,
    ServiceCredentialsGrant,
)
from idp.oauth.http import HttpInput, OAuthRequest, to_starlette
from idp.oauth.mutual_tls import CONFIRMATION_CLAIM, authenticate_mutual_tls, confirmation_of
from idp.oauth.token_issuer import issue_access_token
from idp.runtime import IdpRuntime

# RFC 6749 Appendix A.1: client-id = *VSCHAR (%x20-7E); ours are at most 64 characters. Anything
# else names no client, and is never sent to the database (PostgreSQL refuses NUL in text).
CLIENT_ID = re.compile(r"[\x20-\x7e]{1,64}")


def is_client_id(value: str) -> bool:
    return CLIENT_ID.fullmatch(value) is not None


class OAuthServer(AuthorizationServer):
    def __init__(self, runtime: IdpRuntime, session: Session, *, for_authorization: bool = False):
        super().__init__(scopes_supported=list(SUPPORTED_SCOPES))
        self.runtime = runtime
        self.session = session
        self.for_authorization = for_authorization
        # The key of the request's verified DPoP proof (RFC 9449 §5), set by the token
        # endpoint before Authlib runs; the tokens issued are bound to it.
        self.dpop_jkt: str | None = None
        # The TLS client certificate our proxy forwarded (RFC 8705 §3), set likewise.
        self.client_certificate: x509.Certificate | None = None
        self._clients: dict[str, OAuthClient | None] = {}
        self.register_grant(CodeGrant, [RequiredS256Challenge(required=True), IdTokenExtension()])
        self.register_grant(RotatingRefreshGrant, [IdTokenExtension()])
        self.register_grant(ServiceCredentialsGrant)
        self.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)
        self.register_client_auth_method(
            PRIVATE_KEY_JWT, lambda _query, request: authenticate_private_key_jwt(self, request)
        )
        for method in MTLS_AUTH_METHODS:
            self.register_client_auth_method(method, self._mutual_tls_hook(method))

    def _mutual_tls_hook(self, method: str) -> Any:
        return lambda _query, request: authenticate_mutual_tls(self, request, method)

    def query_client(self, client_id: str) -> OAuthClient | None:
        if client_id not in self._clients:
            info = (
                self.runtime.client_cache.lookup(self.session, client_id)
                if is_client_id(client_id)
                else None
            )
            self._clients[client_id] = OAuthClient(info, self.runtime.clock) if info else None
        return self._clients[client_id]

    def authenticate_client(self, request: Any, methods: Any, endpoint: str = "token") -> Any:
        """Every endpoint that authenticates clients (token, introspection, revocation) comes
        here: one method per request first (RFC 6749 §2.3), then Authlib's methods in turn."""
        refuse_several_methods(request.headers.get("Authorization"), request.form)
        return super().authenticate_client(request, methods, endpoint)

    def save_token(self, token: dict, request: Any) -> None:
        """Refresh tokens are stored when generated (they need their grant); access tokens
        are self-contained JWTs and are not stored."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal subscribers."""

    def create_oauth2_request(self, request: Any) -> OAuthRequest:
        if isinstance(request, OAuthRequest):
            return request
        if isinstance(request, HttpInput):
            return OAuthRequest(request)
        raise TypeError(f"cannot build an OAuth request from {type(request).__name__}")

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON-bodied endpoints")

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        if self.for_authorization and status == 302:
            # RFC 9207 §2: every authorization response, errors included, names the issuer.
            header_map = dict(headers)
            header_map["Location"] = add_params_to_uri(
                header_map["Location"], [("iss", self.runtime.settings.issuer)]
            )
            headers = header_map
        return to_starlette(status, body, headers)

    def token_response(
        self,
        *,
        client: ClientInfo,
        grant: Grant | None,
        scope: str,
        include_refresh_token: bool,
        parent: RefreshToken | None,
    ) -> dict[str, Any]:
        """RFC 6749 §5.1 body: a JWT access token, and a new refresh token when allowed.

        With a DPoP proof the access token is bound to its key (RFC 9449 §5, token_type
        "DPoP"); so is a public client's grant, hence its refresh tokens (§5: bound on first
        use, checked by RotatingRefreshGrant). A client registered for certificate-bound tokens
        gets them bound to its TLS client certificate instead (RFC 8705 §3, token_type
        "Bearer"), a public client's grant likewise; a confidential client's refresh tokens are
        bound to its authentication already (§3: it may renew its certificate).
        """
        certificate = self.client_certificate
        confirmation: dict[str, str] | None = None
        if client.tls_client_certificate_bound_access_tokens and certificate is not None:
            confirmation = confirmation_of(certificate)
            if grant is not None and client.is_public and grant.certificate_thumbprint is None:
                grant.certificate_thumbprint = confirmation[CONFIRMATION_CLAIM]
        elif self.dpop_jkt:
            confirmation = {"jkt": self.dpop_jkt}
            if grant is not None and client.is_public and grant.dpop_jkt is None:
                grant.dpop_jkt = self.dpop_jkt
        access = issue_access_token(
            self.runtime, client=client, scope=scope, grant=grant, confirmation=confirmation
        )
        token: dict[str, Any] = {
            "access_token": access.token,
            "token_type": "DPoP" if confirmation and "jkt" in confirmation else "Bearer",
            "expires_in": access.expires_in,
            "scope": scope,
        }
        if include_refresh_token and grant is not None:
            token["refresh_token"] = token_store.store_refresh_token(
                session=self.session,
                clock=self.runtime.clock,
                grant=grant,
                scope=scope,
                parent=parent,
            )
        return token
