"""Token introspection, RFC 7662 §2. Any confidential client may introspect (as in Keycloak):
resource servers register as confidential clients."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from starlette.requests import Request
from starlette.responses import Response

from idp.oauth.grants import CONFIDENTIAL_ONLY, OAuthClient
from idp.oauth.http import OAuthRequest, json_error
from idp.oauth.server import OAuthServer
from idp.oauth.token_views import PresentedToken, check_token_parameters, find_presented_token
from idp.request_scope import RequestScope, run_in_request_scope


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_ONLY
    server: OAuthServer

    def check_params(self, request: Any, client: OAuthClient) -> None:
        check_token_parameters(request.form)

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken | None:
        return find_presented_token(
            self.server.runtime, self.server.session, token_string, token_type_hint
        )

    def check_permission(self, token: PresentedToken, client: OAuthClient, request: Any) -> bool:
        return True

    def introspect_token(self, token: PresentedToken) -> dict[str, Any]:
        return token.introspection()


def introspect(scope: RequestScope) -> Response:
    oauth_request = OAuthRequest(scope.http)
    if scope.http.method != "POST" or oauth_request.payload.duplicated():
        return json_error(400, "invalid_request", "POST the token once, form-encoded.")
    server = OAuthServer(scope.runtime, scope.session)
    server.register_endpoint(Introspection)
    response: Response = server.create_endpoint_response("introspection", oauth_request)
    return response


async def introspection_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, introspect)
