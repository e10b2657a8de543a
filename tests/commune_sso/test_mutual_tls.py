"""RFC 8705 through the real app, with the certificate our trusted proxy forwards: the two
client authentication methods (§2.1 with certificates of our own CA, §2.2 self-signed), tokens
bound to the certificate (§3) and refused without it at userinfo (fast path too), a public
client's refresh tokens bound likewise, registration rules (§2.1.2), discovery only when a
proxy forwards certificates, and the FAPI 2.0 switch with mTLS in place of DPoP."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import jwt as pyjwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc.jwk import ECKey
from starlette.testclient import TestClient

from ca_admin.profiles import dn_text
from core.web.client_address import parse_networks
from core.web.client_certificate import certificate_thumbprint
from idp import clients
from idp.clients import ClientSettings, InvalidClientSettings
from tests.commune_sso.our_ca import (  # noqa: F401 (fixtures)
    OurCa,
    ca_runtime,
    hierarchy,
    our_ca_fixture,
    people,
)
from tests.commune_sso.test_certificate_sign_in import HEADER, _foreign_certificate, forwarded
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, RP_REDIRECT, register_client
from tests.idp.oidc_flow import authorize_params, log_in, pkce_pair, query_of
from tests.idp.test_admin_import_api import API as ADMIN_API
from tests.idp.test_admin_import_api import make_account
from tests.throwaway_certificates import self_signed_p256

DEVICE = "app.hoankiem.gov.vn"


@pytest.fixture(name="proxied")
def proxied_fixture(app, runtime) -> Iterator[TestClient]:
    """The app behind a proxy that forwards client certificates (TCP peer 127.0.0.1)."""
    runtime.settings.trusted_proxies = parse_networks(["127.0.0.1"])
    runtime.settings.client_certificate_header = HEADER
    with TestClient(
        app, base_url=ISSUER, follow_redirects=False, client=("127.0.0.1", 40123)
    ) as client:
        yield client


def claims_of(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def self_signed() -> x509.Certificate:
    """An app's self-signed certificate (§2.2), on a key of its own."""
    return self_signed_p256("Một cửa")[0]


def jwks_with_x5c(certificate: x509.Certificate) -> dict[str, Any]:
    """The app's JWK Set as RFC 8705 §2.2 registers it: the key, its certificate in x5c."""
    jwk = ECKey.import_key(certificate.public_key()).as_dict(private=False)  # type: ignore[arg-type]
    der = base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()
    return {"keys": [{**jwk, "use": "sig", "x5c": [der]}]}


def register_mtls(runtime, method: str, *, bound: bool = True, **options: Any) -> str:
    grant_types = options.pop("grant_types", ["client_credentials"])
    client, secret = register_client(
        runtime,
        name="Dịch vụ liên thông",
        grant_types=grant_types,
        redirect_uris=options.pop("redirect_uris", []),
        scope=options.pop("scope", "profile"),
        auth_method=method,
        keys=ClientSettings(name="", tls_client_certificate_bound_access_tokens=bound, **options),
    )
    assert secret is None
    return client.client_id


def service_token(web: TestClient, client_id: str, headers: dict[str, str], **fields: str):
    return web.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id, **fields},
        headers=headers,
    )


# --- tls_client_auth (§2.1): a certificate of our CA, named by its subject or a SAN ----------


def test_tls_client_auth_with_a_device_certificate_of_our_ca(proxied, runtime, ca: OurCa):
    device = ca.issue("device", device_name=DEVICE)
    by_dn = register_mtls(
        runtime, "tls_client_auth", tls_client_auth_subject_dn=dn_text(device.subject)
    )
    by_san = register_mtls(runtime, "tls_client_auth", tls_client_auth_san_dns=DEVICE.upper())
    for client_id in (by_dn, by_san):
        response = service_token(proxied, client_id, forwarded(device))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert claims_of(body["access_token"])["cnf"] == {
            "x5t#S256": certificate_thumbprint(device)
        }


