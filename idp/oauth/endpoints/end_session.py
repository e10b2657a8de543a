"""RP-Initiated Logout 1.0 (end_session_endpoint), GET and POST.

With a valid ``id_token_hint`` for the current session the official is logged out at once;
without one we ask first (§2: protects against forged logout links). A
``post_logout_redirect_uri`` is followed only if it exactly matches one registered for the
client named by the hint or by ``client_id`` (§3); otherwise an error page is shown.

Ending the session tells the session's apps: back-channel notices are queued in the logout's
transaction and the delivery worker is woken once it committed (the response never waits for
an app); apps registered for front-channel logout get an iframe on the logged-out page, which
then goes on to ``post_logout_redirect_uri``.
"""

from __future__ import annotations

from typing import Any

from authlib.common.urls import add_params_to_uri
from starlette.requests import Request
from starlette.responses import Response

from core.web.i18n import N_
from idp import clients, sessions
from idp.logout import session_end
from idp.models import BrowserSession, Client
from idp.oauth.endpoints.authorization import current_session
from idp.oauth.server import is_client_id
from idp.request_scope import RequestScope, run_in_request_scope
from keys.errors import InvalidToken


class LogoutRequestError(Exception):
    """A sign-out request we refuse; ``description`` is a msgid, shown translated on the page
    (the official has to tell the app's people what is wrong, in their own language)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


BAD_HINT = N_(
    "The sign-out link carries an ID token (id_token_hint) that this service did not issue "
    "or that is damaged."
)
FOREIGN_HINT = N_("The sign-out link carries an ID token (id_token_hint) of another provider.")
CLIENT_MISMATCH = N_(
    "The sign-out link names another application (client_id) than the one its ID token "
    "was issued to."
)
UNKNOWN_CLIENT = N_("The sign-out link names an application (client_id) that is not registered.")
UNREGISTERED_RETURN = N_(
    "The return address after sign-out (post_logout_redirect_uri) is not registered for this "
    "application. For your safety you were not redirected."
)


def _params(scope: RequestScope) -> dict[str, str]:
    items = scope.http.form if scope.http.method == "POST" else scope.http.query
    return dict(items)


def _verify_hint(scope: RequestScope, hint: str) -> dict[str, Any]:
    """§2: the OP need not accept an expired hint's exp, but iss and signature must be ours."""
    try:
        token = scope.runtime.keyring.verify_jwt(hint, now=scope.runtime.clock.now())
    except InvalidToken as error:
        raise LogoutRequestError(BAD_HINT) from error
    claims = dict(token.claims)
    if claims.get("iss") != scope.runtime.settings.issuer or "typ" in token.header:
        raise LogoutRequestError(FOREIGN_HINT)
    return claims


def _resolve(
    scope: RequestScope, params: dict[str, str]
) -> tuple[Client | None, dict[str, Any] | None]:
    claims = _verify_hint(scope, params["id_token_hint"]) if params.get("id_token_hint") else None
    client_id = params.get("client_id")
    if claims is not None:
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if client_id and client_id not in audiences:
            raise LogoutRequestError(CLIENT_MISMATCH)
        client_id = client_id or (audiences[0] if audiences else None)
    client = (
        clients.find_active(scope.session, client_id)
        if client_id and is_client_id(client_id)
        else None
    )
    if client_id and client is None:
        raise LogoutRequestError(UNKNOWN_CLIENT)
    redirect = params.get("post_logout_redirect_uri")
    if redirect and (client is None or redirect not in client.post_logout_redirect_uris):
        raise LogoutRequestError(UNREGISTERED_RETURN)
    return client, claims


def perform_logout(
    scope: RequestScope, browser_session: BrowserSession, client: Client | None
) -> list[str]:
    """End the session, revoke its grants, queue the back-channel notices; returns the
    front-channel iframe URLs for the logged-out page."""
    return session_end.end_browser_session(
        scope, browser_session, target=f"client:{client.client_id}" if client else None
    )


def finish(
    scope: RequestScope,
    params: dict[str, str],
    client: Client | None,
    frontchannel_urls: list[str] | None = None,
) -> Response:
    redirect = params.get("post_logout_redirect_uri")
    continue_url = None
    if redirect:
        extra = [("state", params["state"])] if params.get("state") else []
        continue_url = add_params_to_uri(redirect, extra)
    return session_end.logged_out_page(
        scope,
        client_name=client.name if client else None,
        frontchannel_urls=frontchannel_urls or [],
        continue_url=continue_url,
        ui_locales=params.get("ui_locales"),
    )


def end_session(scope: RequestScope) -> Response:
    params = _params(scope)
    try:
        client, claims = _resolve(scope, params)
    except LogoutRequestError as error:
        return scope.runtime.pages.render(
            scope.request,
            "error.html",
            {
                "title": N_("Sign-out error"),
                "message": N_("The application sent an invalid sign-out request."),
                "detail": error.description,
                "status_code": 400,
                "error_code": "invalid_request",
            },
            locale=scope.locale(params.get("ui_locales")),
            status_code=400,
        )
    browser_session = current_session(scope)
    if browser_session is None:
        return finish(scope, params, client)
    hint_matches = claims is not None and (
        claims.get("sid") == browser_session.sid
        or claims.get("sub") == browser_session.account.subject
    )
    if hint_matches:
        frontchannel_urls = perform_logout(scope, browser_session, client)
        return finish(scope, params, client, frontchannel_urls)
    handle = sessions.start_interaction(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        client_id=client.client_id if client else "",
        params={"logout": params},
    )
    return scope.runtime.pages.render(
        scope.request,
        "logout_confirm.html",
        {"logout_request": handle, "client_name": client.name if client else None},
        locale=scope.locale(params.get("ui_locales")),
    )


def confirm_logout(scope: RequestScope) -> Response:
    form = dict(scope.http.form)
    interaction = sessions.find_interaction(
        session=scope.session, clock=scope.runtime.clock, handle=form.get("logout_request")
    )
    if interaction is None or "logout" not in interaction.params:
        return scope.runtime.pages.render(
            scope.request, "logged_out.html", {"client_name": None}, locale=scope.locale()
        )
    interaction.completed_at = scope.runtime.clock.now()
    params = {str(k): str(v) for k, v in interaction.params["logout"].items()}
    client = (
        clients.find_active(scope.session, interaction.client_id) if interaction.client_id else None
    )
    browser_session = current_session(scope)
    if form.get("decision") != "logout":
        return finish_cancelled(scope)
    frontchannel_urls = (
        perform_logout(scope, browser_session, client) if browser_session is not None else []
    )
    return finish(scope, params, client, frontchannel_urls)


def finish_cancelled(scope: RequestScope) -> Response:
    return scope.runtime.pages.render(
        scope.request,
        "error.html",
        {"title": N_("Sign out"), "message": N_("You are still signed in."), "status_code": 200},
        locale=scope.locale(),
    )


async def end_session_endpoint(request: Request) -> Response:
    response = await run_in_request_scope(request, end_session)
    session_end.wake_delivery_worker(request)
    return response


async def confirm_logout_endpoint(request: Request) -> Response:
    form = await request.form()
    token = form.get("csrf_token")
    request.app.state.idp.csrf.verify(request, token if isinstance(token, str) else None)
    response = await run_in_request_scope(request, confirm_logout)
    session_end.wake_delivery_worker(request)
    return response
