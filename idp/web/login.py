"""Login and consent pages (the official's side of an authorization request)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core import audit
from core.metrics import LOGINS
from core.web.i18n import N_
from idp import (
    accounts,
    certificate_sign_in,
    device_cookies,
    login_throttle,
    mfa,
    passkeys,
    sessions,
)
from idp import authentication_levels as levels
from idp.clients import find_active as find_client
from idp.federation import providers as upstream_providers
from idp.federation import upstream_logout
from idp.models import Account, BrowserSession, Consent, Interaction
from idp.oauth.endpoints import authorization
from idp.request_scope import RequestScope, run_in_request_scope


class ThrottleDelay(Response):
    """Not sent to the browser: tells the route to wait before checking the password."""

    def __init__(self, delay_seconds: float) -> None:
        super().__init__(status_code=429)
        self.delay_seconds = delay_seconds


WRONG_CREDENTIALS = N_("Incorrect username or password.")
LOCKED_OUT = N_("Too many failed attempts. Please wait a few minutes and try again.")
MISSING_CREDENTIALS = N_("Please enter your username and password.")
# No username holds a control character (accounts.validate_username), and PostgreSQL refuses NUL
# in text: replaced, the name matches no account and is safe to use as a throttle key.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
WRONG_SECOND_FACTOR = N_("The code is not valid. Please try again with a new code.")
MISSING_SECOND_FACTOR = N_("Please enter the code from your authenticator app.")
REPLAYED_SECOND_FACTOR = N_(
    "This code has already been used. Please wait for the next code in your authenticator app "
    "and enter it."
)
# Where a login that no application asked for may return to: the home page, our own account
# and admin pages only (no open redirect: a fixed prefix, no "//", no scheme, no backslash, no
# dot segments).
DIRECT_LOGIN_NEXT = re.compile(r"^/(?:(?:account|admin)(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._-]+)*)?$")
# Where ``/login`` opened by itself (a bookmark, a typed address) leads after signing in.
DIRECT_LOGIN_HOME = "/"
# The interaction's key for the authentication level the application requires (an ACR URI of
# idp.authentication_levels), set by the authorization endpoint.
REQUIRED_ACR_KEY = "required_acr"


# Another protocol (CAS) parks its request in an interaction with these keys: where the
# browser goes once signed in (the protocol finishes there), the application's name for the
# form and the audit log's target.
RESUME_KEY = "resume"
CLIENT_NAME_KEY = "client_name"
AUDIT_TARGET_KEY = "audit_target"
# A first factor done, the second (TOTP) due: what the end of the login needs of the first.
FIRST_FACTOR_KEY = "first_factor"


def start_protocol_interaction(
    scope: RequestScope,
    *,
    client_id: str,
    client_name: str,
    audit_target: str,
    resume_path: str,
    protocol_key: str,
    protocol_params: dict[str, object],
    minimum_acr: str | None = None,
) -> str:
    """Park another protocol's request (CAS, SAML) while the official signs in; the login
    sends the browser to ``resume_path`` with the handle. Returns the interaction handle.
    ``minimum_acr``: the app's minimum level, which the login then requires as for an OIDC
    client's (the official's unit may raise it: :func:`required_acr`)."""
    return sessions.start_interaction(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        client_id=client_id,
        params={
            "items": [],
            RESUME_KEY: resume_path,
            CLIENT_NAME_KEY: client_name,
            AUDIT_TARGET_KEY: audit_target,
            REQUIRED_ACR_KEY: minimum_acr,
            protocol_key: protocol_params,
        },
    )


def session_reaches_level(
    scope: RequestScope, browser_session: BrowserSession, minimum_acr: str | None
) -> bool:
    """Whether the session's login reached the app's minimum level, raised by the official's
    unit policy: the same rule for CAS and SAML as the authorization endpoint applies to OIDC
    clients (idp.authentication_levels)."""
    required = levels.required_for_account(scope.session, browser_session.account, minimum_acr)
    return levels.satisfies(levels.acr_of(browser_session.amr), required)


def level_not_reached_page(scope: RequestScope, client_name: str) -> Response:
    """Signed in just now with every factor the official has, still short of the level: the
    page that says a passkey is needed (as for an OIDC client)."""
    return authorization.passkey_required_page(scope, client_name, None)


def sign_in_error_page(scope: RequestScope, message: str) -> Response:
    """The error page of a protocol request we do not answer to the app (unknown app,
    unregistered return address, a refused request): never a redirect."""
    return scope.runtime.pages.render(
        scope.request,
        "error.html",
        {"title": N_("Sign-in error"), "message": message, "status_code": 400},
        locale=scope.locale(),
        status_code=400,
    )


def submitted_username(raw: str) -> str:
    return CONTROL_CHARACTERS.sub("\ufffd", raw.strip())[: accounts.MAX_USERNAME_LENGTH]


def throttle_attempt(scope: RequestScope, username: str) -> login_throttle.Attempt:
    """This request's attempt at ``username``: its client address (from trusted proxies only)
    and, when the browser signed in to that account before, its device id."""
    runtime = scope.runtime
    return login_throttle.Attempt(
        username=username,
        client_address=scope.http.client_address,
        device=device_cookies.device_for(
            scope.http.cookies.get(device_cookies.cookie_name(runtime.settings)),
            server_secret=runtime.server_secret,
            username=username,
        ),
    )


def _interaction_param(scope: RequestScope) -> str | None:
    source = scope.http.form if scope.http.method == "POST" else scope.http.query
    return dict(source).get("interaction")


def load_interaction(scope: RequestScope) -> tuple[Interaction | None, str | None]:
    handle = _interaction_param(scope)
    interaction = sessions.find_interaction(
        session=scope.session, clock=scope.runtime.clock, handle=handle
    )
    return interaction, handle


def signed_in_session(scope: RequestScope) -> BrowserSession | None:
    """The live SSO session of the request's cookie, if any."""
    return sessions.find_active(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        cookie_value=scope.http.cookies.get(scope.runtime.session_cookie_name),
    )


