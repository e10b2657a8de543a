"""Token introspection, RFC 7662 §2. Any confidential client may introspect (as in Keycloak):
resource servers register as confidential clients."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from starlette.requests import Request
from starlette.responses import Response

from idp.oauth.endpoints.presented_token import PresentedTokenLookup, respond
from idp.oauth.grants import CONFIDENTIAL_ONLY, OAuthClient
from idp.oauth.token_views import PresentedToken
from idp.request_scope import RequestScope, run_in_request_scope


class Introspection(PresentedTokenLookup, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_ONLY

    def check_permission(self, token: PresentedToken, client: OAuthClient, request: Any) -> bool:
        return True

    def introspect_token(self, token: PresentedToken) -> dict[str, Any]:
        return token.introspection()


def introspect(scope: RequestScope) -> Response:
    return respond(scope, Introspection)


async def introspection_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, introspect)
