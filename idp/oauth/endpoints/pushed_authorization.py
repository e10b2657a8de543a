"""Pushed authorization request endpoint, RFC 9126 §2.

The client authenticates as at the token endpoint (RFC 9126 §2: the same methods, public
clients with their client_id) and posts the parameters of an authorization request; they are
checked exactly as the authorization endpoint checks them (one list of checks,
:func:`idp.oauth.authorization_checks.check_authorization_request`) and stored for
:data:`idp.pushed_requests.LIFETIME` seconds. The answer is ``201`` with the ``request_uri``
and ``expires_in`` (§2.2); errors are RFC 6749 §5.2 JSON bodies (§2.3), never redirects.
A signed request object may be pushed instead of the parameters (§3, RFC 9101): it is verified
here (:mod:`idp.oauth.request_object`) and its parameters are what is stored.
"""

from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp import pushed_requests
from idp.oauth import authorization_checks as checks
from idp.oauth import dpop, request_object
from idp.oauth.grants import CONFIDENTIAL_OR_PUBLIC
from idp.oauth.http import NO_STORE, OAuthRequest, json_error
from idp.oauth.server import OAuthServer
from idp.request_scope import RequestScope, run_in_request_scope

ENDPOINT = "pushed_authorization_request"
PATH = "/oauth2/par"
# Client authentication, not authorization request parameters: not stored.
CLIENT_AUTHENTICATION_FIELDS = frozenset(
    {"client_secret", "client_assertion", "client_assertion_type"}
)


def push(scope: RequestScope) -> Response:
    http = scope.http
    if not http.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return json_error(
            400, "invalid_request", "The body must be application/x-www-form-urlencoded."
        )
    oauth_request = OAuthRequest(http)
    server = OAuthServer(scope.runtime, scope.session)
    try:
        if oauth_request.payload.duplicated():
            raise InvalidRequestError("A parameter is repeated.")
        client = server.authenticate_client(oauth_request, CONFIDENTIAL_OR_PUBLIC, ENDPOINT)
        if "request_uri" in oauth_request.payload.data:
            raise InvalidRequestError("A pushed request cannot itself refer to a request_uri.")
        if oauth_request.payload.data.get("client_id", client.client_id) != client.client_id:
            raise InvalidRequestError("The client_id is not the authenticated client.")
        signed = "request" in oauth_request.payload.data
        if signed:
            # RFC 9126 §3: a request object pushed is the request; the other fields are not.
            items = request_object.request_parameters(
                server, client, oauth_request.payload.data["request"]
            )
        else:
            items = [
                (name, value)
                for name, value in oauth_request.payload_items
                if name not in CLIENT_AUTHENTICATION_FIELDS and name != "client_id"
            ]
            items.insert(0, ("client_id", client.client_id))
        items = with_dpop_key(scope, items)
        checks.check_authorization_request(
            server, OAuthRequest(http, items), pushed=True, signed=signed
        )
    except dpop.DpopError as error:
        return json_error(
            400, error.error, error.description, headers=dpop.nonce_header(scope.runtime)
        )
    except OAuth2Error as error:
        # §2.3: the token endpoint's error responses, with the error's own status.
        status = error.status_code if error.error == "invalid_client" else 400
        headers = {"WWW-Authenticate": "Basic"} if status == 401 else None
        return json_error(status, error.error, error.description or None, headers=headers)
    request_uri = pushed_requests.push(
        session=scope.session,
        clock=scope.runtime.clock,
        client_pk=client.info.id,
        params=items,
    )
    return JSONResponse(
        {"request_uri": request_uri, "expires_in": pushed_requests.LIFETIME},
        status_code=201,
        headers={**NO_STORE, **dpop.nonce_header(scope.runtime)}
        if http.headers.getlist("dpop")
        else NO_STORE,
    )


def with_dpop_key(scope: RequestScope, items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """RFC 9449 §10.1: a DPoP proof sent with the push binds the code to its key, as dpop_jkt
    would; when both come, they must name the same key."""
    proofs = scope.http.headers.getlist("dpop")
    if not proofs:
        return items
    runtime = scope.runtime
    jkt = dpop.verify_proof(
        runtime,
        scope.session,
        proofs=proofs,
        method="POST",
        url=runtime.settings.endpoint(PATH),
    ).jkt
    sent = dict(items).get("dpop_jkt")
    if sent is not None and sent != jkt:
        raise InvalidRequestError("The dpop_jkt is not the key of the DPoP proof.")
    return items if sent is not None else [*items, ("dpop_jkt", jkt)]


async def pushed_authorization_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, push)
