"""The service's front door, ``/``: sign in, or the areas the signed-in person may enter.

The areas (account, certificates, administration) are the ones the composition root gave the
page renderer (core.web.site_header); an administration area shows only to an admin.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.oauth.endpoints.authorization import current_session
from idp.request_scope import RequestScope, run_in_request_scope
from idp.web.login import DIRECT_LOGIN_HOME, direct_login_url
from idp.web.site_visitor import show_signed_in


def show_home(scope: RequestScope) -> Response:
    browser_session = current_session(scope)
    if browser_session is not None:
        show_signed_in(scope, browser_session.account)
    return scope.runtime.pages.render(
        scope.request,
        "home.html",
        {"sign_in_url": direct_login_url(DIRECT_LOGIN_HOME)},
        locale=scope.locale(),
        remember_locale="lang" in scope.request.query_params,
    )


async def home_page(request: Request) -> Response:
    return await run_in_request_scope(request, show_home)
