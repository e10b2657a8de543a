"""Authorization endpoint, OIDC Core §3.1.2 / RFC 6749 §4.1 (GET and POST).

The request is validated by Authlib and by our named checks, then parked server-side as an
*interaction*. Without a session the login form is the answer itself (as Keycloak does: no
redirect to a login page), and a successful password login finishes the authorization in the
same request (:mod:`idp.web.login`). The other paths (second factor, consent, a login page
opened by its own URL) come back to ``/oauth2/authorize/resume`` to receive the code.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core.web.i18n import N_
from idp import authentication_levels as levels
from idp import passkeys, pushed_requests, sessions
from idp.models import BrowserSession, Consent, Interaction
from idp.oauth import authorization_checks as checks
from idp.oauth import request_object
from idp.oauth.grants import AuthenticatedUser, OAuthClient
from idp.oauth.http import OAuthRequest
from idp.oauth.server import OAuthServer
from idp.request_scope import RequestScope, run_in_request_scope
from idp.web import login as login_pages

INVALID_CLIENT_OR_REDIRECT = N_(
    "Unknown application or unregistered return address. For your safety you were not redirected."
)
INVALID_REQUEST = N_("The application sent an invalid sign-in request.")
# Interaction parameter: the request was pushed (RFC 9126), so a client that must push passes.
PUSHED_KEY = "pushed"
# Interaction parameter: the request came as a verified request object (RFC 9101).
SIGNED_KEY = "signed"


def error_response(
    scope: RequestScope,
    server: OAuthServer,
    error: OAuth2Error,
    state: str | None,
    ui_locales: str | None,
) -> Response:
    """RFC 6749 §4.1.2.1: redirect only to a registered redirect URI, else show our page."""
    if error.redirect_uri:
        error.state = state
        response: Response = server.handle_error_response(None, error)
        return response
    message = (
        INVALID_CLIENT_OR_REDIRECT
        if error.error == "invalid_client" or "redirect_uri" in (error.description or "")
        else INVALID_REQUEST
    )
    return scope.runtime.pages.render(
        scope.request,
        "error.html",
        {
            "title": N_("Sign-in error"),
            "message": message,
            "status_code": 400,
            "error_code": error.error,
            "error_description": error.description,
        },
        locale=scope.locale(ui_locales),
        status_code=400,
    )


def current_session(scope: RequestScope) -> BrowserSession | None:
    return sessions.find_active(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        cookie_value=scope.http.cookies.get(scope.runtime.session_cookie_name),
    )


def has_consent(
    scope: RequestScope, browser_session: BrowserSession, client: OAuthClient, requested: str
) -> bool:
    stored = scope.session.scalar(
        select(Consent).where(
            Consent.account_id == browser_session.account_id, Consent.client_pk == client.info.id
        )
    )
    return stored is not None and set(requested.split()) <= set(stored.scopes)


def pushed_items(
    scope: RequestScope, server: OAuthServer, oauth_request: OAuthRequest
) -> list[tuple[str, str]]:
    """RFC 9126 §4: the parameters the client pushed, taken once; the ones the browser brought
    besides ``client_id`` and ``request_uri`` are ignored, as §4 requires."""
    client = checks.check_client(server.query_client, oauth_request)
    items = pushed_requests.take(
        session=scope.session,
        clock=scope.runtime.clock,
        request_uri=oauth_request.payload.data["request_uri"],
        client_pk=client.info.id,
    )
    if items is None:
        raise checks.InvalidRequestUriError(
            description="The request_uri is unknown, expired or already used."
        )
    return items


def request_object_items(server: OAuthServer, oauth_request: OAuthRequest) -> list[tuple[str, str]]:
    """RFC 9101 §5.1: ``client_id`` and ``request`` in the query; the request is the request
    object's parameters (idp.oauth.request_object)."""
    data = oauth_request.payload.data
    if "request_uri" in data:
        raise InvalidRequestError("Send 'request' or 'request_uri', not both.")
    client = checks.check_client(server.query_client, oauth_request)
    try:
        return request_object.request_parameters(server, client, data["request"])
    except OAuth2Error as error:
        # Refused before its redirect_uri could be believed: the query's, when registered,
        # is as safe a place for the error as any (RFC 6749 §4.1.2.1).
        query_redirect_uri = data.get("redirect_uri", "")
        if error.redirect_uri is None and client.check_redirect_uri(query_redirect_uri):
            error.redirect_uri, error.state = query_redirect_uri, data.get("state")
        raise


