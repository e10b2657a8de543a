"""Sign-in with a passkey (WebAuthn §7.2), both ways:

* alone, from the login form's "Sign in with a passkey" button: a discoverable credential,
  no username typed, user verification required (idp.passkeys);
* as the second factor after the password (``/login/passkey``), like a TOTP code.

The browser asks ``POST /login/passkey/options`` for the request options (JSON; the challenge
is stored with the interaction), runs ``navigator.credentials.get`` (static/passkeys.js) and
posts the credential as an ordinary form to ``POST /login/passkey``, which finishes the login
as the password form does (``idp.web.login.finish_login``) with ``amr`` from
:func:`idp.passkeys.amr_of`. A refused response is audited with its reason and answered with
one message: what went wrong is for the log, not for whoever holds the browser. A refusal
counts against the login throttle (idp.login_throttle) like a wrong password: against the
account the credential belongs to, or the client address when it names none.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core import audit
from core.metrics import LOGINS
from core.web.i18n import N_
from idp import authentication_levels as levels
from idp import login_throttle, mfa, passkeys
from idp.models import Account, Interaction
from idp.oauth.endpoints import authorization
from idp.request_scope import RequestScope, run_in_request_scope
from idp.web.login import (
    LOCKED_OUT,
    ThrottleDelay,
    audit_target,
    client_name_of,
    finish_login,
    load_interaction,
    render_login,
    required_acr,
    run_throttled,
    second_factor_account,
    throttle_attempt,
    ui_locales_of,
)

PASSKEY_REFUSED = N_(
    "The passkey could not be used to sign in. Try again, or sign in with your password."
)
SECOND_FACTOR_REFUSED = N_("The passkey could not be verified. Please try again.")
SIGN_IN_EXPIRED = N_("Your sign-in session has expired. Please start again from the application.")
MODE_ALONE, MODE_SECOND_FACTOR = "alone", "second-factor"


def _json_refusal(scope: RequestScope, message: str, status_code: int = 400) -> Response:
    text = scope.runtime.pages.gettext(scope.locale(), message)
    return JSONResponse({"error": text}, status_code=status_code)


def _mode(scope: RequestScope) -> str:
    return dict(scope.http.form).get("mode", MODE_ALONE)


def _ceremony_parties(
    scope: RequestScope,
) -> tuple[Interaction | None, str | None, Account | None, bool]:
    """The interaction, its handle, the account of a second factor, and whether the request
    names a usable sign-in at all."""
    if _mode(scope) == MODE_SECOND_FACTOR:
        interaction, handle, account = second_factor_account(scope)
        return interaction, handle, account, account is not None
    interaction, handle = load_interaction(scope)
    return interaction, handle, None, interaction is not None


def options(scope: RequestScope) -> Response:
    runtime = scope.runtime
    if not passkeys.available(runtime.settings):
        return _json_refusal(scope, PASSKEY_REFUSED, status_code=404)
    interaction, handle, account, usable = _ceremony_parties(scope)
    if interaction is None or handle is None or not usable:
        return _json_refusal(scope, SIGN_IN_EXPIRED)
    body = passkeys.authentication_options(
        session=scope.session,
        clock=runtime.clock,
        settings=runtime.settings,
        interaction=interaction,
        account=account,
    )
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


def _render_second_factor(
    scope: RequestScope,
    interaction: Interaction,
    handle: str,
    account: Account,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    # A TOTP code is offered instead only when the application accepts that level.
    totp_allowed = mfa.has_totp(scope.session, account) and levels.satisfies(
        levels.MULTI_FACTOR, required_acr(scope, interaction, account)
    )
    return scope.runtime.pages.render(
        scope.request,
        "account/login_passkey.html",
        {
            "interaction": handle,
            "error": error,
            "client_name": client_name_of(scope, interaction),
            "totp_allowed": totp_allowed,
        },
        locale=scope.locale(ui_locales_of(interaction)),
        status_code=status_code,
        remember_locale="lang" in scope.request.query_params,
    )


def show_second_factor(scope: RequestScope) -> Response:
    interaction, handle, account = second_factor_account(scope)
    if interaction is None or handle is None or account is None:
        return authorization.expired_interaction_page(scope)
    return _render_second_factor(scope, interaction, handle, account)


def _throttle_attempt(scope: RequestScope, account: Account | None) -> login_throttle.Attempt:
    """Whose failures a passkey attempt counts: the account's (as a wrong password would), or
    when no account is known yet, the client address's only."""
    if account is not None:
        return throttle_attempt(scope, account.username)
    return login_throttle.Attempt(username="", client_address=scope.http.client_address)


