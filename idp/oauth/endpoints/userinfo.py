"""UserInfo endpoint, OIDC Core §5.3 (GET and POST); bearer token errors per RFC 6750 §3.

Shared apps call it on every page view. A GET with a bearer token is answered on the event
loop when the worker's token state cache can tell (:mod:`idp.token_state`): the signature is
checked with the in-memory key ring, the grant, the official and the jti against the cache
(current within a second on every worker and host, at once on this one), and the body is the
one the general path rendered for the same official and scope. Anything the cache does not
know yet goes through the general path, in a worker thread with a database session, which
answers exactly as before and teaches the cache for the next calls.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp import units
from idp.claims import claims_for_scope, wants_directory_claims
from idp.oauth import dpop
from idp.oauth.access_tokens import (
    cached_token_check,
    is_sender_constrained,
    read_access_token,
    verified_access_claims,
)
from idp.oauth.http import NO_STORE, json_error
from idp.request_scope import RequestScope, run_in_request_scope, runtime_of
from idp.runtime import IdpRuntime

INVALID_TOKEN = "The access token is invalid or expired."


PATH = "/oauth2/userinfo"
BEARER, DPOP = "Bearer", "DPoP"


def bearer_challenge(
    status: int,
    error: str | None = None,
    description: str | None = None,
    *,
    scheme: str = BEARER,
    headers: dict[str, str] | None = None,
) -> Response:
    """RFC 6750 §3 (Bearer) and RFC 9449 §7.1 (DPoP, with the algorithms it accepts)."""
    params = 'realm="userinfo"'
    if scheme == DPOP:
        params += f', algs="{" ".join(dpop.DPOP_ALGORITHMS)}"'
    extra = headers or {}
    if error is None:
        # RFC 6750 §3.1: no error code when the request carried no credentials at all.
        return Response(
            status_code=status, headers={"WWW-Authenticate": f"{scheme} {params}", **extra}
        )
    challenge = f'{scheme} {params}, error="{error}"'
    if description:
        challenge += f', error_description="{description}"'
    return json_error(status, error, description, headers={"WWW-Authenticate": challenge, **extra})


def presented_token(scope: RequestScope) -> tuple[str | None, str, bool]:
    """The access token, its scheme (Bearer, or DPoP: RFC 9449 §7.1) and whether it came by
    more than one method (RFC 6750 §2)."""
    header = scope.http.header("authorization")
    from_header, scheme = None, BEARER
    if header and header[:7].lower() == "bearer ":
        from_header = header[7:].strip()
    elif header and header[:5].lower() == "dpop ":
        from_header, scheme = header[5:].strip(), DPOP
    from_body = dict(scope.http.form).get("access_token") if scope.http.method == "POST" else None
    if from_header and from_body:
        return None, scheme, True
    return from_header or from_body, scheme, False


def check_dpop(scope: RequestScope, token: str) -> Response | None:
    """RFC 9449 §7.1: a proof of the token's key, for this request, with ``ath``; an error
    answer, or None when the proof holds."""
    runtime = scope.runtime
    claims = verified_access_claims(runtime, token)
    if claims is None:
        return bearer_challenge(401, "invalid_token", INVALID_TOKEN, scheme=DPOP)
    try:
        dpop.verify_bound_request(
            runtime,
            scope.session,
            token_claims=claims,
            access_token=token,
            proofs=scope.http.headers.getlist("dpop"),
            method=scope.http.method,
            url=runtime.settings.endpoint(PATH),
        )
    except dpop.DpopError as error:
        return bearer_challenge(
            401,
            error.error,
            error.description,
            scheme=DPOP,
            headers={"DPoP-Nonce": dpop.new_nonce(runtime)},
        )
    return None


def userinfo(scope: RequestScope) -> Response:
    token, scheme, ambiguous = presented_token(scope)
    if ambiguous:
        return bearer_challenge(400, "invalid_request", "Send the token by one method only.")
    if not token:
        return bearer_challenge(401)
    if scheme == DPOP:
        refused = check_dpop(scope, token)
        if refused is not None:
            return refused
    view = read_access_token(
        scope.runtime,
        scope.session,
        token,
        sender_verified=scheme == DPOP,
        client_certificate=scope.http.client_certificate if scheme == BEARER else None,
    )
    if view is None:
        return bearer_challenge(401, "invalid_token", INVALID_TOKEN, scheme=scheme)
    scopes = str(view.claims.get("scope", "")).split()
    if view.grant is None or "openid" not in scopes:
        return bearer_challenge(403, "insufficient_scope", "The token lacks the openid scope.")
    account = view.grant.account
    scope_text = " ".join(scopes)
    extra = (
        units.directory_claims(scope.session, account)
        if wants_directory_claims(scope_text)
        else None
    )
    body = {
        "sub": account.subject,
        **claims_for_scope(account, scope_text, directory_claims=extra),
    }
    nonce = {"DPoP-Nonce": dpop.new_nonce(scope.runtime)} if scheme == DPOP else {}
    response = JSONResponse(body, headers={**NO_STORE, **nonce})
    scope.runtime.token_state.remember_userinfo(
        account.id, scope_text, bytes(response.body), read_at_version=view.state_version
    )
    return response


def bearer_token_of(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1), or None."""
    header = request.headers.get("authorization")
    if not header or header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None


def userinfo_without_database(request: Request, runtime: IdpRuntime) -> Response | None:
    """The general path's answer to a GET with a bearer token, when the token state cache
    can give it (200, or 401 invalid_token for a revoked token); None otherwise."""
    if request.method != "GET":
        return None  # a POST may carry the token in its body too (RFC 6750 §2.2)
    token = bearer_token_of(request)
    claims = verified_access_claims(runtime, token) if token else None
    if claims is None or is_sender_constrained(claims):
        return None  # a bound token sent as a bearer token: the general path refuses it
    check = cached_token_check(runtime, claims)
    if check is None:
        return None
    if not check.usable:
        return bearer_challenge(401, "invalid_token", INVALID_TOKEN)
    scopes = str(claims.get("scope", "")).split()
    if check.account is None or "openid" not in scopes:
        return None  # the general path's 403
    body = check.account.userinfo_bodies.get(" ".join(scopes))
    if body is None:
        return None
    return Response(body, media_type="application/json", headers=NO_STORE)


async def userinfo_endpoint(request: Request) -> Response:
    fast = userinfo_without_database(request, runtime_of(request))
    if fast is not None:
        return fast
    return await run_in_request_scope(request, userinfo)
