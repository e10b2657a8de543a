"""``/cas/login`` as credential requestor (CAS 3.0 §2.1) and acceptor (§2.2), through the
shared login interaction.

* A registered ``service`` and a live SSO session: a ticket at once, no form (§2.1.1).
* ``renew``: the password is asked again even with a session (it wins over ``gateway``, as
  §2.1.1 recommends), and the ticket says it came from a new login.
* ``gateway`` without a session: straight back to the service, without a ticket (§2.1.1).
* Otherwise the shared login form for an interaction that remembers the service; after the
  password (and second factor) the login layer sends the browser to ``/cas/login/resume``,
  which issues the ticket for the session just started (§2.2.4: redirect to the service with
  ``ticket``).

A ``service`` that is not registered gets an error page, never a redirect (§2.2.4 leaves it to
the server; an open redirect is not an option).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from idp import authentication_levels as levels
from idp import sessions
from idp.cas import service_urls, services, tickets
from idp.cas.pages import EXPIRED_SIGN_IN, UNKNOWN_SERVICE, sign_in_error
from idp.cas.validation import is_set
from idp.models import BrowserSession, CasService
from idp.request_scope import RequestScope, run_in_request_scope
from idp.web import login as login_pages

RESUME_PATH = "/cas/login/resume"


def _redirect_with_ticket(
    scope: RequestScope,
    service: CasService,
    service_url: str,
    browser_session: BrowserSession,
    *,
    from_new_login: bool,
) -> Response:
    ticket = tickets.issue(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        service=service,
        service_url=service_url,
        browser_session=browser_session,
        from_new_login=from_new_login,
    )
    return RedirectResponse(service_urls.with_ticket(service_url, ticket), status_code=303)


def login(scope: RequestScope) -> Response:
    params = dict(scope.http.query)
    if "service" not in params:
        # §2.1.1: without a service the official just signs in to us: the account pages.
        return RedirectResponse("/account", status_code=303)
    try:
        service_url = service_urls.normalise(params["service"])
    except service_urls.InvalidServiceUrl:
        return sign_in_error(scope, UNKNOWN_SERVICE)
    service = services.find_for_url(scope.session, service_url)
    if service is None:
        return sign_in_error(scope, UNKNOWN_SERVICE)
    renew = is_set(params.get("renew"))
    browser_session = login_pages.signed_in_session(scope)
    # A session whose login is below the service's level (or the official's unit's) signs in
    # again, stepped up, as the authorization endpoint does for an OIDC client.
    usable = browser_session is not None and login_pages.session_reaches_level(
        scope, browser_session, service.minimum_acr
    )
    if browser_session is not None and usable and not renew:
        return _redirect_with_ticket(
            scope, service, service_url, browser_session, from_new_login=False
        )
    if not usable and not renew and is_set(params.get("gateway")):
        # §2.1.1: gateway never shows a form; the service gets no ticket.
        return RedirectResponse(service_url, status_code=303)
    handle = login_pages.start_protocol_interaction(
        scope,
        client_id=f"cas:{service.service_id}",
        client_name=service.name,
        audit_target=f"cas_service:{service.service_id}",
        resume_path=RESUME_PATH,
        protocol_key="cas",
        protocol_params={"service_url": service_url, "service_pk": service.id},
        minimum_acr=service.minimum_acr,
    )
    return login_pages.render_login_form(
        scope,
        handle,
        client_name=service.name,
        ui_locales=None,
        passkey_required=service.minimum_acr == levels.PHISHING_RESISTANT,
    )


def resume(scope: RequestScope) -> Response:
    """Back from the login form: the interaction's own login started the current session."""
    handle = dict(scope.http.query).get("interaction")
    interaction = sessions.find_interaction(
        session=scope.session, clock=scope.runtime.clock, handle=handle
    )
    browser_session = login_pages.signed_in_session(scope)
    if (
        interaction is None
        or "cas" not in interaction.params
        or browser_session is None
        or interaction.authenticated_session_id != browser_session.id
    ):
        return sign_in_error(scope, EXPIRED_SIGN_IN)
    interaction.completed_at = scope.runtime.clock.now()
    parked = interaction.params["cas"]
    service = scope.session.get(CasService, int(parked["service_pk"]))
    if service is None or service.removed_at is not None:
        return sign_in_error(scope, UNKNOWN_SERVICE)
    if not login_pages.session_reaches_level(scope, browser_session, service.minimum_acr):
        return login_pages.level_not_reached_page(scope, service.name)
    return _redirect_with_ticket(
        scope, service, str(parked["service_url"]), browser_session, from_new_login=True
    )


async def login_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, login)


async def resume_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, resume)
