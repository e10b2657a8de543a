"""Token revocation, RFC 7009 §2. Revoking a refresh token revokes its whole grant (and so the
access tokens issued with it, §2.1); revoking an access token records its jti until expiry."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint
from starlette.requests import Request
from starlette.responses import Response

from core import audit
from idp import token_store
from idp.oauth.grants import CONFIDENTIAL_OR_PUBLIC, OAuthClient
from idp.oauth.http import OAuthRequest, json_error
from idp.oauth.server import OAuthServer
from idp.oauth.token_views import (
    PresentedAccessToken,
    PresentedToken,
    check_token_parameters,
    find_presented_token,
)
from idp.request_scope import RequestScope, run_in_request_scope


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_OR_PUBLIC
    server: OAuthServer

    def check_params(self, request: Any, client: OAuthClient) -> None:
        check_token_parameters(request.form)

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken | None:
        return find_presented_token(
            self.server.runtime, self.server.session, token_string, token_type_hint
        )

    def revoke_token(self, token: PresentedToken, request: Any) -> None:
        session, clock = self.server.session, self.server.runtime.clock
        if isinstance(token, PresentedAccessToken):
            token_store.revoke_access_token(
                session=session, jti=token.view.jti, expires_at=token.view.expires_at
            )
        else:
            token_store.revoke_refresh_token(session=session, clock=clock, token=token.row)
        audit.record(
            session,
            clock=clock,
            actor=f"client:{request.client.client_id}",
            action="token.revoke",
            target=token.kind,
        )


def revoke(scope: RequestScope) -> Response:
    oauth_request = OAuthRequest(scope.http)
    if scope.http.method != "POST" or oauth_request.payload.duplicated():
        return json_error(400, "invalid_request", "POST the token once, form-encoded.")
    server = OAuthServer(scope.runtime, scope.session)
    server.register_endpoint(Revocation)
    response: Response = server.create_endpoint_response("revocation", oauth_request)
    return response


async def revocation_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, revoke)
