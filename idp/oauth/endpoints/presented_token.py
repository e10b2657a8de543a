"""What the introspection (RFC 7662 §2.1) and revocation (RFC 7009 §2.1) endpoints share:
a form-encoded POST naming one token, with an optional hint, from an authenticated client."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749.endpoint import Endpoint
from starlette.responses import Response

from idp.oauth.grants import OAuthClient
from idp.oauth.http import OAuthRequest, json_error
from idp.oauth.server import OAuthServer
from idp.oauth.token_views import PresentedToken, check_token_parameters, find_presented_token
from idp.request_scope import RequestScope


class PresentedTokenLookup:
    """Authlib endpoint hooks: parameter checks and the token lookup (the hint only orders it)."""

    server: OAuthServer

    def check_params(self, request: Any, client: OAuthClient) -> None:
        check_token_parameters(request.form)

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken | None:
        return find_presented_token(
            self.server.runtime, self.server.session, token_string, token_type_hint
        )


def respond(scope: RequestScope, endpoint_class: type[Endpoint]) -> Response:
    oauth_request = OAuthRequest(scope.http)
    if scope.http.method != "POST" or oauth_request.payload.duplicated():
        return json_error(400, "invalid_request", "POST the token once, form-encoded.")
    server = OAuthServer(scope.runtime, scope.session)
    server.register_endpoint(endpoint_class)
    response: Response = server.create_endpoint_response(
        endpoint_class.ENDPOINT_NAME, oauth_request
    )
    return response
