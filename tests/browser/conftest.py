"""End-to-end tests in headless Chromium (the Debian package, driven by Playwright; no
browser download). The provider runs under uvicorn on a loopback port with its lifespan (so
the back-channel logout delivery worker runs), on SQLite, with the real clock; demo shared
apps (examples/shared_app) run on other ports. Every test saves screenshots at desktop and
phone width under test-artifacts/screenshots/."""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from starlette.applications import Starlette

from ca_admin.runtime import CaRuntime
from core.clock import SystemClock
from core.db import transaction
from core.settings import Settings
from idp.cas import services as cas_services
from idp.runtime import IdpRuntime
from idp.saml import service_providers as saml_service_providers
from tests.browser_support import (
    SharedApp,
    bind_loopback,
    run_shared_app,
    run_shared_cas_app,
    run_shared_saml_app,
    serve,
)
from tests.conftest import register_client
from tests.idp.cas.cas_flow import place_at_work
from tests.idp.live_server import issuer_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: the browser tests are about pages and HTTP, the backends are covered by the
    other tests."""
    path = tmp_path / "commune-sso.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def clock() -> SystemClock:  # type: ignore[override]
    return SystemClock()


@pytest.fixture
def idp_socket() -> Iterator[socket.socket]:
    sock = bind_loopback()
    yield sock
    sock.close()


@pytest.fixture
def settings(settings: Settings, idp_socket: socket.socket) -> Settings:
    return Settings(**{**settings.model_dump(), "issuer": issuer_for(idp_socket)})


@pytest.fixture
def provider(app: Starlette, settings: Settings, idp_socket: socket.socket) -> Iterator[str]:
    """The issuer URL of the provider, running."""
    with serve(app, idp_socket, name="idp"):
        yield settings.issuer


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    """The CA of the running app (the CA pages' tests seed it)."""
    runtime: CaRuntime = app.state.ca
    return runtime


StartApps = Callable[..., tuple[SharedApp, SharedApp]]
StartApp = Callable[..., SharedApp]


@pytest.fixture
def start_oidc_app(runtime, provider: str, official) -> Iterator[StartApp]:
    """``start_oidc_app(label, logout)``: a demo shared app registered at the provider (and
    the official who signs in to it). ``logout`` says how it hears of a logout:
    "backchannel", "frontchannel", or "stuck" (a back-channel receiver that never answers)."""
    with ExitStack() as stack:

        def start(label: str, logout_mode: str = "backchannel") -> SharedApp:
            sock = bind_loopback()
            stack.callback(sock.close)
            base = f"http://127.0.0.1:{sock.getsockname()[1]}"
            logout: dict[str, object] = {}
            if logout_mode == "backchannel":
                logout["backchannel_logout_uri"] = f"{base}/backchannel-logout"
            elif logout_mode == "frontchannel":
                logout["frontchannel_logout_uri"] = f"{base}/frontchannel-logout"
            elif logout_mode == "stuck":
                # Listens (the kernel accepts the connection) but never answers: the
                # provider's request waits for its full timeout.
                stuck = socket.socket()
                stuck.bind(("127.0.0.1", 0))
                stuck.listen(8)
                stack.callback(stuck.close)
                stuck_port = stuck.getsockname()[1]
                logout["backchannel_logout_uri"] = f"http://127.0.0.1:{stuck_port}/bcl"
            name = f"Ứng dụng {label}"
            client, secret = register_client(
                runtime,
                name=name,
                redirect_uris=[f"{base}/auth/callback"],
                post_logout_redirect_uris=[f"{base}/logged-out"],
                scope="openid profile email",
                **logout,
            )
            assert secret is not None
            return stack.enter_context(
                run_shared_app(
                    issuer=provider,
                    client_id=client.client_id,
                    client_secret=secret,
                    sock=sock,
                    name=name,
                )
            )

        yield start


@pytest.fixture
def shared_apps(start_oidc_app: StartApp) -> StartApps:
    """Start two demo shared apps, A and B. A uses back-channel logout; ``b_logout`` says how
    B hears of a logout (see ``start_oidc_app``)."""

    def start(*, b_logout: str = "backchannel") -> tuple[SharedApp, SharedApp]:
        return start_oidc_app("A", "backchannel"), start_oidc_app("B", b_logout)

    return start


CAS_SERVICE_PATH = "/cas/callback"
ALL_ATTRIBUTES = ["name", "email", "unit", "province", "agency", "position"]


@pytest.fixture
def official_at_work(runtime: IdpRuntime, official):
    """The official placed in a ward, so that every attribute group has a value."""
    place_at_work(runtime, official)
    return official


@pytest.fixture
def cas_app(runtime: IdpRuntime, provider: str, official_at_work) -> Iterator[SharedApp]:
    """The CAS demo app, registered by its exact service URL with every attribute group."""
    with ExitStack() as stack:
        sock = bind_loopback()
        stack.callback(sock.close)
        service_url = f"http://127.0.0.1:{sock.getsockname()[1]}{CAS_SERVICE_PATH}"
        with transaction(runtime.session_factory) as session:
            cas_services.register(
                session=session,
                clock=runtime.clock,
                actor="test",
                service_id="demo-cas",
                name="Quản lý văn bản (CAS)",
                url=service_url,
                attributes=ALL_ATTRIBUTES,
            )
        yield stack.enter_context(
            run_shared_cas_app(
                cas_url=f"{provider}/cas/",
                service_path=CAS_SERVICE_PATH,
                sock=sock,
                name="Quản lý văn bản (CAS)",
            )
        )


@pytest.fixture
def start_saml_app(
    runtime: IdpRuntime, provider: str, official_at_work, tmp_path: Path
) -> Iterator[StartApp]:
    """``start_saml_app(encrypt_assertions=False)``: the SAML demo app running, registered
    from its own metadata URL (as ``commune-sso saml add-sp --metadata <URL>`` does) with
    every attribute group."""
    with ExitStack() as stack:

        def start(*, encrypt_assertions: bool = False) -> SharedApp:
            sock = bind_loopback()
            stack.callback(sock.close)
            app = stack.enter_context(
                run_shared_saml_app(
                    idp_metadata_url=f"{provider}/saml/metadata",
                    key_dir=tmp_path / f"saml-app-{sock.getsockname()[1]}",
                    sock=sock,
                    name="Một cửa điện tử (SAML)",
                )
            )
            metadata = httpx.get(app.url("/saml/metadata"), timeout=10.0)
            metadata.raise_for_status()
            with transaction(runtime.session_factory) as session:
                saml_service_providers.register(
                    session=session,
                    clock=runtime.clock,
                    actor="test",
                    metadata_xml=metadata.content,
                    attributes=ALL_ATTRIBUTES,
                    encrypt_assertions=encrypt_assertions,
                )
            return app

        yield start


@pytest.fixture
def saml_app(start_saml_app: StartApp) -> SharedApp:
    return start_saml_app()


# Module scope, not session: Playwright's sync API runs an event loop in the main thread
# while it is open, and every later test that calls asyncio.run() (pyHanko, the CLI's
# servers) would fail with "cannot be called from a running event loop".
@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright_driver: Playwright) -> Iterator[Browser]:
    browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport=DESKTOP, locale="vi-VN")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def save_screenshots(page: Page, stem: Path) -> None:
    """Full-page screenshots of the current page at desktop and phone width, as
    ``<stem>-1280.png`` and ``<stem>-375.png``; the page is left at desktop width."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        path = stem.with_name(f"{stem.name}-{size['width']}.png")
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 0
    page.set_viewport_size(DESKTOP)


@pytest.fixture
def shoot(page: Page, request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``shoot("step")``: screenshots of the current page at desktop and phone width."""
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    return lambda step: save_screenshots(page, SCREENSHOTS / f"{test_name}-{step}")
