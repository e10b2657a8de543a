"""Token endpoint, RFC 6749 §3.2 and §5 (authorization_code, refresh_token,
client_credentials); errors are RFC 6749 §5.2 JSON bodies."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.oauth.http import OAuthRequest, json_error
from idp.oauth.server import OAuthServer
from idp.request_scope import RequestScope, run_in_request_scope


def token_exchange(scope: RequestScope) -> Response:
    http = scope.http
    if not http.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return json_error(
            400, "invalid_request", "The body must be application/x-www-form-urlencoded."
        )
    oauth_request = OAuthRequest(http)
    if oauth_request.payload.duplicated():
        return json_error(400, "invalid_request", "A parameter is repeated.")
    if not oauth_request.payload.grant_type:
        return json_error(400, "invalid_request", "Missing 'grant_type'.")
    server = OAuthServer(scope.runtime, scope.session)
    response: Response = server.create_token_response(oauth_request)
    return response


async def token_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, token_exchange)
