"""``/cas/logout`` (CAS 3.0 §2.3): ends the official's SSO session as OIDC logout does,
which queues the single-logout notices of every app of the session, CAS services included
(§2.3.3). With a ``service`` parameter the browser is sent there afterwards, but only when the
service is registered (§2.3.1 leaves it to the server; an open redirect is not an option);
otherwise the logged-out page is shown."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.cas import service_urls, services
from idp.logout import session_end
from idp.models import CasService
from idp.request_scope import RequestScope, run_in_request_scope
from idp.web import login as login_pages


def _registered_service(scope: RequestScope, raw: str | None) -> tuple[CasService, str] | None:
    if not raw:
        return None
    try:
        service_url = service_urls.normalise(raw)
    except service_urls.InvalidServiceUrl:
        return None
    service = services.find_for_url(scope.session, service_url)
    return (service, service_url) if service is not None else None


def logout(scope: RequestScope) -> Response:
    registered = _registered_service(scope, dict(scope.http.query).get("service"))
    browser_session = login_pages.signed_in_session(scope)
    frontchannel_urls = (
        session_end.end_browser_session(
            scope,
            browser_session,
            target=f"cas_service:{registered[0].service_id}" if registered else None,
        )
        if browser_session is not None
        else []
    )
    return session_end.logged_out_page(
        scope,
        client_name=registered[0].name if registered else None,
        frontchannel_urls=frontchannel_urls,
        continue_url=registered[1] if registered else None,
    )


async def logout_endpoint(request: Request) -> Response:
    response = await run_in_request_scope(request, logout)
    session_end.wake_delivery_worker(request)
    return response
