"""RFC 8705 through a real nginx terminating TLS (a real handshake with the app's key):
tls_client_auth with a device certificate of our CA, a certificate-bound token, and
introspection with and without the certificate. (Userinfo's binding check is driven through
the app in tests/commune_sso/test_mutual_tls.py.)"""

from __future__ import annotations

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
from tests.operations.deployment import nginx_binary
from tests.operations.test_certificate_sign_in_behind_nginx import (  # noqa: F401 (fixtures)
    proxied_settings_fixture,
    proxy_fixture,
    public_port_fixture,
)
from tests.operations.tls_proxy import TlsProxy

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