def _refuse(
    scope: RequestScope,
    interaction: Interaction,
    handle: str,
    account: Account | None,
    *,
    error: str,
    status_code: int,
) -> Response:
    if account is not None:
        return _render_second_factor(
            scope, interaction, handle, account, error=error, status_code=status_code
        )
    return render_login(scope, interaction, handle, error=error, status_code=status_code)


def submit(scope: RequestScope) -> Response:
    runtime, session, clock = scope.runtime, scope.session, scope.runtime.clock
    interaction, handle, account, usable = _ceremony_parties(scope)
    if interaction is None or handle is None or not usable:
        return authorization.expired_interaction_page(scope)
    second_factor = account is not None
    # Throttled like the password and the TOTP code: the account's counters for a second
    # factor, the address's for a passkey alone (no name is known before the check).
    state = login_throttle.assess(
        session=session,
        clock=clock,
        settings=runtime.settings,
        attempt=_throttle_attempt(scope, account),
    )
    if state.locked:
        LOGINS.labels("locked").inc()
        return _refuse(scope, interaction, handle, account, error=LOCKED_OUT, status_code=429)
    if state.delay_seconds > 0 and not getattr(scope.request.state, "throttle_delay_served", False):
        return ThrottleDelay(state.delay_seconds)
    try:
        assertion = passkeys.authenticate(
            session=session,
            clock=clock,
            settings=runtime.settings,
            interaction=interaction,
            account=account,
            credential_json=dict(scope.http.form).get("credential", ""),
        )
    except passkeys.CeremonyFailed as refused:
        LOGINS.labels("second_factor_failure" if second_factor else "failure").inc()
        # The account the credential names counts the failure when the form named none.
        counted = account or refused.account
        attempt = _throttle_attempt(scope, counted)
        locked_now = login_throttle.record_failure(
            session=session, clock=clock, settings=runtime.settings, attempt=attempt
        )
        audit.record(
            session,
            clock=clock,
            actor=f"user:{account.username}" if account else "anonymous",
            action="login.passkey_failure",
            target=audit_target(interaction),
            client_address=scope.http.client_address,
            details={
                "reason": refused.reason,
                "second_factor": second_factor,
                "counted_for": counted.username if counted else None,
                "locked": locked_now,
                "known_device": attempt.device is not None,
            },
        )
        return _refuse(
            scope,
            interaction,
            handle,
            account,
            error=SECOND_FACTOR_REFUSED if second_factor else PASSKEY_REFUSED,
            status_code=401,
        )
    amr = passkeys.amr_of(assertion)
    if second_factor:
        amr = ["pwd", *amr]
        if "mfa" not in amr:
            amr.append("mfa")
    return finish_login(
        scope,
        interaction,
        handle,
        account=assertion.account,
        amr=amr,
        # A success ends the account's run of failures, as a right password does.
        throttle=throttle_attempt(scope, assertion.account.username),
        details={
            "passkey_id": assertion.passkey.id,
            "second_factor": "passkey" if second_factor else None,
        },
    )


async def _csrf_verified(request: Request) -> None:
    form = await request.form()
    token = form.get("csrf_token")
    request.app.state.idp.csrf.verify(request, token if isinstance(token, str) else None)


async def options_endpoint(request: Request) -> Response:
    await _csrf_verified(request)
    return await run_in_request_scope(request, options)


async def submit_endpoint(request: Request) -> Response:
    await _csrf_verified(request)
    return await run_throttled(request, submit)


async def second_factor_page(request: Request) -> Response:
    return await run_in_request_scope(request, show_second_factor)
