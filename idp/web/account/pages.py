"""Profile, change of password, and the official's sessions."""

from __future__ import annotations

from datetime import timedelta

from starlette.responses import Response

from core import audit
from core.errors import DomainError
from core.web.i18n import N_
from idp import accounts, mfa, sessions, units
from idp.logout import backchannel, participants
from idp.models import AccountProfile, BrowserSession
from idp.web.account import display
from idp.web.account.access import (
    AccountScope,
    account_endpoint,
    form_field,
    note_logout_deliveries,
    record_wrong_password,
    redirect,
    render,
    throttle_check,
)
from idp.web.login import LOCKED_OUT

# Shown after a POST-redirect-GET: the query names one of these, never free text.
NOTICES = {
    "password": N_("Your password has been changed. Your other sessions have been signed out."),
    "session-ended": N_("The session has been signed out."),
    "others-ended": N_("All your other sessions have been signed out."),
    "activated": N_("Your account is now active. Welcome!"),
    "totp-enabled": N_("Two-step sign-in is on."),
    "totp-disabled": N_("Two-step sign-in has been turned off."),
    "passkey-added": N_("The passkey has been added."),
    "passkey-removed": N_("The passkey has been removed."),
}

CURRENT_PASSWORD_MISSING = N_("Please enter your current password.")
CURRENT_PASSWORD_WRONG = N_("Your current password is not correct.")
PASSWORDS_DIFFER = N_("The two new passwords do not match.")
PASSWORD_UNCHANGED = N_("The new password must be different from the current one.")


def notice_of(account_scope: AccountScope) -> str | None:
    return NOTICES.get(account_scope.scope.request.query_params.get("done", ""))


# --- Profile ---------------------------------------------------------------------------------


def show_profile(account_scope: AccountScope) -> Response:
    scope, account = account_scope.scope, account_scope.account
    profile = scope.session.get(AccountProfile, account.id)
    return render(
        scope,
        "account/profile.html",
        {
            "active": "profile",
            "notice": notice_of(account_scope),
            "account": account,
            "position": profile.position if profile else None,
            "unit": units.unit_claims(scope.session, account),
            "totp_on": mfa.has_totp(scope.session, account),
            "password_changed_at": display.local_time(account.password_changed_at),
        },
    )


# --- Password --------------------------------------------------------------------------------


