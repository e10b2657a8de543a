"""``POST /login/certificate``: sign in with the TLS client certificate the browser presented
to our reverse proxy (idp/certificate_sign_in.py says what is checked and why ``amr`` is
``["pop"]``).

The login form shows the button only where the feature is configured. Every refusal is audited
with its reason and answered on the login form with a message that tells the official what to
do; a refusal counts against the client address's login throttle, as a passkey that names no
account does (certificates cannot be guessed, but a loop of requests still costs a CA lookup).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from core import audit
from core.metrics import LOGINS
from idp import certificate_sign_in, login_throttle
from idp.models import Account, Interaction
from idp.oauth.endpoints import authorization
from idp.request_scope import RequestScope
from idp.web.login import (
    LOCKED_OUT,
    ThrottleDelay,
    audit_target,
    finish_login,
    load_interaction,
    render_login,
    run_throttled,
    throttle_attempt,
)


def _refuse(
    scope: RequestScope,
    interaction: Interaction,
    handle: str,
    *,
    reason: str,
    message: str,
    account: Account | None = None,
    details: dict[str, object] | None = None,
    status_code: int = 401,
) -> Response:
    runtime, session, clock = scope.runtime, scope.session, scope.runtime.clock
    LOGINS.labels("failure").inc()
    attempt = login_throttle.Attempt(username="", client_address=scope.http.client_address)
    login_throttle.record_failure(
        session=session, clock=clock, settings=runtime.settings, attempt=attempt
    )
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}" if account else "anonymous",
        action="login.certificate_failure",
        target=audit_target(interaction),
        client_address=scope.http.client_address,
        details={"reason": reason, **(details or {})},
    )
    return render_login(scope, interaction, handle, error=message, status_code=status_code)


def submit(scope: RequestScope) -> Response:
    runtime, session, clock = scope.runtime, scope.session, scope.runtime.clock
    interaction, handle = load_interaction(scope)
    if interaction is None or handle is None:
        return authorization.expired_interaction_page(scope)
    check = runtime.certificate_check
    if check is None or not certificate_sign_in.available(runtime.settings, check):
        return render_login(
            scope, interaction, handle, error=certificate_sign_in.NOT_AVAILABLE, status_code=404
        )
    state = login_throttle.assess(
        session=session,
        clock=clock,
        settings=runtime.settings,
        attempt=login_throttle.Attempt(username="", client_address=scope.http.client_address),
    )
    if state.locked:
        LOGINS.labels("locked").inc()
        return render_login(scope, interaction, handle, error=LOCKED_OUT, status_code=429)
    if state.delay_seconds > 0 and not getattr(scope.request.state, "throttle_delay_served", False):
        return ThrottleDelay(state.delay_seconds)
    http = scope.http
    if http.client_certificate_malformed:
        return _refuse(
            scope,
            interaction,
            handle,
            reason="malformed",
            message=certificate_sign_in.UNREADABLE,
            status_code=400,
        )
    if http.client_certificate is None:
        return _refuse(
            scope,
            interaction,
            handle,
            reason="no_certificate",
            message=certificate_sign_in.NO_CERTIFICATE,
            status_code=400,
        )
    verdict = check(session, http.client_certificate, clock.now())
    facts: dict[str, object] = {"serial": verdict.serial, "ca": verdict.issuer}
    if verdict.refusal is not None:
        return _refuse(
            scope,
            interaction,
            handle,
            reason=verdict.refusal,
            message=certificate_sign_in.refusal_message(verdict.refusal),
            details=facts,
        )
    account = (
        certificate_sign_in.account_of(session, verdict.citizen_id)
        if verdict.citizen_id is not None
        else None
    )
    if account is None:
        return _refuse(
            scope,
            interaction,
            handle,
            reason="unknown_citizen_id" if verdict.citizen_id else "no_citizen_id",
            message=certificate_sign_in.UNKNOWN_ACCOUNT,
            details=facts,
        )
    if not account.is_active:
        return _refuse(
            scope,
            interaction,
            handle,
            reason="account_disabled",
            message=certificate_sign_in.ACCOUNT_DISABLED,
            account=account,
            details=facts,
            status_code=403,
        )
    return finish_login(
        scope,
        interaction,
        handle,
        account=account,
        amr=list(certificate_sign_in.AMR),
        throttle=throttle_attempt(scope, account.username),
        details={"method": "certificate", **facts},
    )


async def submit_endpoint(request: Request) -> Response:
    form = await request.form()
    token = form.get("csrf_token")
    request.app.state.idp.csrf.verify(request, token if isinstance(token, str) else None)
    return await run_throttled(request, submit)
