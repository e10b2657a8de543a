"""Ending an official's browser session from the browser, whatever protocol asked for it
(OIDC RP-initiated logout, CAS ``/cas/logout``, a SAML LogoutRequest at ``/saml/slo``): one
place that ends the session, revokes its grants, queues every protocol's server-to-server
notices, audits, and shows the logged-out page with the front-channel iframes (OIDC
front-channel logout and SAML LogoutRequests by HTTP-Redirect).

Notices are queued in the logout's transaction; the delivery worker is woken once it
committed (:func:`wake_delivery_worker`), so the response never waits for an app.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core import audit
from idp import sessions, token_store
from idp.federation import upstream_logout
from idp.logout import backchannel, frontchannel
from idp.logout import worker as logout_worker
from idp.models import BrowserSession
from idp.request_scope import RequestScope
from idp.saml import single_logout as saml_single_logout

QUEUED_STATE = "logout_deliveries_queued"
UPSTREAM_LOGOUT_STATE = "upstream_logout"


def end_browser_session(
    scope: RequestScope,
    browser_session: BrowserSession,
    *,
    target: str | None,
    except_saml_sp: int | None = None,
) -> list[str]:
    """End the session, revoke its grants, queue the notices; returns the front-channel
    iframe URLs for the logged-out page. ``target``: who asked, for the audit log;
    ``except_saml_sp``: the SAML SP that asked (it gets a LogoutResponse instead)."""
    clock = scope.runtime.clock
    frontchannel_urls = frontchannel.logout_urls(
        scope.session, issuer=scope.runtime.settings.issuer, browser_session=browser_session
    ) + saml_single_logout.frontchannel_urls(
        scope.session,
        issuer=scope.runtime.settings.issuer,
        keyring=scope.runtime.keyring,
        now=clock.now(),
        browser_session=browser_session,
        except_sp_pk=except_saml_sp,
    )
    queued = backchannel.enqueue_for_sessions(
        session=scope.session, clock=clock, browser_sessions=[browser_session], reason="logout"
    )
    # Read by the endpoint once the transaction committed: wake the delivery worker then.
    setattr(scope.request.state, QUEUED_STATE, queued)
    # A session that began at an upstream provider: the logged-out page goes on there.
    setattr(
        scope.request.state,
        UPSTREAM_LOGOUT_STATE,
        upstream_logout.pending_for(
            scope.session,
            server_secret=scope.runtime.server_secret,
            browser_session=browser_session,
        ),
    )
    sessions.end(session=scope.session, clock=clock, browser_session=browser_session)
    revoked = token_store.revoke_grants_of_session(
        session=scope.session, clock=clock, browser_session=browser_session, reason="logout"
    )
    audit.record(
        scope.session,
        clock=clock,
        actor=f"user:{browser_session.account.username}",
        action="logout",
        target=target,
        client_address=scope.http.client_address,
        details={
            "sid": browser_session.sid,
            "grants_revoked": revoked,
            "backchannel_deliveries": queued,
            "frontchannel_notified": len(frontchannel_urls),
        },
    )
    return frontchannel_urls


def logged_out_page(
    scope: RequestScope,
    *,
    client_name: str | None,
    frontchannel_urls: list[str],
    continue_url: str | None,
    ui_locales: str | None = None,
) -> Response:
    """Straight to ``continue_url`` when no iframe has to load; otherwise the logged-out page,
    whose iframes load before it moves on (Front-Channel Logout 1.0 §4). The session cookie
    is removed either way. When the session began at an upstream provider, the browser goes
    through the upstream's logout first, which sends it back on to ``continue_url``."""
    pending = getattr(scope.request.state, UPSTREAM_LOGOUT_STATE, None)
    if pending is not None:
        continue_url = upstream_logout.location(
            session=scope.session,
            clock=scope.runtime.clock,
            settings=scope.runtime.settings,
            logout=pending,
            continue_url=continue_url,
            client_name=client_name,
        )
    if continue_url and not frontchannel_urls:
        response: Response = RedirectResponse(continue_url, status_code=303)
    else:
        response = scope.runtime.pages.render(
            scope.request,
            "logged_out.html",
            {
                "client_name": client_name,
                "frontchannel_urls": frontchannel_urls,
                "continue_url": continue_url,
            },
            locale=scope.locale(ui_locales),
            headers=frontchannel.page_headers(frontchannel_urls, continue_url),
        )
    response.delete_cookie(scope.runtime.session_cookie_name, path="/")
    return response


def wake_delivery_worker(request: Request) -> None:
    """Call after the logout's transaction committed."""
    if getattr(request.state, QUEUED_STATE, 0):
        logout_worker.wake(request.app)