def test_tls_client_auth_refuses_every_other_certificate(proxied, runtime, ca: OurCa):
    device = ca.issue("device", device_name=DEVICE)
    client_id = register_mtls(
        runtime, "tls_client_auth", tls_client_auth_subject_dn=dn_text(device.subject)
    )
    other_device = ca.issue("device", device_name="scanner.hoankiem.gov.vn")
    stranger = _foreign_certificate(device.subject, device.issuer)  # same names, not ours
    refused = {
        "no certificate": {},
        "another name": forwarded(other_device),
        "another CA": forwarded(stranger),
    }
    for what, headers in refused.items():
        response = service_token(proxied, client_id, headers)
        # RFC 6749 §5.2: 401 only for credentials in the Authorization header.
        assert response.status_code == 400, what
        assert response.json()["error"] == "invalid_client", what
    ca.revoke(device, "keyCompromise")
    revoked = service_token(proxied, client_id, forwarded(device))
    assert revoked.status_code == 400 and "revoked" in revoked.json()["error_description"]


def test_a_certificate_and_a_secret_are_two_methods(proxied, runtime, ca: OurCa):
    device = ca.issue("device", device_name=DEVICE)
    client_id = register_mtls(runtime, "tls_client_auth", tls_client_auth_san_dns=DEVICE)
    response = service_token(proxied, client_id, forwarded(device), client_secret="x" * 43)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_certificate_from_an_untrusted_peer_authenticates_nobody(app, runtime, ca: OurCa):
    device = ca.issue("device", device_name=DEVICE)
    client_id = register_mtls(runtime, "tls_client_auth", tls_client_auth_san_dns=DEVICE)
    runtime.settings.trusted_proxies = parse_networks(["127.0.0.1"])
    runtime.settings.client_certificate_header = HEADER
    with TestClient(app, base_url=ISSUER, client=("203.0.113.9", 40000)) as direct:
        response = service_token(direct, client_id, forwarded(device))
    assert response.status_code == 400 and response.json()["error"] == "invalid_client"


# --- self_signed_tls_client_auth (§2.2) -----------------------------------------------------


def test_self_signed_tls_client_auth_with_the_registered_key(proxied, runtime):
    certificate = self_signed()
    client_id = register_mtls(
        runtime, "self_signed_tls_client_auth", jwks=jwks_with_x5c(certificate)
    )
    ok = service_token(proxied, client_id, forwarded(certificate))
    assert ok.status_code == 200, ok.text
    assert claims_of(ok.json()["access_token"])["cnf"]["x5t#S256"] == certificate_thumbprint(
        certificate
    )
    impostor = self_signed()  # same name, other key
    refused = service_token(proxied, client_id, forwarded(impostor))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"


# --- certificate-bound tokens (§3) ----------------------------------------------------------


def _sign_in_with_certificate(
    proxied, runtime, certificate, *, public: bool = False
) -> tuple[str, dict]:
    """An official signs in with the password; the app redeems the code with its certificate."""
    if public:
        client, _ = register_client(
            runtime,
            name="Ứng dụng di động",
            public=True,
            keys=ClientSettings(name="", tls_client_certificate_bound_access_tokens=True),
        )
        client_id = client.client_id
    else:
        client_id = register_mtls(
            runtime,
            "self_signed_tls_client_auth",
            jwks=jwks_with_x5c(certificate),
            grant_types=["authorization_code", "refresh_token"],
            redirect_uris=[RP_REDIRECT],
            scope="openid profile offline_access",
        )
    verifier, challenge = pkce_pair()
    back = log_in(
        proxied, authorize_params(client_id, challenge), "nguyen.van.an", OFFICIAL_PASSWORD
    )
    code = query_of(back.headers["location"])["code"]
    tokens = proxied.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": RP_REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
        },
        headers=forwarded(certificate),
    )
    assert tokens.status_code == 200, tokens.text
    return client_id, tokens.json()


