"""Certificate sign-in through a real nginx that terminates TLS and asks for a client
certificate (a real TLS handshake with the official's key), configured as the README says."""

from __future__ import annotations

import html
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from core.settings import Settings
from idp import certificate_sign_in
from tests.commune_sso.our_ca import (  # noqa: F401 (fixtures)
    OurCa,
    ca_runtime,
    hierarchy,
    our_ca_fixture,
    people,
)
from tests.commune_sso.test_certificate_sign_in import _foreign_certificate
from tests.conftest import RP_REDIRECT
from tests.idp.live_server import bind_loopback, serve
from tests.idp.oidc_flow import authorize_params, hidden_inputs, pkce_pair, query_of
from tests.operations.deployment import free_port, nginx_binary
from tests.operations.tls_proxy import CERTIFICATE_HEADER, TlsProxy, tls_proxy

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
FORM_ERROR = re.compile(r'id="form-error">\s*<p>(.*?)</p>')


@pytest.fixture(name="public_port")
def public_port_fixture() -> int:
    return free_port()


@pytest.fixture(name="settings")
def proxied_settings_fixture(settings: Settings, public_port: int) -> Settings:
    return Settings(
        **{
            **settings.model_dump(),
            "issuer": f"https://127.0.0.1:{public_port}",
            "trusted_proxies": "127.0.0.1",
            "client_certificate_header": CERTIFICATE_HEADER,
        }
    )


@pytest.fixture(name="proxy")
def proxy_fixture(app, public_port: int, tmp_path: Path) -> Iterator[TlsProxy]:
    sock: socket.socket = bind_loopback()
    upstream = "{}:{}".format(*sock.getsockname())
    try:
        with (
            serve(app, sock),
            tls_proxy(tmp_path / "nginx", port=public_port, upstream=upstream) as proxy,
        ):
            yield proxy
    finally:
        sock.close()


def sign_in(http: httpx.Client, client_id: str, **headers: str) -> httpx.Response:
    _, challenge = pkce_pair()
    page = http.get("/oauth2/authorize", params=authorize_params(client_id, challenge))
    while page.status_code in (302, 303):
        page = http.get(page.headers["location"])
    assert page.status_code == 200 and "certificate-sign-in" in page.text, page.text
    return http.post("/login/certificate", data=hidden_inputs(page.text), headers=headers)


def refusal(response: httpx.Response) -> str:
    found = FORM_ERROR.search(response.text)
    assert found, response.text
    return html.unescape(found.group(1))


def test_an_official_signs_in_with_the_certificate_of_the_tls_handshake(proxy, rp, ca: OurCa):
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = ca.issue(key=key)
    with proxy.client(certificate, key) as http:
        response = sign_in(http, rp[0].client_id)
        assert response.status_code == 303, response.text
        while not response.headers["location"].startswith(RP_REDIRECT):
            response = http.get(response.headers["location"])
            assert response.status_code in (302, 303), response.text
        assert "code" in query_of(response.headers["location"])


def test_without_a_certificate_a_forged_header_does_not_pass_nginx(proxy, runtime, rp, ca: OurCa):
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = ca.issue(key=key)
    forged = quote(certificate.public_bytes(Encoding.PEM).decode(), safe="")
    with proxy.client() as http:
        response = sign_in(http, rp[0].client_id, **{CERTIFICATE_HEADER: forged})
    assert response.status_code == 400
    assert refusal(response) == runtime.pages.gettext("vi", certificate_sign_in.NO_CERTIFICATE)


def test_a_certificate_of_another_ca_is_refused_after_the_handshake(proxy, runtime, rp, ca: OurCa):
    ours = ca.issue()
    key = ec.generate_private_key(ec.SECP256R1())
    foreign = _foreign_certificate(ours.subject, ours.issuer, key=key)
    with proxy.client(foreign, key) as http:
        response = sign_in(http, rp[0].client_id)
    assert response.status_code == 401
    expected = certificate_sign_in.REFUSALS["unknown_issuer"]
    assert refusal(response) == runtime.pages.gettext("vi", expected)
