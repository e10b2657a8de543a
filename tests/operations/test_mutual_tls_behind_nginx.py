"""RFC 8705 through a real nginx terminating TLS (a real handshake with the app's key):
tls_client_auth with a device certificate of our CA, a certificate-bound token, and
introspection with and without the certificate. (Userinfo's binding check is driven through
the app in tests/commune_sso/test_mutual_tls.py.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from core.web.client_certificate import certificate_thumbprint
from tests.commune_sso.our_ca import (  # noqa: F401 (fixtures)
    OurCa,
    ca_runtime,
    hierarchy,
    our_ca_fixture,
    people,
)
from tests.commune_sso.test_mutual_tls import DEVICE, register_mtls
from tests.conftest import RP_REDIRECT
from tests.idp.fapi.openid_client_runner import run_openid_client, skip_without_openid_client
from tests.idp.oidc_flow import hidden_inputs
from tests.operations.deployment import nginx_binary
from tests.operations.test_certificate_sign_in_behind_nginx import (  # noqa: F401 (fixtures)
    proxied_settings_fixture,
    proxy_fixture,
    public_port_fixture,
)
from tests.operations.tls_proxy import TlsProxy, write_pem_pair

pytestmark = pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")


def token(http: httpx.Client, client_id: str) -> httpx.Response:
    return http.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "client_id": client_id}
    )


def test_an_app_authenticates_with_its_device_certificate_and_gets_a_bound_token(
    proxy: TlsProxy, runtime, ca: OurCa
):
    key = ec.generate_private_key(ec.SECP256R1())
    device = ca.issue("device", key=key, device_name=DEVICE)
    client_id = register_mtls(runtime, "tls_client_auth", tls_client_auth_san_dns=DEVICE)
    with proxy.client(device, key) as app:
        issued = token(app, client_id)
        assert issued.status_code == 200, issued.text
        access = issued.json()["access_token"]
        claims = pyjwt.decode(access, options={"verify_signature": False})
        assert claims["cnf"] == {"x5t#S256": certificate_thumbprint(device)}
        about = {"token": access, "client_id": client_id}
        introspected = app.post("/oauth2/introspect", data=about)
        assert introspected.status_code == 200, introspected.text
        assert introspected.json()["cnf"] == claims["cnf"]
    with proxy.client() as stranger:
        refused = token(stranger, client_id)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
        # The token alone is worth nothing without the certificate it is bound to (§3).
        stolen = stranger.post("/oauth2/introspect", data=about)
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_client"


def test_openid_client_signs_in_with_tls_client_auth_under_fapi2(
    proxy: TlsProxy, runtime, ca: OurCa, tmp_path: Path
):
    """panva's openid-client 6 as the app: tls_client_auth with its device certificate of our
    CA (its own TlsClientAuth, the certificate in every handshake with nginx), PAR, PKCE S256
    and certificate-bound tokens under the FAPI 2.0 switch (no DPoP); the official signs in
    with their own certificate on the way."""
    skip_without_openid_client()
    app_key = ec.generate_private_key(ec.SECP256R1())
    device = ca.issue("device", key=app_key, device_name=DEVICE)
    client_id = register_mtls(
        runtime,
        "tls_client_auth",
        tls_client_auth_san_dns=DEVICE,
        fapi2_profile=True,
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=[RP_REDIRECT],
        scope="openid profile offline_access",
    )
    official_key = ec.generate_private_key(ec.SECP256R1())
    official_certificate = ca.issue(key=official_key)
    cert_path, key_path = write_pem_pair(tmp_path, "app", device, app_key)

    def sign_in(authorization_url: str) -> str:
        with proxy.client(official_certificate, official_key) as browser:
            response = browser.get(authorization_url)
            while response.status_code in (302, 303):
                response = browser.get(response.headers["location"])
            assert "certificate-sign-in" in response.text, response.text
            response = browser.post("/login/certificate", data=hidden_inputs(response.text))
            while not response.headers.get("location", "").startswith(RP_REDIRECT):
                assert response.status_code in (302, 303), response.text
                response = browser.get(response.headers["location"])
        return response.headers["location"]

    arguments = [proxy.url, client_id, str(cert_path), str(key_path), str(proxy.server_pem)]
    result = run_openid_client("mtls_client.mjs", [*arguments, RP_REDIRECT], sign_in)
    assert result["token_type"].lower() == "bearer"
    assert result["amr"] == ["pop"]
    assert result["userinfo"]["preferred_username"] == ca.people.official.username
    bound = {"x5t#S256": certificate_thumbprint(device)}
    for token in (result["access_token"], result["refreshed_access_token"]):
        assert pyjwt.decode(token, options={"verify_signature": False})["cnf"] == bound
