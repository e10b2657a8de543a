"""UserInfo endpoint, OIDC Core §5.3 (GET and POST); bearer token errors per RFC 6750 §3."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from idp import units
from idp.claims import claims_for_scope, wants_directory_claims
from idp.oauth.access_tokens import read_access_token
from idp.oauth.http import NO_STORE, json_error
from idp.request_scope import RequestScope, run_in_request_scope


def bearer_challenge(
    status: int, error: str | None = None, description: str | None = None
) -> Response:
    if error is None:
        # RFC 6750 §3.1: no error code when the request carried no credentials at all.
        return Response(status_code=status, headers={"WWW-Authenticate": 'Bearer realm="userinfo"'})
    challenge = f'Bearer realm="userinfo", error="{error}"'
    if description:
        challenge += f', error_description="{description}"'
    return json_error(status, error, description, headers={"WWW-Authenticate": challenge})


def presented_token(scope: RequestScope) -> tuple[str | None, bool]:
    """The access token and whether it came by more than one method (RFC 6750 §2)."""
    header = scope.http.header("authorization")
    from_header = None
    if header and header[:7].lower() == "bearer ":
        from_header = header[7:].strip()
    from_body = dict(scope.http.form).get("access_token") if scope.http.method == "POST" else None
    if from_header and from_body:
        return None, True
    return from_header or from_body, False


def userinfo(scope: RequestScope) -> Response:
    token, ambiguous = presented_token(scope)
    if ambiguous:
        return bearer_challenge(400, "invalid_request", "Send the token by one method only.")
    if not token:
        return bearer_challenge(401)
    view = read_access_token(scope.runtime, scope.session, token)
    if view is None:
        return bearer_challenge(401, "invalid_token", "The access token is invalid or expired.")
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
    return JSONResponse(body, headers=NO_STORE)


async def userinfo_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, userinfo)
