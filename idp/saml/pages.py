"""What the official's browser sees from the SAML endpoints: the error page for a request we
do not answer to the SP, and the form that posts a message to the SP (HTTP-POST binding,
Bindings §3.5.4), sent by a script (our CSP forbids inline script) or by the button."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import Response

from core.web.i18n import N_
from idp.logout import frontchannel
from idp.request_scope import RequestScope
from idp.web import login as login_pages

UNKNOWN_SP = N_(
    "Unknown application or unregistered return address. For your safety you were not redirected."
)
REFUSED_REQUEST = N_(
    "The application's sign-in request could not be accepted. Please start again from the "
    "application."
)
EXPIRED_SIGN_IN = N_("Your sign-in session has expired. Please start again from the application.")


def refused(scope: RequestScope, message: str = REFUSED_REQUEST) -> Response:
    return login_pages.sign_in_error_page(scope, message)


def post_to_sp(
    scope: RequestScope,
    *,
    sp_name: str,
    url: str,
    field: str,
    value: str,
    relay_state: str | None,
    frontchannel_urls: Sequence[str] = (),
) -> Response:
    """The auto-submitting form; ``frontchannel_urls``: logout iframes to load on the way."""
    fields = {field: value}
    if relay_state is not None:
        fields["RelayState"] = relay_state
    headers = frontchannel.page_headers(frontchannel_urls, None)
    return scope.runtime.pages.render(
        scope.request,
        "saml_post.html",
        {
            "client_name": sp_name,
            "action": url,
            "fields": fields,
            "frontchannel_urls": list(frontchannel_urls),
        },
        locale=scope.locale(),
        headers=headers,
    )
