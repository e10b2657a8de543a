"""Login and consent pages (the official's side of an authorization request)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from authlib.common.urls import add_params_to_uri
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core import audit
from core.web.i18n import N_
from idp import accounts, login_throttle, sessions
from idp.clients import find_active as find_client
from idp.models import Consent, Interaction
from idp.oauth.endpoints.authorization import expired_interaction_page
from idp.request_scope import RequestScope, run_in_request_scope


class ThrottleDelay(Response):
    """Not sent to the browser: tells the route to wait before checking the password."""

    def __init__(self, delay_seconds: float) -> None:
        super().__init__(status_code=429)
        self.delay_seconds = delay_seconds


WRONG_CREDENTIALS = N_("Incorrect username or password.")
LOCKED_OUT = N_("Too many failed attempts. Please wait a few minutes and try again.")
MISSING_CREDENTIALS = N_("Please enter your username and password.")
# No username holds a control character (accounts.USERNAME_PATTERN), and PostgreSQL refuses NUL
# in text: replaced, the name matches no account and is safe to use as a throttle key.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def submitted_username(raw: str) -> str:
    return CONTROL_CHARACTERS.sub("\ufffd", raw.strip())[:200]


def _interaction_param(scope: RequestScope) -> str | None:
    source = scope.http.form if scope.http.method == "POST" else scope.http.query
    return dict(source).get("interaction")


def _load_interaction(scope: RequestScope) -> tuple[Interaction | None, str | None]:
    handle = _interaction_param(scope)
    interaction = sessions.find_interaction(
        session=scope.session, clock=scope.runtime.clock, handle=handle
    )
    return interaction, handle


def _ui_locales(interaction: Interaction) -> str | None:
    return dict((str(k), str(v)) for k, v in interaction.params["items"]).get("ui_locales")


def _client_name(scope: RequestScope, interaction: Interaction) -> str | None:
    client = scope.runtime.client_cache.lookup(scope.session, interaction.client_id)
    return client.name if client else None


def _render_login(
    scope: RequestScope,
    interaction: Interaction,
    handle: str,
    *,
    username: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return scope.runtime.pages.render(
        scope.request,
        "login.html",
        {
            "interaction": handle,
            "username": username,
            "error": error,
            "client_name": _client_name(scope, interaction),
        },
        locale=scope.locale(_ui_locales(interaction)),
        status_code=status_code,
        remember_locale="lang" in scope.request.query_params,
    )


def show_login(scope: RequestScope) -> Response:
    interaction, handle = _load_interaction(scope)
    if interaction is None or handle is None:
        return expired_interaction_page(scope)
    hint = dict((str(k), str(v)) for k, v in interaction.params["items"]).get("login_hint", "")
    return _render_login(scope, interaction, handle, username=hint[:64])


def submit_login(scope: RequestScope) -> Response:
    """Check the password; same message and same work for an unknown user (PITFALLS)."""
    runtime, session, clock = scope.runtime, scope.session, scope.runtime.clock
    interaction, handle = _load_interaction(scope)
    if interaction is None or handle is None:
        return expired_interaction_page(scope)
    form = dict(scope.http.form)
    username = submitted_username(form.get("username", ""))
    password = form.get("password", "")
    if not username or not password:
        return _render_login(
            scope,
            interaction,
            handle,
            username=username,
            error=MISSING_CREDENTIALS,
            status_code=400,
        )
    address = scope.http.client_address
    throttle_keys = login_throttle.keys_for(username, address)
    state = login_throttle.assess(
        session=session, clock=clock, settings=runtime.settings, keys=throttle_keys
    )
    if state.locked:
        audit.record(
            session,
            clock=clock,
            actor="anonymous",
            action="login.refused_locked",
            target=f"account:{username.lower()}",
            client_address=address,
        )
        return _render_login(
            scope, interaction, handle, username=username, error=LOCKED_OUT, status_code=429
        )
    if state.delay_seconds > 0 and not getattr(scope.request.state, "throttle_delay_served", False):
        return ThrottleDelay(state.delay_seconds)
    account = accounts.find_by_username(session, username)
    check = runtime.passwords.check(password, account.password_hash if account else None)
    if account is None or not check.ok or not account.is_active:
        locked_now = login_throttle.record_failure(
            session=session, clock=clock, settings=runtime.settings, keys=throttle_keys
        )
        audit.record(
            session,
            clock=clock,
            actor="anonymous",
            action="login.failure",
            target=f"account:{username.lower()}",
            client_address=address,
            details={"locked": locked_now},
        )
        return _render_login(
            scope, interaction, handle, username=username, error=WRONG_CREDENTIALS, status_code=401
        )

    if check.new_hash:
        accounts.upgrade_password_hash(account=account, new_hash=check.new_hash, clock=clock)
    if state.has_failures:
        login_throttle.clear(session=session, key=throttle_keys[0])
    previous = sessions.find_active(
        session=session,
        clock=clock,
        settings=runtime.settings,
        cookie_value=scope.http.cookies.get(runtime.session_cookie_name),
    )
    if previous is not None:
        sessions.end(session=session, clock=clock, browser_session=previous)
    browser_session, cookie_value = sessions.create(
        session=session,
        clock=clock,
        settings=runtime.settings,
        account=account,
        amr=["pwd"],
        client_address=address,
        user_agent=scope.http.header("user-agent"),
    )
    interaction.authenticated_session_id = browser_session.id
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}",
        action="login.success",
        target=f"client:{interaction.client_id}",
        client_address=address,
        details={"sid": browser_session.sid, "rehashed": bool(check.new_hash)},
    )
    response = RedirectResponse(f"/oauth2/authorize/resume?interaction={handle}", status_code=303)
    response.set_cookie(
        runtime.session_cookie_name,
        cookie_value,
        max_age=runtime.settings.session_ttl,
        path="/",
        httponly=True,
        samesite="lax",
        secure=runtime.settings.issuer_is_https,
    )
    return response


def show_consent(scope: RequestScope) -> Response:
    interaction, handle = _load_interaction(scope)
    if interaction is None or handle is None:
        return expired_interaction_page(scope)
    browser_session = sessions.find_active(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        cookie_value=scope.http.cookies.get(scope.runtime.session_cookie_name),
    )
    if browser_session is None:
        return expired_interaction_page(scope)
    params = dict((str(k), str(v)) for k, v in interaction.params["items"])
    return scope.runtime.pages.render(
        scope.request,
        "consent.html",
        {
            "interaction": handle,
            "client_name": _client_name(scope, interaction),
            "scopes": params.get("scope", "").split(),
            "user_name": browser_session.account.full_name,
        },
        locale=scope.locale(params.get("ui_locales")),
        remember_locale="lang" in scope.request.query_params,
    )


def submit_consent(scope: RequestScope) -> Response:
    runtime, session, clock = scope.runtime, scope.session, scope.runtime.clock
    interaction, handle = _load_interaction(scope)
    browser_session = sessions.find_active(
        session=session,
        clock=clock,
        settings=runtime.settings,
        cookie_value=scope.http.cookies.get(runtime.session_cookie_name),
    )
    client = find_client(session, interaction.client_id) if interaction else None
    if interaction is None or handle is None or browser_session is None or client is None:
        return expired_interaction_page(scope)
    params = dict((str(k), str(v)) for k, v in interaction.params["items"])
    requested = [s for s in params.get("scope", "").split() if s in client.scope.split()]
    decision = dict(scope.http.form).get("decision")
    account = browser_session.account
    if decision == "allow":
        existing = (
            session.query(Consent).filter_by(account_id=account.id, client_pk=client.id).first()
        )
        if existing is None:
            session.add(
                Consent(
                    account_id=account.id,
                    client_pk=client.id,
                    scopes=requested,
                    granted_at=clock.now(),
                )
            )
        else:
            existing.scopes = sorted(set(existing.scopes) | set(requested))
            existing.granted_at = clock.now()
        interaction.consented_at = clock.now()
        audit.record(
            session,
            clock=clock,
            actor=f"user:{account.username}",
            action="consent.grant",
            target=f"client:{client.client_id}",
            details={"scopes": requested},
        )
        return RedirectResponse(f"/oauth2/authorize/resume?interaction={handle}", status_code=303)
    # RFC 6749 §4.1.2.1 access_denied, delivered to the (registered) redirect URI.
    interaction.completed_at = clock.now()
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}",
        action="consent.deny",
        target=f"client:{client.client_id}",
    )
    error_params = [("error", "access_denied")]
    if params.get("state"):
        error_params.append(("state", params["state"]))
    error_params.append(("iss", runtime.settings.issuer))
    return RedirectResponse(
        add_params_to_uri(params["redirect_uri"], error_params), status_code=303
    )


async def _csrf_checked(request: Request, handler: Callable[[RequestScope], Response]) -> Response:
    form = await request.form()
    token = form.get("csrf_token")
    request.app.state.idp.csrf.verify(request, token if isinstance(token, str) else None)
    return await run_in_request_scope(request, handler)


async def login_page(request: Request) -> Response:
    return await run_in_request_scope(request, show_login)


async def login_submit(request: Request) -> Response:
    runtime = request.app.state.idp
    form = await request.form()
    token = form.get("csrf_token")
    runtime.csrf.verify(request, token if isinstance(token, str) else None)
    response = await run_in_request_scope(request, submit_login)
    if isinstance(response, ThrottleDelay):
        # Awaited here, not slept in the worker thread, which would hold a database
        # connection; then the attempt runs again, this time past the delay.
        await asyncio.sleep(response.delay_seconds)
        request.state.throttle_delay_served = True
        response = await run_in_request_scope(request, submit_login)
    return response


async def consent_page(request: Request) -> Response:
    return await run_in_request_scope(request, show_consent)


async def consent_submit(request: Request) -> Response:
    return await _csrf_checked(request, submit_consent)
