"""Composition root: builds the ASGI app from settings (CONVENTIONS §5)."""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

import core
import idp
from commune_sso import secrets_setup
from core import audit
from core.clock import Clock, SystemClock
from core.db import make_engine, make_session_factory
from core.errors import DomainError
from core.settings import Settings
from core.web.csrf import CsrfError, CsrfProtection
from core.web.i18n import N_, load_translations, negotiate_locale
from core.web.templating import PageRenderer
from idp.passwords import PasswordHasher
from idp.router import idp_routes
from idp.runtime import IdpRuntime
from keys.keyring import KeyRing

log = logging.getLogger("commune_sso")

CORE_WEB = Path(core.__file__).parent / "web"
IDP_DIR = Path(idp.__file__).parent


def build_runtime(settings: Settings, clock: Clock | None = None) -> IdpRuntime:
    clock = clock or SystemClock()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)
    session_factory = make_session_factory(engine)
    audit.install(session_factory)
    keyring = KeyRing.load_or_create(
        settings.resolved_key_dir, secrets_setup.key_passphrase(settings), now=clock.now()
    )
    csrf = CsrfProtection(
        secrets_setup.server_secret(settings), secure_cookies=settings.issuer_is_https
    )
    translations = load_translations([CORE_WEB / "locale", IDP_DIR / "locale"])
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
) -> Starlette:
    settings = settings or Settings()
    runtime = runtime or build_runtime(settings, clock)

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
            Mount("/static", StaticFiles(directory=CORE_WEB / "static"), name="static"),
        ],
        exception_handlers={
            DomainError: domain_error,
            HTTPException: http_error,
            Exception: unexpected_error,
        },
    )
    app.state.idp = runtime
    app.state.settings = settings
    return app