def is_direct(interaction: Interaction) -> bool:
    """A login for our own account pages (no application): started by ``/login?next=``."""
    return "next" in interaction.params


def direct_login_url(next_path: str) -> str:
    return f"/login?{urlencode({'next': next_path})}"


def _start_direct_login(scope: RequestScope) -> Response | None:
    """A login no application asked for: back to ``?next=`` (one of our own pages), or home
    when ``/login`` was opened by itself. None for a ``next`` we do not go to."""
    next_path = dict(scope.http.query).get("next", DIRECT_LOGIN_HOME)
    if not DIRECT_LOGIN_NEXT.fullmatch(next_path):
        return None
    handle = sessions.start_interaction(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        client_id="",
        params={"items": [], "next": next_path},
    )
    query = {"interaction": handle}
    if "lang" in scope.request.query_params:
        query["lang"] = scope.request.query_params["lang"]
    return RedirectResponse(f"/login?{urlencode(query)}", status_code=303)


def ui_locales_of(interaction: Interaction) -> str | None:
    return dict((str(k), str(v)) for k, v in interaction.params["items"]).get("ui_locales")


def client_name_of(scope: RequestScope, interaction: Interaction) -> str | None:
    if is_direct(interaction):
        return None
    if CLIENT_NAME_KEY in interaction.params:
        return str(interaction.params[CLIENT_NAME_KEY])
    client = scope.runtime.client_cache.lookup(scope.session, interaction.client_id)
    return client.name if client else None


def render_login_form(
    scope: RequestScope,
    handle: str,
    *,
    client_name: str | None,
    ui_locales: str | None,
    username: str = "",
    error: str | None = None,
    status_code: int = 200,
    passkey_required: bool = False,
) -> Response:
    """The sign-in form for the interaction ``handle``; it always posts to ``/login``, also
    when the authorization endpoint answers with it directly. Below it, the passkey button
    (username-less sign-in, idp.web.passkey_login) and one button per upstream provider
    (idp.federation), which continue the same interaction there."""
    locale = scope.locale(ui_locales)
    upstreams = [
        {
            "url": f"/login/upstream/{p.upstream_id}?{urlencode({'interaction': handle})}",
            "name": upstream_providers.display_name(p, locale),
        }
        for p in upstream_providers.login_choices(scope.session)
    ]
    return scope.runtime.pages.render(
        scope.request,
        "login.html",
        {
            "interaction": handle,
            "username": username,
            "error": error,
            "client_name": client_name,
            "upstreams": upstreams,
            "passkeys_available": passkeys.available(scope.runtime.settings),
            "passkey_required": passkey_required,
            "certificate_sign_in": certificate_sign_in.available(
                scope.runtime.settings, scope.runtime.certificate_check
            ),
        },
        locale=locale,
        status_code=status_code,
        remember_locale="lang" in scope.request.query_params,
    )