def _render_password(
    account_scope: AccountScope, errors: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    return render(
        account_scope.scope,
        "account/password.html",
        {
            "active": "password",
            "account": account_scope.account,
            "errors": errors or {},
            "min_length": accounts.MIN_PASSWORD_LENGTH,
        },
        status_code=status_code,
    )


def show_password(account_scope: AccountScope) -> Response:
    return _render_password(account_scope)


def new_password_errors(new: str, confirm: str, *, username: str) -> dict[str, str]:
    """Field errors for a new password typed twice (shared with the activation page)."""
    errors: dict[str, str] = {}
    try:
        accounts.validate_password(new, username=username)
    except DomainError as error:
        errors["new_password"] = error.message
    if new != confirm:
        errors["new_password_confirm"] = PASSWORDS_DIFFER
    return errors


def submit_password(account_scope: AccountScope) -> Response:
    scope, account = account_scope.scope, account_scope.account
    current = form_field(account_scope.scope, "current_password")
    new = form_field(scope, "new_password")
    confirm = form_field(scope, "new_password_confirm")
    errors = new_password_errors(new, confirm, username=account.username)
    if not current:
        errors["current_password"] = CURRENT_PASSWORD_MISSING
    elif new and new == current:
        errors.setdefault("new_password", PASSWORD_UNCHANGED)
    if errors:
        return _render_password(account_scope, errors, status_code=400)
    throttled = throttle_check(account_scope)
    if throttled is True:
        return _render_password(account_scope, {"current_password": LOCKED_OUT}, 429)
    if isinstance(throttled, Response):
        return throttled
    check = scope.runtime.passwords.check(current, account.password_hash)
    if not check.ok:
        record_wrong_password(account_scope)
        audit.record(
            scope.session,
            clock=scope.runtime.clock,
            actor=f"user:{account.username}",
            action="account.password_change_refused",
            target=f"account:{account.username}",
            client_address=scope.http.client_address,
        )
        return _render_password(account_scope, {"current_password": CURRENT_PASSWORD_WRONG}, 400)
    _, queued = accounts.change_password(
        session=scope.session,
        clock=scope.runtime.clock,
        passwords=scope.runtime.passwords,
        account=account,
        new_password=new,
        current_session=account_scope.browser_session,
    )
    note_logout_deliveries(scope, queued)
    return redirect("/account?done=password")


# --- Sessions --------------------------------------------------------------------------------


def live_sessions(account_scope: AccountScope) -> list[BrowserSession]:
    """The account's sessions that can still be used (not ended, within both lifetimes)."""
    scope = account_scope.scope
    now = scope.runtime.clock.now()
    idle = timedelta(seconds=scope.runtime.settings.session_idle_ttl)
    found = backchannel.live_sessions_of(scope.session, scope.runtime.clock, account_scope.account)
    usable = [each for each in found if now < each.last_seen_at + idle]
    return sorted(usable, key=lambda each: each.last_seen_at, reverse=True)


def show_sessions(account_scope: AccountScope) -> Response:
    current = account_scope.browser_session
    live = live_sessions(account_scope)
    apps = participants.clients_by_session(account_scope.scope.session, live)
    rows = [
        {
            "sid": each.sid,
            "created_at": display.local_time(each.created_at),
            "last_seen_at": display.local_time(each.last_seen_at),
            "client_address": each.client_address or "",
            "device": display.device(each.user_agent),
            "user_agent": (each.user_agent or "")[:160],
            "is_current": each.id == current.id,
            "second_factor": "otp" in (each.amr or []),
            "apps": sorted(client.name for client in apps.get(each.id, [])),
        }
        for each in live
    ]
    return render(
        account_scope.scope,
        "account/sessions.html",
        {
            "active": "sessions",
            "account": account_scope.account,
            "notice": notice_of(account_scope),
            "rows": rows,
            "others": sum(1 for row in rows if not row["is_current"]),
        },
    )


def _end(account_scope: AccountScope, targets: list[BrowserSession], *, action: str) -> int:
    scope, account = account_scope.scope, account_scope.account
    ended, queued = accounts.end_browser_sessions(
        session=scope.session,
        clock=scope.runtime.clock,
        browser_sessions=targets,
        reason="ended_by_official",
    )
    note_logout_deliveries(scope, queued)
    if ended:
        audit.record(
            scope.session,
            clock=scope.runtime.clock,
            actor=f"user:{account.username}",
            action=action,
            target=f"account:{account.username}",
            client_address=scope.http.client_address,
            details={
                "sids": [each.sid for each in targets],
                "backchannel_deliveries": queued,
            },
        )
    return ended


def submit_end_session(account_scope: AccountScope) -> Response:
    """End one other session of the official. Another account's session, the current one, or
    one already ended: nothing happens (a double submit is harmless)."""
    sid = form_field(account_scope.scope, "sid", limit=64)
    target = sessions.find_by_sid(account_scope.scope.session, sid) if sid else None
    if (
        target is None
        or target.account_id != account_scope.account.id
        or target.id == account_scope.browser_session.id
        or target.ended_at is not None
    ):
        return redirect("/account/sessions")
    _end(account_scope, [target], action="account.session_ended")
    return redirect("/account/sessions?done=session-ended")


def submit_end_others(account_scope: AccountScope) -> Response:
    current = account_scope.browser_session
    others = [each for each in live_sessions(account_scope) if each.id != current.id]
    _end(account_scope, others, action="account.other_sessions_ended")
    return redirect("/account/sessions?done=others-ended")


profile_endpoint = account_endpoint(show_profile)
password_page_endpoint = account_endpoint(show_password)
password_submit_endpoint = account_endpoint(submit_password)
sessions_page_endpoint = account_endpoint(show_sessions)
end_session_endpoint = account_endpoint(submit_end_session)
end_others_endpoint = account_endpoint(submit_end_others)
