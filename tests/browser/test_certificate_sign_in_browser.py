"""Certificate sign-in in headless Chromium through a real nginx that asks for a client
certificate (``ssl_verify_client optional_no_ca``, as the README configures it): the browser
context holds the official's certificate and key from our CA (Playwright's
``client_certificates``: the TLS handshake with nginx presents them), the official clicks
"Đăng nhập bằng chứng thư số" and lands signed in. Screenshots at desktop and phone width."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, Page, expect
from starlette.applications import Starlette

from core.settings import Settings
from tests.browser.conftest import DESKTOP, SCREENSHOTS, save_screenshots
from tests.browser_support import serve
from tests.commune_sso.our_ca import hierarchy, our_ca_fixture, people  # noqa: F401 (fixtures)
from tests.operations.deployment import free_port, nginx_binary
from tests.operations.tls_proxy import CERTIFICATE_HEADER, TlsProxy, tls_proxy, write_pem_pair

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")


@pytest.fixture(name="public_port")
def public_port_fixture() -> int:
    return free_port()


@pytest.fixture
def settings(settings: Settings, public_port: int) -> Settings:
    return Settings(
        **{
            **settings.model_dump(),
            "issuer": f"https://127.0.0.1:{public_port}",
            "trusted_proxies": "127.0.0.1",
            "client_certificate_header": CERTIFICATE_HEADER,
        }
    )


@pytest.fixture
def proxied_provider(
    app: Starlette, idp_socket: socket.socket, public_port: int, tmp_path: Path
) -> Iterator[TlsProxy]:
    upstream = "{}:{}".format(*idp_socket.getsockname())
    with (
        serve(app, idp_socket, name="idp"),
        tls_proxy(tmp_path / "nginx", port=public_port, upstream=upstream) as proxy,
    ):
        yield proxy


def test_an_official_signs_in_with_a_certificate_in_the_browser(
    chromium: Browser, proxied_provider: TlsProxy, ca, tmp_path: Path, request
):
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = ca.issue(key=key)
    cert_path, key_path = write_pem_pair(tmp_path, "official", certificate, key)
    context = chromium.new_context(
        viewport=DESKTOP,
        locale="vi-VN",
        ignore_https_errors=True,  # nginx's throwaway server certificate
        client_certificates=[
            {"origin": proxied_provider.url, "certPath": str(cert_path), "keyPath": str(key_path)}
        ],
    )
    context.set_default_timeout(10_000)
    page: Page = context.new_page()
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")

    def shoot(step: str) -> None:
        save_screenshots(page, SCREENSHOTS / f"{test_name}-{step}")

    try:
        page.goto(f"{proxied_provider.url}/account")
        button = page.get_by_role("button", name="Đăng nhập bằng chứng thư số")
        expect(button).to_be_visible()
        shoot("login")
        button.click()
        page.wait_for_url(re.compile(r"/account$"))
        expect(page.get_by_text(ca.people.official.full_name).first).to_be_visible()
        shoot("signed-in")
    finally:
        context.close()