def test_userinfo_needs_the_certificate_a_token_is_bound_to(proxied, runtime, official):
    certificate = self_signed()
    client_id, tokens = _sign_in_with_certificate(proxied, runtime, certificate)
    access = tokens["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    ok = proxied.get("/oauth2/userinfo", headers={**bearer, **forwarded(certificate)})
    assert ok.status_code == 200, ok.text
    assert ok.json()["preferred_username"] == "nguyen.van.an"
    other = forwarded(self_signed())
    # Twice each: a second answer may come from the token state cache; the binding holds.
    for headers in (bearer, bearer, {**bearer, **other}, {**bearer, **other}):
        refused = proxied.get("/oauth2/userinfo", headers=headers)
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    # Introspection tells a resource server the binding (§3.2), for its own check.
    introspected = proxied.post(
        "/oauth2/introspect",
        data={"token": access, "client_id": client_id},
        headers=forwarded(certificate),
    )
    assert introspected.status_code == 200, introspected.text
    assert introspected.json()["active"] is True
    assert introspected.json()["cnf"] == {"x5t#S256": certificate_thumbprint(certificate)}
    revoked = proxied.post(
        "/oauth2/revoke",
        data={"token": tokens["refresh_token"], "client_id": client_id},
        headers=forwarded(certificate),
    )
    assert revoked.status_code == 200, revoked.text


def test_a_public_clients_refresh_token_is_bound_to_its_certificate(proxied, runtime, official):
    certificate = self_signed()
    client_id, tokens = _sign_in_with_certificate(proxied, runtime, certificate, public=True)
    assert claims_of(tokens["access_token"])["cnf"]["x5t#S256"] == certificate_thumbprint(
        certificate
    )
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": client_id,
    }
    thief = self_signed()
    stolen = proxied.post("/oauth2/token", data=refresh, headers=forwarded(thief))
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    without = proxied.post("/oauth2/token", data=refresh)
    assert without.status_code == 400
    renewed = proxied.post("/oauth2/token", data=refresh, headers=forwarded(certificate))
    assert renewed.status_code == 200, renewed.text


def test_the_fast_path_does_not_issue_an_unbound_token(proxied, runtime):
    client, secret = register_client(
        runtime,
        name="Dịch vụ có khóa bí mật",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="profile",
        keys=ClientSettings(name="", tls_client_certificate_bound_access_tokens=True),
    )
    assert secret is not None
    data = {"grant_type": "client_credentials"}
    without = proxied.post("/oauth2/token", data=data, auth=(client.client_id, secret))
    assert without.status_code == 400 and without.json()["error"] == "invalid_request"
    certificate = self_signed()
    bound = proxied.post(
        "/oauth2/token", data=data, auth=(client.client_id, secret), headers=forwarded(certificate)
    )
    assert bound.status_code == 200, bound.text
    assert "x5t#S256" in claims_of(bound.json()["access_token"])["cnf"]


def test_fapi2_with_mtls_needs_no_dpop_and_pushes_with_the_certificate(proxied, runtime, ca: OurCa):
    device = ca.issue("device", device_name=DEVICE)
    client_id = register_mtls(
        runtime,
        "tls_client_auth",
        tls_client_auth_san_dns=DEVICE,
        fapi2_profile=True,
        grant_types=["authorization_code"],
        redirect_uris=[RP_REDIRECT],
        scope="openid profile",
    )
    _, challenge = pkce_pair()
    pushed = proxied.post(
        "/oauth2/par",
        data={**authorize_params(client_id, challenge), "client_id": client_id},
        headers=forwarded(device),
    )
    assert pushed.status_code == 201, pushed.text
    assert pushed.json()["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    without = proxied.post(
        "/oauth2/par", data={**authorize_params(client_id, challenge), "client_id": client_id}
    )
    assert without.status_code == 400 and without.json()["error"] == "invalid_client"


