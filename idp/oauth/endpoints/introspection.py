"""Token introspection, RFC 7662 §2. Any confidential client may introspect (as in Keycloak):
resource servers register as confidential clients.

Resource servers introspect on every request they serve. A plain request (a small urlencoded
body, a cached client authenticating with its registered method, one of our access tokens) is
answered on the event loop from the worker's token state cache (:mod:`idp.token_state`), like
userinfo; everything else, refresh tokens and every error included, goes through Authlib in a
worker thread, which answers exactly as before.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp.oauth.access_tokens import cached_token_check, verified_access_claims
from idp.oauth.client_credentials import authenticated_client, small_form
from idp.oauth.endpoints.presented_token import PresentedTokenLookup, respond
from idp.oauth.grants import CONFIDENTIAL_ONLY, OAuthClient
from idp.oauth.http import NO_STORE
from idp.oauth.token_views import TOKEN_TYPE_HINTS, PresentedToken, access_token_introspection
from idp.request_scope import RequestScope, run_in_request_scope, runtime_of
from idp.runtime import IdpRuntime

# What a resource server sends (RFC 7662 §2.1, with client_secret_post credentials); any
# other field takes the general path.
FAST_PATH_FIELDS = frozenset({"token", "token_type_hint", "client_id", "client_secret"})


class Introspection(PresentedTokenLookup, IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_ONLY

    def check_permission(self, token: PresentedToken, client: OAuthClient, request: Any) -> bool:
        return True

    def introspect_token(self, token: PresentedToken) -> dict[str, Any]:
        return token.introspection()


def introspect(scope: RequestScope) -> Response:
    return respond(scope, Introspection)


async def introspect_without_database(request: Request, runtime: IdpRuntime) -> Response | None:
    """The general path's answer to a plain request about one of our access tokens, when the
    token state cache can give it (active, or inactive once revoked); None otherwise."""
    if request.method != "POST":
        return None
    fields = await small_form(request)
    if fields is None or not fields.keys() <= FAST_PATH_FIELDS:
        return None
    if fields.get("token_type_hint", "") not in ("", *TOKEN_TYPE_HINTS):
        return None
    # client_secret_basic or client_secret_post, as registered: CONFIDENTIAL_ONLY.
    if authenticated_client(runtime, request.headers.get("authorization"), fields) is None:
        return None
    claims = verified_access_claims(runtime, fields.get("token", ""))
    if claims is None:
        return None
    check = cached_token_check(runtime, claims)
    if check is None:
        return None
    body: dict[str, Any] = {"active": False}
    if check.usable:
        username = check.account.username if check.account is not None else None
        body = {**access_token_introspection(claims, username=username), "active": True}
    # The general path's response: Authlib's JSON headers become these (idp.oauth.http).
    return JSONResponse(body, headers=NO_STORE)


async def introspection_endpoint(request: Request) -> Response:
    fast = await introspect_without_database(request, runtime_of(request))
    if fast is not None:
        return fast
    return await run_in_request_scope(request, introspect)