def render_login(
    scope: RequestScope,
    interaction: Interaction,
    handle: str,
    *,
    username: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render_login_form(
        scope,
        handle,
        client_name=client_name_of(scope, interaction),
        ui_locales=ui_locales_of(interaction),
        username=username,
        error=error,
        status_code=status_code,
        passkey_required=interaction.params.get(REQUIRED_ACR_KEY) == levels.PHISHING_RESISTANT,
    )


def required_acr(scope: RequestScope, interaction: Interaction, account: Account) -> str | None:
    """The level this sign-in must reach: the application's (acr_values, its minimum), raised
    by the official's unit policy."""
    required = interaction.params.get(REQUIRED_ACR_KEY)
    return levels.required_for_account(
        scope.session, account, str(required) if required in levels.LEVELS else None
    )


def show_login(scope: RequestScope) -> Response:
    interaction, handle = load_interaction(scope)
    if interaction is None and _interaction_param(scope) is None:
        started = _start_direct_login(scope)
        if started is not None:
            return started
    if interaction is None or handle is None:
        return authorization.expired_interaction_page(scope)
    hint = dict((str(k), str(v)) for k, v in interaction.params["items"]).get("login_hint", "")
    return render_login(scope, interaction, handle, username=hint[: accounts.MAX_USERNAME_LENGTH])


def submit_login(scope: RequestScope) -> Response:
    """Check the password; same message and same work for an unknown user (PITFALLS)."""
    runtime, session, clock = scope.runtime, scope.session, scope.runtime.clock
    interaction, handle = load_interaction(scope)
    if interaction is None or handle is None:
        return authorization.expired_interaction_page(scope)
    form = dict(scope.http.form)
    username = submitted_username(form.get("username", ""))
    password = form.get("password", "")
    if not username or not password:
        return render_login(
            scope,
            interaction,
            handle,
            username=username,
            error=MISSING_CREDENTIALS,
            status_code=400,
        )
    address = scope.http.client_address
    attempt = throttle_attempt(scope, username)
    state = login_throttle.assess(
        session=session, clock=clock, settings=runtime.settings, attempt=attempt
    )
    if state.locked:
        LOGINS.labels("locked").inc()
        audit.record(
            session,
            clock=clock,
            actor="anonymous",
            action="login.refused_locked",
            target=f"account:{username.lower()}",
            client_address=address,
        )
        return render_login(
            scope, interaction, handle, username=username, error=LOCKED_OUT, status_code=429
        )
    if state.delay_seconds > 0 and not getattr(scope.request.state, "throttle_delay_served", False):
        return ThrottleDelay(state.delay_seconds)
    found = accounts.find_for_sign_in(session, username)
    # Nothing is written yet: end the reading transaction, so the ~20 ms of argon2id below do
    # not keep a pooled connection idle in a transaction; the writes start a new one.
    session.commit()
    check = runtime.passwords.check(password, found.account.password_hash if found else None)
    if found is None or not check.ok or not found.account.is_active:
        LOGINS.labels("failure").inc()
        login_throttle.record_audited_failure(
            session=session,
            clock=clock,
            settings=runtime.settings,
            attempt=attempt,
            actor="anonymous",
            action="login.failure",
            target=f"account:{username.lower()}",
        )
        return render_login(
            scope, interaction, handle, username=username, error=WRONG_CREDENTIALS, status_code=401
        )
    account = found.account
    if check.new_hash:
        accounts.upgrade_password_hash(account=account, new_hash=check.new_hash, clock=clock)
    # The password was right; with a passkey or TOTP the login finishes only after that second
    # factor (a passkey first: it is the stronger one).
    if passkeys.available(runtime.settings) and found.has_passkey:
        return ask_second_factor(
            scope, interaction, handle, account=account, amr=["pwd"], page="/login/passkey"
        )
    if found.has_totp:
        return ask_second_factor(scope, interaction, handle, account=account, amr=["pwd"])
    return finish_login(
        scope,
        interaction,
        handle,
        account=account,
        amr=["pwd"],
        throttle=attempt if state.has_failures else None,
        details={"rehashed": bool(check.new_hash)},
        finish_authorization=True,
    )


def ask_second_factor(
    scope: RequestScope,
    interaction: Interaction,
    handle: str,
    *,
    account: Account,
    amr: list[str],
    page: str = "/login/otp",
    details: dict[str, object] | None = None,
    parked: dict[str, object] | None = None,
) -> Response:
    """The first factor (``amr``: a password, or an upstream sign-in that did no multi-factor)
    is done; the login finishes at ``page`` (our TOTP, or a passkey). What the first factor
    leaves for the end (``details`` for the audit log, ``parked``: the upstream's sign-in for
    its logout) waits in the interaction, for this account only."""
    interaction.mfa_account_id = account.id
    # A new dict: the JSON column sees the change only when the value is replaced.
    interaction.params = {
        **interaction.params,
        FIRST_FACTOR_KEY: {
            "account_id": account.id,
            "amr": amr,
            "details": details or {},
            "upstream": parked,
        },
    }
    LOGINS.labels("second_factor_required").inc()
    audit.record(
        scope.session,
        clock=scope.runtime.clock,
        actor=f"user:{account.username}",
        action="login.second_factor_required",
        target=audit_target(interaction),
        client_address=scope.http.client_address,
        details={"page": page, "amr": amr, **(details or {})},
    )
    return RedirectResponse(f"{page}?{urlencode({'interaction': handle})}", 303)


def _first_factor(interaction: Interaction, account: Account) -> dict[str, Any]:
    """What :func:`ask_second_factor` parked for ``account``; a password's when none."""
    parked = interaction.params.get(FIRST_FACTOR_KEY)
    if isinstance(parked, dict) and parked.get("account_id") == account.id:
        return parked
    return {"amr": ["pwd"], "details": {}, "upstream": None}


def audit_target(interaction: Interaction) -> str:
    if AUDIT_TARGET_KEY in interaction.params:
        return str(interaction.params[AUDIT_TARGET_KEY])
    return "account_pages" if is_direct(interaction) else f"client:{interaction.client_id}"


def finish_login(
    scope: RequestScope,
    interaction: Interaction,
    handle: str,
    *,
    account: Account,
    amr: list[str],
    throttle: login_throttle.Attempt | None,
    details: dict[str, object],
    finish_authorization: bool = False,
) -> Response:
    """Start the SSO session (a new one: no fixation) and go back to the application's
    authorization request, or to the account page a direct login came from.

    ``finish_authorization``: answer the parked authorization request in this same request and
    transaction (the code, or the consent page if the app needs one) instead of a redirect to
    ``/oauth2/authorize/resume``, which would repeat the lookups of the interaction and the
    session in a request of its own. The checks are the same: :func:`authorization.authorize`
    runs on the parked parameters with the session just started."""
    runtime, session, clock = scope.runtime, scope.session, scope.runtime.clock
    if throttle is not None:
        login_throttle.clear_after_success(session=session, attempt=throttle)
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
        amr=amr,
        client_address=scope.http.client_address,
        user_agent=scope.http.header("user-agent"),
    )
    interaction.authenticated_session_id = browser_session.id
    interaction.mfa_account_id = None
    if FIRST_FACTOR_KEY in interaction.params:
        interaction.params = {k: v for k, v in interaction.params.items() if k != FIRST_FACTOR_KEY}
    LOGINS.labels("success").inc()
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}",
        action="login.success",
        target=audit_target(interaction),
        client_address=scope.http.client_address,
        details={"sid": browser_session.sid, "amr": amr, **details},
    )
    response: Response
    if is_direct(interaction):
        interaction.completed_at = clock.now()
        response = RedirectResponse(str(interaction.params["next"]), status_code=303)
    elif RESUME_KEY in interaction.params:
        location = f"{interaction.params[RESUME_KEY]}?{urlencode({'interaction': handle})}"
        response = RedirectResponse(location, status_code=303)
    elif finish_authorization:
        items = [(str(k), str(v)) for k, v in interaction.params["items"]]
        response = authorization.authorize(
            scope, items=items, interaction=interaction, signed_in=browser_session
        )
        if response.status_code == 302:
            # The answer to a POST that carried the password: 303, so the browser follows it
            # with a GET and never re-posts the form (RFC 9700 §4.12).
            response.status_code = 303
    else:
        location = f"/oauth2/authorize/resume?{urlencode({'interaction': handle})}"
        response = RedirectResponse(location, status_code=303)
    set_session_cookie(scope, response, cookie_value)
    set_device_cookie(scope, response, account)
    return response


