"""Two-step sign-in: enrol a TOTP authenticator app (RFC 6238), recovery codes, turn it off.

Enrolment: "Set up" stores a new secret (POST), the page shows it as a QR code of its
``otpauth://`` URI and as text, the official confirms with a code from the app, and the ten
recovery codes are shown in that response, once: they are stored only as digests, so they can
be neither shown again after a redirect nor kept around to be (the page is ``no-store``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import Response

from core.web.i18n import N_
from idp import mfa, totp
from idp.web.account import display
from idp.web.account.access import (
    AccountScope,
    account_endpoint,
    form_field,
    record_wrong_password,
    redirect,
    render,
    throttle_check,
)
from idp.web.account.pages import notice_of
from idp.web.account.qr_svg import qr_svg
from idp.web.login import LOCKED_OUT

CODE_WRONG = N_("The code is not valid. Check the time on your phone and enter a new code.")
CODE_MISSING = N_("Please enter the 6-digit code from your authenticator app.")
PASSWORD_MISSING = N_("Please enter your password.")
PASSWORD_WRONG = N_("Your password is not correct.")


def issuer_name(account_scope: AccountScope) -> str:
    """The name the authenticator app shows for the entry: this provider's host name."""
    return urlsplit(account_scope.scope.runtime.settings.issuer).hostname or "commune-sso"


def _render_security(
    account_scope: AccountScope, errors: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    scope, account = account_scope.scope, account_scope.account
    totp_on = mfa.has_totp(scope.session, account)
    pending = (
        None
        if totp_on
        else mfa.pending_enrolment(
            session=scope.session,
            server_secret=scope.runtime.server_secret,
            account=account,
            issuer_name=issuer_name(account_scope),
        )
    )
    return render(
        scope,
        "account/security.html",
        {
            "active": "security",
            "account": account,
            "notice": notice_of(account_scope),
            "errors": errors or {},
            "totp_on": totp_on,
            "pending": pending is not None,
            "secret": totp.grouped(totp.secret_as_base32(pending.secret)) if pending else None,
            "otpauth_uri": pending.uri if pending else None,
            "qr": qr_svg(pending.uri) if pending else None,
            "recovery_left": mfa.unused_recovery_codes(scope.session, account) if totp_on else 0,
        },
        status_code=status_code,
    )


def show_security(account_scope: AccountScope) -> Response:
    return _render_security(account_scope)


def submit_start(account_scope: AccountScope) -> Response:
    scope = account_scope.scope
    mfa.start_enrolment(
        session=scope.session,
        clock=scope.runtime.clock,
        server_secret=scope.runtime.server_secret,
        account=account_scope.account,
    )
    return redirect("/account/security#setup")


def recovery_codes_file(account_scope: AccountScope, codes: list[str]) -> str:
    """The text file of the codes, offered in the same response (a ``data:`` link: the codes
    are never stored to be fetched again). Its header names the account, the portal and the
    date, so a file found later says what it is for."""
    scope, account = account_scope.scope, account_scope.account
    locale = scope.locale()

    def _(message: str) -> str:
        return scope.runtime.pages.gettext(locale, message)

    name = f"{account.username} ({account.full_name})" if account.full_name else account.username
    lines = [
        _("Recovery codes for two-step sign-in"),
        f"{_('Account')}: {name}",
        f"{_('Portal')}: {_('Single sign-on portal')} – {scope.runtime.settings.issuer}",
        f"{_('Created')}: {display.local_time(scope.runtime.clock.now())}",
        "",
        _("Each code lets you sign in once instead of a code from the app. Keep this file safe."),
        "",
        *(f"{number}. {code}" for number, code in enumerate(codes, start=1)),
    ]
    return "\r\n".join(lines) + "\r\n"


def _render_codes(account_scope: AccountScope, codes: list[str], *, first_time: bool) -> Response:
    return render(
        account_scope.scope,
        "account/recovery_codes.html",
        {
            "active": "security",
            "account": account_scope.account,
            "codes": codes,
            "first_time": first_time,
            "codes_file": recovery_codes_file(account_scope, codes),
            "codes_file_name": f"recovery-codes-{account_scope.account.username}.txt",
        },
    )


def submit_confirm(account_scope: AccountScope) -> Response:
    scope, account = account_scope.scope, account_scope.account
    if mfa.has_totp(scope.session, account):
        # A second submit of the same form: already on, and no second set of codes.
        return redirect("/account/security")
    code = form_field(scope, "code", limit=32).strip()
    if not code:
        return _render_security(account_scope, {"code": CODE_MISSING}, status_code=400)
    codes = mfa.confirm_enrolment(
        session=scope.session,
        clock=scope.runtime.clock,
        server_secret=scope.runtime.server_secret,
        account=account,
        code=code,
    )
    if codes is None:
        return _render_security(account_scope, {"code": CODE_WRONG}, status_code=400)
    return _render_codes(account_scope, codes, first_time=True)


def _password_confirmed(account_scope: AccountScope) -> Response | None:
    """None when the password typed is right; otherwise the page to answer with."""
    scope, account = account_scope.scope, account_scope.account
    password = form_field(scope, "password")
    if not password:
        return _render_security(account_scope, {"password": PASSWORD_MISSING}, status_code=400)
    throttled = throttle_check(account_scope)
    if throttled is True:
        return _render_security(account_scope, {"password": LOCKED_OUT}, status_code=429)
    if isinstance(throttled, Response):
        return throttled
    if not scope.runtime.passwords.check(password, account.password_hash).ok:
        record_wrong_password(account_scope)
        return _render_security(account_scope, {"password": PASSWORD_WRONG}, status_code=400)
    return None


def submit_disable(account_scope: AccountScope) -> Response:
    scope, account = account_scope.scope, account_scope.account
    if not mfa.has_totp(scope.session, account):
        return redirect("/account/security")
    refused = _password_confirmed(account_scope)
    if refused is not None:
        return refused
    mfa.disable(
        session=scope.session,
        clock=scope.runtime.clock,
        actor=f"user:{account.username}",
        account=account,
    )
    return redirect("/account/security?done=totp-disabled")


def submit_regenerate_codes(account_scope: AccountScope) -> Response:
    scope, account = account_scope.scope, account_scope.account
    if not mfa.has_totp(scope.session, account):
        return redirect("/account/security")
    refused = _password_confirmed(account_scope)
    if refused is not None:
        return refused
    codes = mfa.regenerate_recovery_codes(
        session=scope.session, clock=scope.runtime.clock, account=account
    )
    return _render_codes(account_scope, codes, first_time=False)


security_page_endpoint = account_endpoint(show_security)
start_endpoint = account_endpoint(submit_start)
confirm_endpoint = account_endpoint(submit_confirm)
disable_endpoint = account_endpoint(submit_disable)
regenerate_codes_endpoint = account_endpoint(submit_regenerate_codes)
