"""Sign-in to the CA pages through our own IdP, the callback, and sign-out.

``/ca/pages/login?next=...`` starts the authorization code flow (PKCE S256, state, nonce);
``reauth=1`` adds ``max_age=300`` (OIDC Core §3.1.2.1), so the IdP asks for the password again
unless it was entered in the last five minutes: renewal needs a fresh authentication.
``/ca/pages/callback`` checks state, exchanges the code, validates the ID token and sets the
pages' own signed session cookie. ``POST /ca/pages/logout`` clears it and continues to the IdP's
end-session endpoint (RP-Initiated Logout 1.0), which ends the single sign-on session too.
"""

from __future__ import annotations

import hmac

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ca_admin.runtime import CaRuntime
from ca_admin.web.pages import oidc_client
from ca_admin.web.pages.oidc_client import LoginFailed, seal, unseal
from ca_admin.web.pages.page_scope import (
    LOGIN_COOKIE,
    LOGIN_PURPOSE,
    PREFIX,
    PagesUnavailable,
    SignedIn,
    clear_user_cookie,
    client_of,
    message_page,
    page_locale,
    read_user,
    set_user_cookie,
)
from core.errors import DomainError
from core.web.csrf import CsrfError
from core.web.i18n import N_

REAUTH_MAX_AGE = 300  # seconds: "re-authenticates ... within the last 5 minutes" (issue 5)
LOGIN_FAILED = N_("Signing in did not complete. Please try again.")


def safe_next(value: str | None) -> str:
    """Only our own pages: never an open redirect (RFC 6749 §10.15)."""
    if (
        not value
        or not value.startswith(PREFIX + "/")
        or "//" in value
        or "\\" in value
        or any(ord(c) < 0x20 for c in value)
    ):
        return PREFIX + "/"
    return value


async def login(request: Request) -> Response:
    runtime: CaRuntime = request.app.state.ca
    try:
        client = client_of(runtime)
    except PagesUnavailable as error:
        return Response(error.message, status_code=503, media_type="text/plain")
    # First use on a fresh installation: the pages register themselves at the IdP.
    await run_in_threadpool(client.ensure_registered)
    reauth = request.query_params.get("reauth") == "1"
    started = oidc_client.start_login(
        client,
        now=runtime.clock.now(),
        next_path=safe_next(request.query_params.get("next")),
        max_age=REAUTH_MAX_AGE if reauth else None,
        locale=page_locale(request),
    )
    response = RedirectResponse(started.location, status_code=303)
    response.set_cookie(
        LOGIN_COOKIE,
        seal(client.cookie_key, LOGIN_PURPOSE, started.state),
        max_age=900,
        path=PREFIX + "/",
        httponly=True,
        samesite="lax",  # the callback is a top-level GET from the IdP: the cookie comes along
        secure=client.secure_cookies,
    )
    return response


async def callback(request: Request) -> Response:
    runtime: CaRuntime = request.app.state.ca
    try:
        client = client_of(runtime)
    except PagesUnavailable as error:
        return Response(error.message, status_code=503, media_type="text/plain")
    now = runtime.clock.now()
    pending = unseal(client.cookie_key, LOGIN_PURPOSE, request.cookies.get(LOGIN_COOKIE), now=now)
    params = request.query_params
    try:
        if pending is None or not hmac.compare_digest(
            str(pending.get("state", "")).encode(), params.get("state", "").encode()
        ):
            raise LoginFailed(LOGIN_FAILED)
        if "error" in params or not params.get("code"):
            raise LoginFailed(LOGIN_FAILED)
        tokens = await oidc_client.exchange_code(
            client, request.app, code=params["code"], verifier=str(pending["verifier"])
        )
        claims = oidc_client.validate_id_token(
            client,
            id_token=str(tokens["id_token"]),
            access_token=tokens.get("access_token"),
            nonce=str(pending["nonce"]),
            now=runtime.clock.now(),
        )
        max_age = pending.get("max_age")
        if isinstance(max_age, int) and claims["auth_time"] + max_age + 60 < now.timestamp():
            # OIDC Core §3.1.2.1: the IdP must honour max_age; check it did (§3.1.3.7 step 11).
            raise LoginFailed(LOGIN_FAILED)
    except DomainError as error:
        response = message_page(
            request,
            runtime,
            title=N_("Sign-in failed"),
            error=error,
            status_code=400,
            user=None,
            back_url=f"{PREFIX}/login",
        )
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX + "/")
        return response
    user = SignedIn(
        sub=claims["sub"],
        name=str(claims.get("name") or claims.get("preferred_username") or claims["sub"]),
        auth_time=int(claims["auth_time"]),
        amr=tuple(str(a) for a in claims.get("amr") or ()),
        id_token=str(tokens["id_token"]),
        exp=int(now.timestamp() + client.session_lifetime.total_seconds()),
    )
    response = RedirectResponse(str(pending["next"]), status_code=303)
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX + "/")
    set_user_cookie(response, client, user)
    return response


async def logout(request: Request) -> Response:
    runtime: CaRuntime = request.app.state.ca
    try:
        client = client_of(runtime)
    except PagesUnavailable as error:
        return Response(error.message, status_code=503, media_type="text/plain")
    user = read_user(runtime, request)
    form = await request.form()
    token = form.get("csrf_token")
    try:
        assert runtime.csrf is not None
        runtime.csrf.verify(request, token if isinstance(token, str) else None)
    except CsrfError as error:
        return message_page(
            request,
            runtime,
            title=N_("Form expired"),
            error=error,
            status_code=403,
            user=user,
            back_url=f"{PREFIX}/",
        )
    response = RedirectResponse(
        oidc_client.end_session_location(client, user.id_token if user else None),
        status_code=303,
    )
    clear_user_cookie(response, client)
    return response