# --- registration (§2.1.2) and discovery (§3.3) ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "fields", "field"),
    [
        ("tls_client_auth", {}, "tls_client_auth_subject_dn"),
        (
            "tls_client_auth",
            {"tls_client_auth_subject_dn": "CN=a", "tls_client_auth_san_dns": "a.vn"},
            "tls_client_auth_san_dns",
        ),
        (
            "tls_client_auth",
            {"tls_client_auth_subject_dn": "không phải DN"},
            "tls_client_auth_subject_dn",
        ),
        ("client_secret_basic", {"tls_client_auth_san_dns": "a.vn"}, "tls_client_auth_san_dns"),
        ("self_signed_tls_client_auth", {}, "jwks"),
    ],
)
def test_registration_rules(runtime, method, fields, field):
    with pytest.raises(InvalidClientSettings) as refused:
        register_mtls(runtime, method, **fields)
    assert field in {problem.field for problem in refused.value.problems}


def test_the_cli_registers_tls_client_auth(cli):
    result = cli(
        "client", "add", "--name", "Dịch vụ liên thông", "--grant-type", "client_credentials",
        "--auth-method", "tls_client_auth", "--tls-client-auth-san-dns", DEVICE,
        "--tls-client-certificate-bound-access-tokens", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["token_endpoint_auth_method"] == "tls_client_auth"
    assert data["tls_client_auth_san_dns"] == DEVICE and data["client_secret"] is None
    assert data["tls_client_certificate_bound_access_tokens"] is True


def test_discovery_offers_mtls_only_where_certificates_are_forwarded(web, runtime):
    plain = web.get("/.well-known/openid-configuration").json()
    assert "tls_client_auth" not in plain["token_endpoint_auth_methods_supported"]
    assert "tls_client_certificate_bound_access_tokens" not in plain
    # A new Settings object, as a restart with these settings makes: discovery is encoded once
    # per Settings object.
    runtime.settings = runtime.settings.model_copy(
        update={
            "trusted_proxies": parse_networks(["127.0.0.1"]),
            "client_certificate_header": HEADER,
        }
    )
    metadata = web.get("/.well-known/openid-configuration").json()
    for name in (
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ):
        assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(metadata[name])
    assert metadata["tls_client_certificate_bound_access_tokens"] is True
    assert clients.MTLS_AUTH_METHODS == ("tls_client_auth", "self_signed_tls_client_auth")


def test_the_admin_api_needs_the_certificate_its_token_is_bound_to(proxied, runtime):
    """An admin app whose tokens are certificate-bound: the admin API takes the token only
    with the same certificate (RFC 8705 §3), as userinfo does."""
    make_account(runtime, "qt.tinh", system=True)
    client, secret = register_client(
        runtime,
        name="Trang quản trị",
        scope="openid profile admin",
        keys=ClientSettings(name="", tls_client_certificate_bound_access_tokens=True),
    )
    assert secret is not None
    certificate = self_signed()
    verifier, challenge = pkce_pair()
    params = authorize_params(client.client_id, challenge, scope="openid admin")
    back = log_in(proxied, params, "qt.tinh", OFFICIAL_PASSWORD)
    code = query_of(back.headers["location"])["code"]
    issued = proxied.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": RP_REDIRECT,
              "code_verifier": verifier},
        auth=(client.client_id, secret),
        headers=forwarded(certificate),
    )  # fmt: skip
    assert issued.status_code == 200, issued.text
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    with_it = proxied.get(f"{ADMIN_API}/imports/nope", headers={**bearer, **forwarded(certificate)})
    assert with_it.status_code == 404  # authenticated: the job does not exist
    for headers in (bearer, {**bearer, **forwarded(self_signed())}):
        refused = proxied.get(f"{ADMIN_API}/imports/nope", headers=headers)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