def redirect_to_page(page: str, handle: str) -> Response:
    return RedirectResponse(f"{page}?{urlencode({'interaction': handle})}", status_code=303)


def authorize(
    scope: RequestScope,
    items: list[tuple[str, str]] | None = None,
    interaction: Interaction | None = None,
    signed_in: BrowserSession | None = None,
) -> Response:
    """``signed_in``: the session the login form has just started in this same request (its
    cookie is not in the request yet); otherwise the session comes from the cookie."""
    runtime = scope.runtime
    server = OAuthServer(runtime, scope.session, for_authorization=True)
    oauth_request = OAuthRequest(scope.http, items)
    # A request pushed first (RFC 9126): resolved once, then its parameters travel with the
    # interaction like any other request's.
    pushed = bool(interaction.params.get(PUSHED_KEY)) if interaction is not None else False
    signed = bool(interaction.params.get(SIGNED_KEY)) if interaction is not None else False
    request_uri = oauth_request.payload.data.get("request_uri", "")
    if items is None and "request" in oauth_request.payload.data:
        try:
            oauth_request = OAuthRequest(scope.http, request_object_items(server, oauth_request))
        except OAuth2Error as error:
            return error_response(scope, server, error, error.state, None)
        signed = True
    # Only our own pushed requests: a request_uri elsewhere (RFC 9101 §5.2) is not fetched
    # and check_request_uri says so.
    elif items is None and request_uri.startswith(pushed_requests.REQUEST_URI_PREFIX):
        try:
            oauth_request = OAuthRequest(scope.http, pushed_items(scope, server, oauth_request))
        except OAuth2Error as error:
            return error_response(scope, server, error, None, None)
        pushed = True
    data = oauth_request.payload.data
    state, ui_locales = data.get("state"), data.get("ui_locales")
    try:
        # A pushed request was checked for its signature when it was pushed.
        checked = checks.check_authorization_request(
            server, oauth_request, pushed=pushed, signed=signed or pushed
        )
    except OAuth2Error as error:
        return error_response(scope, server, error, state, ui_locales)
    client, redirect_uri, grant = checked.client, checked.redirect_uri, checked.grant
    prompts, max_age = checked.prompts, checked.max_age

    now = runtime.clock.now()
    browser_session = signed_in if signed_in is not None else current_session(scope)
    logged_in_here = (
        interaction is not None
        and browser_session is not None
        and interaction.authenticated_session_id == browser_session.id
    )
    login_hint = data.get("login_hint", "").strip().lower()
    required_acr = levels.highest(
        levels.requested_level(data.get("acr_values")), client.info.minimum_acr
    )
    level_missing = False
    if browser_session is not None:
        required_acr = levels.required_for_account(
            scope.session, browser_session.account, required_acr
        )
        level_missing = not levels.satisfies(levels.acr_of(browser_session.amr), required_acr)
        if level_missing and logged_in_here:
            # Signed in just now with every factor the official has, and still short of the
            # level: a passkey is missing (the password step asks for one when there is one).
            return passkey_required_page(scope, client.info.name, ui_locales)
    needs_login = (
        browser_session is None
        or level_missing
        or (
            not logged_in_here
            and (
                "login" in prompts
                # OIDC Core §3.1.2.1: max_age=0 equals prompt=login, even within the same second.
                or max_age == 0
                or (
                    max_age is not None
                    and now - browser_session.auth_time > timedelta(seconds=max_age)
                )
                or (login_hint and login_hint != browser_session.account.username)
            )
        )
    )
    try:
        if needs_login and "none" in prompts:
            raise LoginRequiredError(redirect_uri=redirect_uri)
        consent_given_here = interaction is not None and interaction.consented_at is not None
        needs_consent = (
            not client.info.first_party
            and not consent_given_here
            and (
                "consent" in prompts
                or browser_session is None
                or not has_consent(scope, browser_session, client, oauth_request.scope or "")
            )
        )
        if needs_consent and "none" in prompts:
            raise ConsentRequiredError(redirect_uri=redirect_uri)
    except OAuth2Error as error:
        return error_response(scope, server, error, state, ui_locales)

    if needs_login or needs_consent:
        handle = sessions.start_interaction(
            session=scope.session,
            clock=runtime.clock,
            settings=runtime.settings,
            client_id=client.client_id,
            params={
                "items": oauth_request.payload_items,
                login_pages.REQUIRED_ACR_KEY: required_acr,
                PUSHED_KEY: pushed,
                SIGNED_KEY: signed,
            },
            # Login then consent: the consent step must not send the official back to log in.
            authenticated_session_id=interaction.authenticated_session_id if interaction else None,
        )
        if interaction is not None:
            interaction.completed_at = now
        single_use = pushed or signed
        if needs_login and interaction is None and scope.http.method == "GET" and not single_use:
            # The form itself, one round trip less than a redirect to /login. Not for a POSTed
            # request: its language links (GET, same URL) would lose the parameters; nor for a
            # pushed one, whose request_uri is used up, or a request object, whose jti is.
            return login_pages.render_login_form(
                scope,
                handle,
                client_name=client.info.name,
                ui_locales=ui_locales,
                username=data.get("login_hint", "")[:64],
                passkey_required=required_acr == levels.PHISHING_RESISTANT,
            )
        return redirect_to_page("/login" if needs_login else "/consent", handle)

    assert browser_session is not None
    user = AuthenticatedUser(
        account=browser_session.account,
        browser_session=browser_session,
        auth_time=browser_session.auth_time,
        amr=list(browser_session.amr),
    )
    if interaction is not None:
        interaction.completed_at = now
    response: Response = server.create_authorization_response(
        request=oauth_request, grant_user=user, grant=grant
    )
    return response