def set_device_cookie(scope: RequestScope, response: Response, account: Account) -> None:
    """This browser signed in to ``account``: from now on its failures there have a budget
    of their own (idp.device_cookies)."""
    settings = scope.runtime.settings
    name = device_cookies.cookie_name(settings)
    response.set_cookie(
        name,
        device_cookies.remembered(
            scope.http.cookies.get(name),
            server_secret=scope.runtime.server_secret,
            username=account.username,
        ),
        max_age=settings.device_cookie_days * 86400,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.issuer_is_https,
    )


def set_session_cookie(scope: RequestScope, response: Response, cookie_value: str) -> None:
    runtime = scope.runtime
    response.set_cookie(
        runtime.session_cookie_name,
        cookie_value,
        max_age=runtime.settings.session_ttl,
        path="/",
        httponly=True,
        samesite="lax",
        secure=runtime.settings.issuer_is_https,
    )


def second_factor_account(
    scope: RequestScope,
) -> tuple[Interaction | None, str | None, Account | None]:
    interaction, handle = load_interaction(scope)
    if interaction is None or interaction.mfa_account_id is None:
        return interaction, handle, None
    account = scope.session.get(Account, interaction.mfa_account_id)
    return interaction, handle, account if account is not None and account.is_active else None


def _render_second_factor(
    scope: RequestScope,
    interaction: Interaction,
    handle: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return scope.runtime.pages.render(
        scope.request,
        "account/login_otp.html",
        {"interaction": handle, "error": error, "client_name": client_name_of(scope, interaction)},
        locale=scope.locale(ui_locales_of(interaction)),
        status_code=status_code,
        remember_locale="lang" in scope.request.query_params,
    )


def show_second_factor(scope: RequestScope) -> Response:
    interaction, handle, account = second_factor_account(scope)
    if interaction is None or handle is None or account is None:
        return authorization.expired_interaction_page(scope)
    return _render_second_factor(scope, interaction, handle)


def submit_second_factor(scope: RequestScope) -> Response:
    """The TOTP code (RFC 6238) or, once each, a recovery code; throttled like the password."""
    runtime, session, clock = scope.runtime, scope.session, scope.runtime.clock
    interaction, handle, account = second_factor_account(scope)
    if interaction is None or handle is None or account is None:
        return authorization.expired_interaction_page(scope)
    code = dict(scope.http.form).get("code", "").strip()[:64]
    if not code:
        return _render_second_factor(
            scope, interaction, handle, error=MISSING_SECOND_FACTOR, status_code=400
        )
    attempt = throttle_attempt(scope, account.username)
    state = login_throttle.assess(
        session=session, clock=clock, settings=runtime.settings, attempt=attempt
    )
    if state.locked:
        LOGINS.labels("locked").inc()
        return _render_second_factor(scope, interaction, handle, error=LOCKED_OUT, status_code=429)
    if state.delay_seconds > 0 and not getattr(scope.request.state, "throttle_delay_served", False):
        return ThrottleDelay(state.delay_seconds)
    method = "otp"
    outcome = mfa.verify_totp(
        session=session,
        clock=clock,
        server_secret=runtime.server_secret,
        account=account,
        code=code,
    )
    accepted = outcome is mfa.TotpOutcome.ACCEPTED
    if outcome is mfa.TotpOutcome.WRONG and mfa.looks_like_recovery_code(code):
        method = "recovery_code"
        accepted = mfa.use_recovery_code(session=session, clock=clock, account=account, code=code)
    if not accepted:
        replayed = outcome is mfa.TotpOutcome.REPLAYED
        LOGINS.labels("second_factor_failure").inc()
        # A replay still counts against the throttle: it proves nothing new.
        login_throttle.record_audited_failure(
            session=session,
            clock=clock,
            settings=runtime.settings,
            attempt=attempt,
            actor=f"user:{account.username}",
            action="login.second_factor_replayed" if replayed else "login.second_factor_failure",
            target=audit_target(interaction),
        )
        return _render_second_factor(
            scope,
            interaction,
            handle,
            error=REPLAYED_SECOND_FACTOR if replayed else WRONG_SECOND_FACTOR,
            status_code=401,
        )
    first_factor = _first_factor(interaction, account)
    response = finish_login(
        scope,
        interaction,
        handle,
        account=account,
        # RFC 8176: "otp" for a one-time password, which a recovery code also is.
        amr=[*first_factor["amr"], "otp"],
        throttle=attempt if state.has_failures else None,
        details={**first_factor["details"], "second_factor": method},
    )
    if first_factor["upstream"] is not None and interaction.authenticated_session_id is not None:
        upstream_logout.remember_parked(
            session=session,
            clock=clock,
            server_secret=runtime.server_secret,
            interaction_id=interaction.id,
            parked=first_factor["upstream"],
            browser_session_id=interaction.authenticated_session_id,
        )
    return response


def show_consent(scope: RequestScope) -> Response:
    interaction, handle = load_interaction(scope)
    if interaction is None or handle is None:
        return authorization.expired_interaction_page(scope)
    browser_session = sessions.find_active(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        cookie_value=scope.http.cookies.get(scope.runtime.session_cookie_name),
    )
    if browser_session is None:
        return authorization.expired_interaction_page(scope)
    params = dict((str(k), str(v)) for k, v in interaction.params["items"])
    return scope.runtime.pages.render(
        scope.request,
        "consent.html",
        {
            "interaction": handle,
            "client_name": client_name_of(scope, interaction),
            "scopes": params.get("scope", "").split(),
            "user_name": browser_session.account.full_name,
        },
        locale=scope.locale(params.get("ui_locales")),
        remember_locale="lang" in scope.request.query_params,
    )


def submit_consent(scope: RequestScope) -> Response:
    runtime, session, clock = scope.runtime, scope.session, scope.runtime.clock
    interaction, handle = load_interaction(scope)
    browser_session = sessions.find_active(
        session=session,
        clock=clock,
        settings=runtime.settings,
        cookie_value=scope.http.cookies.get(runtime.session_cookie_name),
    )
    client = find_client(session, interaction.client_id) if interaction else None
    if interaction is None or handle is None or browser_session is None or client is None:
        return authorization.expired_interaction_page(scope)
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


async def run_throttled(request: Request, handler: Callable[[RequestScope], Response]) -> Response:
    """Run ``handler``; if it asks for a throttle delay, wait here and run it again."""
    response = await run_in_request_scope(request, handler)
    if isinstance(response, ThrottleDelay):
        # Awaited here, not slept in the worker thread, which would hold a database
        # connection; then the attempt runs again, this time past the delay.
        await asyncio.sleep(response.delay_seconds)
        request.state.throttle_delay_served = True
        response = await run_in_request_scope(request, handler)
    return response


async def login_submit(request: Request) -> Response:
    runtime = request.app.state.idp
    form = await request.form()
    token = form.get("csrf_token")
    runtime.csrf.verify(request, token if isinstance(token, str) else None)
    return await run_throttled(request, submit_login)


async def second_factor_page(request: Request) -> Response:
    return await run_in_request_scope(request, show_second_factor)


async def second_factor_submit(request: Request) -> Response:
    form = await request.form()
    token = form.get("csrf_token")
    request.app.state.idp.csrf.verify(request, token if isinstance(token, str) else None)
    return await run_throttled(request, submit_second_factor)


async def consent_page(request: Request) -> Response:
    return await run_in_request_scope(request, show_consent)


async def consent_submit(request: Request) -> Response:
    return await _csrf_checked(request, submit_consent)
