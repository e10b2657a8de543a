"""Composition root: builds the ASGI app from settings (CONVENTIONS §5)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
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
from commune_sso import ca_lifecycle_feed, secrets_setup
from commune_sso.ca_bridge import build_ca_runtime
from commune_sso.observability import install_observability
from core import audit, audit_checkpoints
from core.clock import Clock, SystemClock
from core.db import make_engine, make_session_factory
from core.errors import DomainError
from core.settings import Settings
from core.web.csrf import CsrfError, CsrfProtection
from core.web.i18n import N_, load_translations, negotiate_locale
from core.web.templating import PageRenderer
from idp.logout import worker as logout_worker
from idp.passwords import PasswordHasher
from idp.router import idp_routes
from idp.runtime import IdpRuntime
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
    )
    return IdpRuntime(
        settings=settings,
        clock=clock,
        session_factory=session_factory,
        keyring_on_disk=keyring,
        passwords=PasswordHasher(settings),
        pages=pages,
        csrf=csrf,
        server_secret=server_secret,
    )


def _locale(request: Request) -> str:
    return negotiate_locale(
        ui_locales=None,
        query_lang=request.query_params.get("lang"),
        cookie_lang=request.cookies.get("lang"),
    )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


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
        if isinstance(exc, CsrfError) or _wants_html(request):
            title = N_("Form expired") if isinstance(exc, CsrfError) else N_("Access denied")
            return runtime.pages.render(
                request,
                "error.html",
                {"title": title, "message": exc.message, "status_code": exc.status_code},
                locale=_locale(request),
                status_code=exc.status_code,
            )
        return JSONResponse(
            {"error": exc.code, "message": exc.message}, status_code=exc.status_code
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404 and _wants_html(request):
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
        return JSONResponse(
            {"error": error, "error_description": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        # The cause goes to the log; the caller sees no stack trace (CONVENTIONS §3).
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        if _wants_html(request):
            return runtime.pages.render(
                request,
                "error.html",
                {
                    "title": N_("Something went wrong"),
                    "message": N_("Please try again later."),
                    "status_code": 500,
                },
                locale=_locale(request),
                status_code=500,
            )
        return JSONResponse({"error": "server_error"}, status_code=500)

    app = Starlette(
        routes=[
            *idp_routes(),
            *ca_routes(),
            Mount("/static", StaticFiles(directory=CORE_WEB / "static"), name="static"),
        ],
        exception_handlers={
            DomainError: domain_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
        lifespan=background_tasks(settings, runtime, ca_runtime),
    )
    app.state.idp = runtime
    app.state.ca = ca_runtime
    app.state.settings = settings
    install_observability(app, settings=settings, runtime=runtime, ca_runtime=ca_runtime)
    return app


# --------------------------------------------------------------------------------------------
# Background tasks of the serving process (started and stopped by the app's lifespan)


def audit_key_uri(settings: Settings) -> str:
    """The audit checkpoint key's URI; unset: ``file:<var_dir>/keys/audit-key.pem``."""
    default = (settings.var_dir / "keys" / "audit-key.pem").absolute()
    return settings.audit_key_uri or f"file:{default}"


def load_audit_key(settings: Settings) -> SigningKey:
    """The key that signs audit checkpoints, generated on first use (encrypted PKCS#8 file)."""
    uri = audit_key_uri(settings)
    if settings.audit_key_uri is None:
        (settings.var_dir / "keys").mkdir(mode=0o700, parents=True, exist_ok=True)
    return load_or_generate_signing_key(
        uri,
        algorithm=settings.audit_key_algorithm,
        passphrase=secrets_setup.key_passphrase(settings).decode("utf-8"),
    )


def background_tasks(
    settings: Settings, runtime: IdpRuntime, ca_runtime: CaRuntime | None = None
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """The app's lifespan: start the background tasks, stop them on shutdown."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
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
        if ca_runtime is not None:  # disabled/deleted/moved officials -> their certificates
            tasks.append(ca_lifecycle_feed.start(ca_runtime))
            tasks.append(ca_maintenance.start(ca_runtime))  # CRLs before nextUpdate, OCSP signers
        try:
            yield
        finally:
            await logout_worker.stop(_app)
            for task in tasks:
                await audit_checkpoints.stop_periodic_checkpoints(task)

    return lifespan
