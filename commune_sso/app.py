"""Composition root: builds the ASGI app from settings (CONVENTIONS §5)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

import ca_admin
import core
import idp
from ca_admin import maintenance as ca_maintenance
from ca_admin.runtime import CaRuntime
from ca_admin.web import ca_routes
from ca_admin.web.api import accept_language
from ca_admin.web.tsa_route import tsa_routes
from commune_sso import bootstrap, ca_lifecycle_feed, secrets_setup
from commune_sso.ca_bridge import build_ca_runtime, presented_certificate_verdict
from commune_sso.input_guard import HostileInputGuard
from commune_sso.observability import install_observability
from commune_sso.page_labels import page_labels
from commune_sso.routes_before_router import RoutesBeforeRouter
from commune_sso.server_errors import (
    JSON_API_PREFIXES,
    SCIM_PREFIX,
    ServerErrorBoundary,
    error_in_callers_format,
    under,
    wants_html,
)
from commune_sso.site_areas import SITE_AREAS
from core import audit, audit_checkpoints
from core.clock import Clock, SystemClock
from core.db import is_database_unavailable, make_engine, make_session_factory, transaction
from core.errors import ConfigurationError, DomainError
from core.settings import Settings
from core.web.csrf import CsrfError, CsrfProtection
from core.web.i18n import N_, load_translations, negotiate_locale
from core.web.language_cookie import RememberChosenLanguage
from core.web.templating import PageRenderer
from idp import live_officials
from idp.logout import worker as logout_worker
from idp.passwords import PasswordHasher
from idp.router import idp_routes, prebuilt_answers
from idp.runtime import IdpRuntime
from idp.token_state import install_commit_hook
from keys.errors import SigningKeyError
from keys.keyring import KeyRing
from keys.signing_keys import SigningKey, load_or_generate_signing_key

log = logging.getLogger("commune_sso")

CORE_WEB = Path(core.__file__).parent / "web"
IDP_DIR = Path(idp.__file__).parent
CA_DIR = Path(ca_admin.__file__).parent


def build_runtime(settings: Settings, clock: Clock | None = None) -> IdpRuntime:
    clock = clock or SystemClock()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)
    session_factory = make_session_factory(engine)
    audit.install(session_factory)
    keyring = KeyRing.load_or_create(
        settings.resolved_key_dir, secrets_setup.key_passphrase(settings), now=clock.now()
    )
    server_secret = secrets_setup.server_secret(settings)
    csrf = CsrfProtection(server_secret, secure_cookies=settings.issuer_is_https)
    translations = load_translations([CORE_WEB / "locale", IDP_DIR / "locale", CA_DIR / "locale"])
    pages = PageRenderer(
        template_dirs=[IDP_DIR / "templates", CORE_WEB / "templates"],
        translations=translations,
        csrf=csrf,
        organisation_names=settings.organisation_names,
        areas=SITE_AREAS,
        code_labels=page_labels(),
    )
    runtime = IdpRuntime(
        settings=settings,
        clock=clock,
        session_factory=session_factory,
        keyring_on_disk=keyring,
        passwords=PasswordHasher(settings),
        pages=pages,
        csrf=csrf,
        server_secret=server_secret,
    )
    # A revocation committed by this process reaches its token cache before the answer.
    install_commit_hook(session_factory, runtime.token_state)
    return runtime


def _locale(request: Request) -> str:
    return negotiate_locale(
        ui_locales=None,
        query_lang=request.query_params.get("lang"),
        cookie_lang=request.cookies.get("lang"),
    )


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    runtime: IdpRuntime | None = None,
    ca_runtime: CaRuntime | None = None,
) -> Starlette:
    settings = settings or Settings()
    runtime = runtime or build_runtime(settings, clock)
    ca_runtime = ca_runtime or build_ca_runtime(settings, runtime)

    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        if isinstance(exc, CsrfError) or wants_html(request):
            title = N_("Form expired") if isinstance(exc, CsrfError) else N_("Access denied")
            return runtime.pages.render(
                request,
                "error.html",
                {
                    "title": title,
                    "message_text": runtime.pages.refusal_text(_locale(request), exc),
                    "status_code": exc.status_code,
                },
                locale=_locale(request),
                status_code=exc.status_code,
            )
        return JSONResponse({"error": exc.code, "message": exc.text()}, status_code=exc.status_code)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404 and wants_html(request):
            return runtime.pages.render(
                request,
                "error.html",
                {
                    "title": N_("Page not found"),
                    "message": N_("Please try again later."),
                    "status_code": 404,
                },
                locale=_locale(request),
                status_code=404,
            )
        error = "invalid_request" if exc.status_code < 500 else "server_error"
        path = request.url.path
        if under(path, SCIM_PREFIX) or any(under(path, api) for api in JSON_API_PREFIXES):
            # A path no route matches under an API (/admin/api/v1/imports//0): the API's own
            # error format, as its routes answer.
            return error_in_callers_format(
                request,
                status=exc.status_code,
                oauth_error=error,
                detail=str(exc.detail),
                page=(N_("Page not found"), N_("Please try again later.")),
                headers=dict(getattr(exc, "headers", None) or {}),
                render_page=error_page,
            )
        return JSONResponse(
            {"error": error, "error_description": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    def error_page(request: Request, title: str, message: str, status_code: int) -> Response:
        return runtime.pages.render(
            request,
            "error.html",
            {"title": title, "message": message, "status_code": status_code},
            locale=_locale(request),
            status_code=status_code,
        )

    def api_text(request: Request, message: str) -> str:
        return runtime.pages.gettext(
            accept_language(request.headers.get("accept-language")), message
        )

    app = Starlette(
        routes=[
            *idp_routes(),
            *ca_routes(),
            Mount("/static", StaticFiles(directory=CORE_WEB / "static"), name="static"),
        ],
        exception_handlers={
            DomainError: domain_error,
            HTTPException: http_error,
        },
        # Not an ``Exception`` handler: Starlette re-raises after it, and uvicorn then resets
        # the connection (commune_sso/server_errors.py).
        middleware=[
            Middleware(
                ServerErrorBoundary,
                render_page=error_page,
                retry_after=lambda: settings.unavailable_retry_after,
            ),
            # After the boundary, before any route: NUL and non-UTF-8 in paths, queries and
            # headers get a 400 in the endpoint's format (commune_sso/input_guard.py).
            Middleware(HostileInputGuard, render_page=error_page, translate_api=api_text),
            # ?lang= sets the lang cookie on every answer, so the choice survives redirects.
            Middleware(RememberChosenLanguage, secure_cookies=settings.issuer_is_https),
            # Innermost: POST /tsa without the router's walk over every route before it.
            Middleware(RoutesBeforeRouter, routes=tsa_routes()),
        ],
        lifespan=background_tasks(settings, runtime, ca_runtime),
    )
    # The admin dashboard's checklist learns the CA's state through the composition root.
    runtime.setup_state = bootstrap.setup_state(settings)
    # Certificate sign-in asks the CA about a presented certificate (idp never imports ca_admin).
    runtime.certificate_check = presented_certificate_verdict
    app.state.idp = runtime
    app.state.ca = ca_runtime
    app.state.settings = settings
    install_observability(
        app,
        settings=settings,
        runtime=runtime,
        ca_runtime=ca_runtime,
        fast_lane=prebuilt_answers(),
    )
    return app


# --------------------------------------------------------------------------------------------
# Background tasks of the serving process (started and stopped by the app's lifespan)


def audit_key_uri(settings: Settings) -> str:
    """The audit checkpoint key's URI; unset: ``file:<key dir>/audit-key.pem``.

    In the key ring directory, so that it travels with the ring every host shares: hosts with
    audit keys of their own would sign one chain with several keys. A key at the earlier
    default, ``<var_dir>/keys/audit-key.pem``, is still used where it exists (the same path
    unless COMMUNE_SSO_KEY_DIR is set).
    """
    if settings.audit_key_uri:
        return settings.audit_key_uri
    default = (settings.resolved_key_dir / AUDIT_KEY_FILE).absolute()
    earlier = (settings.var_dir / "keys" / AUDIT_KEY_FILE).absolute()
    return f"file:{earlier if not default.exists() and earlier.exists() else default}"


AUDIT_KEY_FILE = "audit-key.pem"


def load_audit_key(settings: Settings) -> SigningKey:
    """The key that signs audit checkpoints, generated on first use (encrypted PKCS#8 file)."""
    uri = audit_key_uri(settings)
    passphrase = secrets_setup.key_passphrase(settings).decode("utf-8")
    if settings.audit_key_uri is None:
        path = Path(uri.removeprefix("file:"))
        existed = path.exists()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            return load_or_generate_signing_key(
                uri, algorithm=settings.audit_key_algorithm, passphrase=passphrase
            )
        except (OSError, SigningKeyError) as error:
            if existed:
                raise
            # A read-only key ring directory (a host that does not rotate keys) on which the
            # writing host has not made the audit key yet.
            cause = error.strerror if isinstance(error, OSError) else str(error)
            raise ConfigurationError(
                f"cannot create the audit key {path} ({cause}): start the host that writes "
                "the key ring first, or set COMMUNE_SSO_AUDIT_KEY_URI"
            ) from error
    return load_or_generate_signing_key(
        uri, algorithm=settings.audit_key_algorithm, passphrase=passphrase
    )


def check_audit_key(settings: Settings, session_factory: sessionmaker[Session]) -> None:
    """Refuse to serve with an audit key other than the one that signed the chain's latest
    checkpoint (or one of COMMUNE_SSO_AUDIT_TRUSTED_PUBLIC_KEYS): several hosts with keys of
    their own would sign one chain with several keys, and `audit verify` would fail.

    Raises :class:`ConfigurationError` naming the setting to change.
    """
    key = load_audit_key(settings)
    with transaction(session_factory) as session:
        latest = audit_checkpoints.latest_checkpoint(session)
    if latest is None:
        return
    mine = audit_checkpoints.key_fingerprint(key.public_key())
    if latest.key_fingerprint == mine:
        return
    trusted: set[str] = set()
    for pem in settings.audit_trusted_public_keys:
        try:
            public = audit_checkpoints.load_public_key_pem(pem.read_bytes())
        except (OSError, ValueError) as error:
            raise ConfigurationError(
                f"cannot use trusted audit key {pem} (COMMUNE_SSO_AUDIT_TRUSTED_PUBLIC_KEYS): "
                f"{error}"
            ) from error
        trusted.add(audit_checkpoints.key_fingerprint(public))
    if latest.key_fingerprint in trusted:
        return
    raise ConfigurationError(
        f"audit key {audit_key_uri(settings)} (SHA-256 {mine[:16]}) did not sign the audit "
        f"log's latest checkpoint #{latest.number} (key {latest.key_fingerprint[:16]}): give "
        "every host the same audit key (COMMUNE_SSO_AUDIT_KEY_URI), or list the earlier key "
        "in COMMUNE_SSO_AUDIT_TRUSTED_PUBLIC_KEYS after replacing it"
    )


def prepare_at_start(settings: Settings, runtime: IdpRuntime, ca_runtime: CaRuntime | None) -> None:
    """Units and, for the quick start, the CA before the first request (bootstrap.py).

    A failure is logged, not raised: the IdP serves without them (imports then refuse rows
    naming an unknown unit), /readyz reports a database that is down, and the next start
    tries again.
    """
    try:
        bootstrap.prepare_at_start(
            settings, runtime.session_factory, clock=runtime.clock, ca_runtime=ca_runtime
        )
    except Exception as error:
        if is_database_unavailable(error):
            log.warning("start-up data not prepared, the database is unavailable: %s", error)
        else:
            log.exception("start-up data not prepared")


def background_tasks(
    settings: Settings, runtime: IdpRuntime, ca_runtime: CaRuntime | None = None
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """The app's lifespan: start the background tasks, stop them on shutdown."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(prepare_at_start, settings, runtime, ca_runtime)
        tasks: list[asyncio.Task[None]] = []
        if settings.audit_checkpoint_interval > 0:
            tasks.append(
                audit_checkpoints.start_periodic_checkpoints(
                    session_factory=runtime.session_factory,
                    clock=runtime.clock,
                    load_key=lambda: load_audit_key(settings),
                    interval=settings.audit_checkpoint_interval,
                )
            )
        logout_worker.start(_app)  # back-channel logout deliveries (idp/logout/worker.py)
        # Revocations from every worker and host, for userinfo/introspection (issue 15).
        runtime.token_state.start()
        tasks.append(live_officials.start_folding(runtime.session_factory))
        if ca_runtime is not None:  # disabled/deleted/moved officials -> their certificates
            tasks.append(ca_lifecycle_feed.start(ca_runtime))
            tasks.append(ca_maintenance.start(ca_runtime))  # CRLs before nextUpdate, OCSP signers
        try:
            yield
        finally:
            await asyncio.to_thread(runtime.token_state.stop)
            await logout_worker.stop(_app)
            for task in tasks:
                await audit_checkpoints.stop_periodic_checkpoints(task)

    return lifespan
