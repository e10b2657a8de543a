"""Token endpoint, RFC 6749 §3.2 and §5 (authorization_code, refresh_token,
client_credentials); errors are RFC 6749 §5.2 JSON bodies.

A plain client_credentials request from a cached client is answered on the event loop by
:mod:`idp.oauth.client_credentials`; every other request, and every error, goes through
Authlib in a worker thread with its own transaction.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core.metrics import TOKENS_ISSUED, grant_type_label
from idp.oauth import dpop
from idp.oauth.client_credentials import GRANT_TYPE, issue_without_database
from idp.oauth.http import OAuthRequest, json_error
from idp.oauth.server import OAuthServer
from idp.request_scope import RequestScope, run_in_request_scope, runtime_of

PATH = "/oauth2/token"


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
    server.client_certificate = http.client_certificate
    proofs = http.headers.getlist("dpop")
    if proofs:
        try:
            server.dpop_jkt = dpop.verify_proof(
                scope.runtime,
                scope.session,
                proofs=proofs,
                method="POST",
                url=scope.runtime.settings.endpoint(PATH),
            ).jkt
        except dpop.DpopError as error:
            return json_error(
                400, error.error, error.description, headers=dpop.nonce_header(scope.runtime)
            )
    response: Response = server.create_token_response(oauth_request)
    if response.status_code == 200:
        TOKENS_ISSUED.labels(grant_type_label(oauth_request.payload.grant_type)).inc()
    if proofs or response.status_code == 400:
        # RFC 9449 §8: a fresh nonce with every answer to a DPoP client, and with errors (a
        # client registered for DPoP that sent no proof retries with one).
        response.headers.update(dpop.nonce_header(scope.runtime))
    return response


async def token_endpoint(request: Request) -> Response:
    fast = await issue_without_database(request, runtime_of(request))
    if fast is not None:
        TOKENS_ISSUED.labels(GRANT_TYPE).inc()  # the fast path only ever succeeds
        return fast
    return await run_in_request_scope(request, token_exchange)
