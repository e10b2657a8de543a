"""The self-service password reset pages (issue 16): "Forgot your password?" on the login
form leads to ``/login/forgot`` (a username or e-mail), the e-mail's link to ``/login/reset``.
The service is :mod:`idp.password_reset`."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from starlette.background import BackgroundTask
from starlette.responses import Response

from core.mail import Mailer, mail_settings
from core.web.i18n import N_
from idp import accounts, password_reset
from idp.models import Account
from idp.request_scope import RequestScope
from idp.web.account.access import note_logout_deliveries, public_endpoint, render
from idp.web.account.pages import new_password_errors

log = logging.getLogger(__name__)

IDENTIFIER_MISSING = N_("Please enter your username or e-mail address.")
LINK_NOT_VALID = N_(
    "This link is not valid any more: it was already used, it has expired, or a newer one "
    "was sent. Ask for a new one below."
)


def _render_request(
    scope: RequestScope,
    *,
    identifier: str = "",
    sent: bool = False,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        scope,
        "account/forgot_password.html",
        {
            "identifier": identifier,
            "sent": sent,
            "error": error,
            "minutes": scope.runtime.settings.password_reset_minutes,
        },
        status_code=status_code,
    )


def show_request(scope: RequestScope) -> Response:
    return _render_request(scope)


def send_messages(mailer: Mailer, messages: list[EmailMessage]) -> None:
    """After the response (and the commit): the page does not wait for, nor reveal, mail."""
    for message in messages:
        try:
            mailer.send(message)
        except (OSError, smtplib.SMTPException):
            log.exception("password reset e-mail to %s failed", message["To"])


def submit_request(scope: RequestScope) -> Response:
    """The same answer whether or not an account matches (and whether it was throttled)."""
    runtime = scope.runtime
    identifier = dict(scope.http.form).get("identifier", "").strip()[:254]
    if not identifier:
        return _render_request(scope, error=IDENTIFIER_MISSING, status_code=400)
    links = password_reset.request_reset(
        session=scope.session,
        clock=runtime.clock,
        settings=runtime.settings,
        identifier=identifier,
        client_address=scope.http.client_address,
    )
    response = _render_request(scope, sent=True)
    if links:
        mail = mail_settings(runtime.settings)
        messages = [
            password_reset.reset_message(
                link,
                mail=mail,
                translations=runtime.pages.translations,
                settings=runtime.settings,
                now=runtime.clock.now(),
            )
            for link in links
        ]
        response.background = BackgroundTask(send_messages, Mailer(mail), messages)
    return response


def _token(scope: RequestScope) -> str:
    source = scope.http.form if scope.http.method == "POST" else scope.http.query
    return dict(source).get("token", "")[:128]


def _render_reset(
    scope: RequestScope,
    token: str,
    *,
    username: str,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        scope,
        "account/reset_password.html",
        {
            "token": token,
            "username": username,
            "errors": errors or {},
            "min_length": accounts.MIN_PASSWORD_LENGTH,
        },
        status_code=status_code,
    )


def _link_not_valid(scope: RequestScope) -> Response:
    return _render_request(scope, error=LINK_NOT_VALID, status_code=400)


def show_reset(scope: RequestScope) -> Response:
    token = _token(scope)
    reset = password_reset.find_valid(scope.session, scope.runtime.clock, token)
    if reset is None:
        return _link_not_valid(scope)
    account = scope.session.get(Account, reset.account_id)
    assert account is not None
    return _render_reset(scope, token, username=account.username)


def submit_reset(scope: RequestScope) -> Response:
    runtime = scope.runtime
    token = _token(scope)
    reset = password_reset.find_valid(scope.session, runtime.clock, token)
    if reset is None:
        return _link_not_valid(scope)
    account = scope.session.get(Account, reset.account_id)
    assert account is not None
    form = dict(scope.http.form)
    new, confirm = form.get("new_password", "")[:1024], form.get("new_password_confirm", "")[:1024]
    errors = new_password_errors(new, confirm, username=account.username)
    if errors:
        return _render_reset(
            scope, token, username=account.username, errors=errors, status_code=400
        )
    _, queued = password_reset.complete_reset(
        session=scope.session,
        clock=runtime.clock,
        passwords=runtime.passwords,
        reset=reset,
        new_password=new,
        client_address=scope.http.client_address,
    )
    note_logout_deliveries(scope, queued)
    return render(scope, "account/password_reset_done.html", {"username": account.username})


request_page_endpoint = public_endpoint(show_request)
request_submit_endpoint = public_endpoint(submit_request)
reset_page_endpoint = public_endpoint(show_reset)
reset_submit_endpoint = public_endpoint(submit_reset)
