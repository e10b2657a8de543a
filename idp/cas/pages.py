"""The pages CAS endpoints show the official instead of redirecting (an unknown service, an
expired sign-in): the shared error page, with texts the login pages already use."""

from __future__ import annotations

from starlette.responses import Response

from core.web.i18n import N_
from idp.request_scope import RequestScope
from idp.web import login as login_pages

UNKNOWN_SERVICE = N_(
    "Unknown application or unregistered return address. For your safety you were not redirected."
)
EXPIRED_SIGN_IN = N_("Your sign-in session has expired. Please start again from the application.")


def sign_in_error(scope: RequestScope, message: str) -> Response:
    return login_pages.sign_in_error_page(scope, message)
