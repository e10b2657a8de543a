"""What every account page shares: the SSO session check, CSRF on POST, one transaction per
request, rendering in the official's language, and waking the back-channel logout worker once
a transaction that queued notices has committed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from idp import login_throttle
from idp.logout import worker as logout_worker
from idp.models import Account, BrowserSession
from idp.oauth.endpoints.authorization import current_session
from idp.request_scope import RequestScope
from idp.web.login import (
    DIRECT_LOGIN_NEXT,
    ThrottleDelay,
    direct_login_url,
    run_throttled,
    throttle_attempt,
)
from idp.web.site_visitor import show_signed_in


@dataclass
class AccountScope:
    """A request of a signed-in official: the request scope and the SSO session."""

    scope: RequestScope
    browser_session: BrowserSession

    @property
    def account(self) -> Account:
        return self.browser_session.account


AccountHandler = Callable[[AccountScope], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


def render(
    scope: RequestScope,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> Response:
    return scope.runtime.pages.render(
        scope.request,
        template,
        context,
        locale=scope.locale(),
        status_code=status_code,
        remember_locale="lang" in scope.request.query_params,
    )


def redirect(location: str) -> Response:
    """POST-redirect-GET: 303 makes the browser GET the page, so a reload does not resubmit."""
    return RedirectResponse(location, status_code=303)


def login_redirect(scope: RequestScope) -> Response:
    path = scope.request.url.path
    return redirect(direct_login_url(path if DIRECT_LOGIN_NEXT.fullmatch(path) else "/account"))


def form_field(scope: RequestScope, name: str, *, limit: int = 1024) -> str:
    return dict(scope.http.form).get(name, "")[:limit]


def note_logout_deliveries(scope: RequestScope, queued: int) -> None:
    """Read by the endpoint after the commit, to wake the delivery worker then."""
    previous = getattr(scope.request.state, "logout_deliveries_queued", 0)
    scope.request.state.logout_deliveries_queued = previous + queued


def throttle_check(account_scope: AccountScope) -> Response | bool:
    """Password re-entry on these pages counts against the same throttle as the login form, so
    a stolen session cannot be used to guess the password faster. True when locked; a
    :class:`ThrottleDelay` to wait first; False to go on."""
    scope = account_scope.scope
    state = login_throttle.assess(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        attempt=throttle_attempt(scope, account_scope.account.username),
    )
    if state.locked:
        return True
    if state.delay_seconds > 0 and not getattr(scope.request.state, "throttle_delay_served", False):
        return ThrottleDelay(state.delay_seconds)
    return False


def record_wrong_password(account_scope: AccountScope) -> None:
    scope = account_scope.scope
    login_throttle.record_failure(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        attempt=throttle_attempt(scope, account_scope.account.username),
    )


def account_endpoint(handler: AccountHandler) -> Endpoint:
    """A route for a signed-in official; POSTs must carry the CSRF token (a stale one raises
    CsrfError, which the app renders as the friendly "form expired" page)."""

    def guarded(scope: RequestScope) -> Response:
        browser_session = current_session(scope)
        if browser_session is None:
            return login_redirect(scope)
        show_signed_in(scope, browser_session.account)
        return handler(AccountScope(scope=scope, browser_session=browser_session))

    return public_endpoint(guarded)


def public_endpoint(handler: Callable[[RequestScope], Response]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        if request.method == "POST":
            form = await request.form()
            token = form.get(request.app.state.idp.csrf.FIELD_NAME)
            request.app.state.idp.csrf.verify(request, token if isinstance(token, str) else None)
        response = await run_throttled(request, handler)
        if getattr(request.state, "logout_deliveries_queued", 0):
            logout_worker.wake(request.app)
        return response

    return endpoint