def resume(scope: RequestScope) -> Response:
    """Back from the login or consent page: finish the parked authorization request."""
    handle = dict(scope.http.query).get("interaction")
    interaction = sessions.find_interaction(
        session=scope.session, clock=scope.runtime.clock, handle=handle
    )
    if interaction is None:
        return expired_interaction_page(scope)
    items = [(str(k), str(v)) for k, v in interaction.params["items"]]
    return authorize(scope, items=items, interaction=interaction)


def passkey_required_page(
    scope: RequestScope, client_name: str, ui_locales: str | None
) -> Response:
    """The application (or the official's unit) requires a passkey and the official has none:
    what to do. The session just started stays, so the official can add a passkey on the
    account page at once (the bootstrap: every other factor of the account was checked)."""
    return scope.runtime.pages.render(
        scope.request,
        "passkey_required.html",
        {
            "client_name": client_name,
            "passkeys_available": passkeys.available(scope.runtime.settings),
        },
        locale=scope.locale(ui_locales),
        status_code=403,
    )


def expired_interaction_page(scope: RequestScope) -> Response:
    return scope.runtime.pages.render(
        scope.request,
        "error.html",
        {
            "title": N_("Sign-in error"),
            "message": N_(
                "Your sign-in session has expired. Please start again from the application."
            ),
            "status_code": 400,
        },
        locale=scope.locale(),
        status_code=400,
    )


async def authorization_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, authorize)


async def resume_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, resume)
