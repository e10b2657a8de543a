"""Activation page: an imported official exchanges the one-time code handed out by the IT
department (idp.bulk_import.activation) for a first password, and is signed in.

Any failure with the code (unknown username, disabled account, wrong, expired or used code)
gets the same message and counts against the same throttle as the login form
(idp.login_throttle), so the page reveals nothing the login form would not.
"""

from __future__ import annotations

from starlette.responses import Response

from core import audit
from core.web.i18n import N_
from idp import accounts, login_throttle, mfa, sessions
from idp.logout import backchannel
from idp.oauth.endpoints.authorization import current_session
from idp.request_scope import RequestScope
from idp.web.account.access import (
    note_logout_deliveries,
    public_endpoint,
    redirect,
    render,
)
from idp.web.account.pages import new_password_errors
from idp.web.login import (
    LOCKED_OUT,
    ThrottleDelay,
    direct_login_url,
    set_device_cookie,
    set_session_cookie,
    submitted_username,
    throttle_attempt,
)

USERNAME_MISSING = N_("Please enter your username.")
CODE_MISSING = N_("Please enter the activation code you were given.")


def _render(
    scope: RequestScope,
    *,
    username: str = "",
    code: str = "",
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        scope,
        "account/activate.html",
        {
            "username": username,
            "code": code,
            "errors": errors or {},
            "error": error,
            "min_length": accounts.MIN_PASSWORD_LENGTH,
        },
        status_code=status_code,
    )


def show_activation(scope: RequestScope) -> Response:
    username = submitted_username(scope.request.query_params.get("username", ""))[:64]
    return _render(scope, username=username)


def submit_activation(scope: RequestScope) -> Response:
    runtime, session, clock = scope.runtime, scope.session, scope.runtime.clock
    form = dict(scope.http.form)
    username = submitted_username(form.get("username", ""))[:64]
    code = form.get("code", "").strip()[:100]
    new, confirm = form.get("new_password", "")[:1024], form.get("new_password_confirm", "")[:1024]
    errors = new_password_errors(new, confirm, username=username)
    if not username:
        errors["username"] = USERNAME_MISSING
    if not code:
        errors["code"] = CODE_MISSING
    if errors:
        return _render(scope, username=username, code=code, errors=errors, status_code=400)

    address = scope.http.client_address
    attempt = throttle_attempt(scope, username)
    state = login_throttle.assess(
        session=session, clock=clock, settings=runtime.settings, attempt=attempt
    )
    if state.locked:
        return _render(scope, username=username, code=code, error=LOCKED_OUT, status_code=429)
    if state.delay_seconds > 0 and not getattr(scope.request.state, "throttle_delay_served", False):
        return ThrottleDelay(state.delay_seconds)
    account = accounts.activate(
        session=session,
        clock=clock,
        passwords=runtime.passwords,
        username=username,
        code=code,
        password=new,
        client_address=address,
    )
    if account is None:
        signed_in = current_session(scope)
        if signed_in is not None and signed_in.account.username == username.lower():
            # The same form sent twice: the first one activated the account and signed in.
            return redirect("/account")
        login_throttle.record_audited_failure(
            session=session,
            clock=clock,
            settings=runtime.settings,
            attempt=attempt,
            actor="anonymous",
            action="account.activation_failed",
            target=f"account:{username.lower()}",
        )
        return _render(
            scope,
            username=username,
            code=code,
            error=accounts.ACTIVATION_FAILED,
            status_code=401,
        )

    if state.has_failures:
        login_throttle.clear_after_success(session=session, attempt=attempt)
    # A re-sent code works as a reset: whoever held the old password is signed out.
    _, queued = accounts.end_browser_sessions(
        session=session,
        clock=clock,
        browser_sessions=backchannel.live_sessions_of(session, clock, account),
        reason="password_changed",
    )
    note_logout_deliveries(scope, queued)
    previous = current_session(scope)
    if previous is not None:
        sessions.end(session=session, clock=clock, browser_session=previous)
    if mfa.has_totp(session, account):
        # The code proves one factor only: the second one is asked at the login form.
        return redirect(direct_login_url("/account"))
    browser_session, cookie_value = sessions.create(
        session=session,
        clock=clock,
        settings=runtime.settings,
        account=account,
        amr=["pwd"],
        client_address=address,
        user_agent=scope.http.header("user-agent"),
    )
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}",
        action="login.success",
        target="account_pages",
        client_address=address,
        details={"sid": browser_session.sid, "amr": ["pwd"], "activation": True},
    )
    response = redirect("/account?done=activated")
    set_session_cookie(scope, response, cookie_value)
    set_device_cookie(scope, response, account)
    return response


activation_page_endpoint = public_endpoint(show_activation)
activation_submit_endpoint = public_endpoint(submit_activation)
