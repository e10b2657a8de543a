"""private_key_jwt client authentication (RFC 7523 §2.2 and §3, OIDC Core §9): the token,
introspection and revocation endpoints, the replay cache shared by every worker, and each
refusal RFC 7523 §3 names (reused jti, wrong audience, expired, not the client's key)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from commune_sso.app import build_runtime, create_app
from core.clock import FixedClock
from core.settings import Settings
from idp.clients import ClientSettings, InvalidClientSettings
from idp.runtime import IdpRuntime
from tests.conftest import ISSUER, register_client
from tests.idp.fapi.client_keys import AppKey

TOKEN = "/oauth2/token"


def key_client(runtime: IdpRuntime, key: AppKey, **settings: object) -> str:
    client, secret = register_client(
        runtime,
        name="Cổng dịch vụ công",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="profile email",
        auth_method="private_key_jwt",
        keys=ClientSettings(name="", jwks=key.jwks, **settings),  # type: ignore[arg-type]
    )
    assert secret is None  # a key, not a shared secret
    return client.client_id


@pytest.fixture
def app_key() -> AppKey:
    return AppKey("ES256")


@pytest.fixture
def client_id(runtime: IdpRuntime, app_key: AppKey) -> str:
    return key_client(runtime, app_key)


def token_request(web: TestClient, fields: dict[str, str]):  # type: ignore[no-untyped-def]
    return web.post(TOKEN, data={"grant_type": "client_credentials", **fields})


def test_discovery_advertises_private_key_jwt(web: TestClient) -> None:
    metadata = web.get("/.well-known/openid-configuration").json()
    for endpoint in ("token", "revocation", "introspection"):
        assert "private_key_jwt" in metadata[f"{endpoint}_endpoint_auth_methods_supported"]
        algs = metadata[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert "ES256" in algs and "PS256" in algs
        assert not {"none", "HS256"} & set(algs)


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_each_fapi_algorithm_authenticates(runtime: IdpRuntime, web: TestClient, alg: str) -> None:
    key = AppKey(alg)
    client_id = key_client(runtime, key)
    response = token_request(web, key.assertion_fields(client_id, aud=ISSUER))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("aud", [ISSUER, f"{ISSUER}{TOKEN}", [ISSUER, "https://other.example"]])
def test_audience_is_the_issuer_or_the_token_endpoint(
    web: TestClient, app_key: AppKey, client_id: str, aud: object
) -> None:
    response = token_request(web, app_key.assertion_fields(client_id, aud=aud))
    assert response.status_code == 200, response.text


def test_reused_jti_is_refused_by_every_worker(
    web: TestClient, app_key: AppKey, client_id: str, settings: Settings, clock: FixedClock
) -> None:
    """RFC 7523 §3 item 7: the jti is single use — on another worker (another runtime on the
    same database) too."""
    fields = app_key.assertion_fields(client_id)
    assert token_request(web, fields).status_code == 200
    again = token_request(web, fields)
    assert again.status_code in (400, 401)
    assert again.json()["error"] == "invalid_client"
    assert "jti" in again.json()["error_description"]
    other_worker = build_runtime(settings, clock)
    try:
        with TestClient(create_app(settings, runtime=other_worker), base_url=ISSUER) as other:
            fresh = app_key.assertion_fields(client_id)
            assert token_request(other, fresh).status_code == 200
            assert token_request(web, fresh).json()["error"] == "invalid_client"
    finally:
        other_worker.session_factory.kw["bind"].dispose()


@dataclass(frozen=True)
class FromNow:
    """A time claim this many seconds from when the test runs (not from when it was
    collected: a suite can run for half an hour)."""

    seconds: int


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"aud": "https://elsewhere.example/token"}, "audience"),
        ({"exp": FromNow(-120)}, "expired"),
        ({"exp": None}, "exp"),
        ({"exp": FromNow(86_400)}, "expire within"),
        ({"jti": None}, "jti"),
        ({"iss": "someone-else"}, "iss and sub"),
        ({"nbf": FromNow(600)}, "future"),
    ],
)
def test_assertion_claims_are_checked(
    web: TestClient, app_key: AppKey, client_id: str, overrides: dict[str, object], why: str
) -> None:
    now = int(time.time())
    claims = {
        name: now + value.seconds if isinstance(value, FromNow) else value
        for name, value in overrides.items()
    }
    response = token_request(web, app_key.assertion_fields(client_id, **claims))
    assert response.status_code in (400, 401), response.text
    body = response.json()
    assert body["error"] == "invalid_client"
    assert why in body["error_description"]


def test_a_key_the_client_did_not_register_is_refused(web: TestClient, client_id: str) -> None:
    stranger = AppKey("ES256")
    response = token_request(web, stranger.assertion_fields(client_id))
    assert response.json()["error"] == "invalid_client"


def test_symmetric_and_unsigned_assertions_are_refused(
    web: TestClient, app_key: AppKey, client_id: str
) -> None:
    fields = app_key.assertion_fields(client_id)
    header, payload, _ = fields["client_assertion"].split(".")
    # alg "none" with the same claims (RFC 7518 §3.6), and an HMAC keyed with the public key.
    unsigned = "eyJhbGciOiJub25lIn0." + payload + "."
    for assertion in (unsigned,):
        response = token_request(web, {**fields, "client_assertion": assertion})
        assert response.json()["error"] == "invalid_client"
    assert header  # the signed one is fine (and still unused)
    assert token_request(web, fields).status_code == 200


def test_secret_and_assertion_together_are_invalid_request(
    web: TestClient, app_key: AppKey, client_id: str
) -> None:
    response = token_request(web, {**app_key.assertion_fields(client_id), "client_secret": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_a_secret_client_cannot_use_an_assertion(runtime: IdpRuntime, web: TestClient) -> None:
    client, _secret = register_client(
        runtime, grant_types=["client_credentials"], redirect_uris=[], scope="profile"
    )
    key = AppKey()
    response = token_request(web, key.assertion_fields(client.client_id))
    assert response.json()["error"] == "invalid_client"


def test_introspection_and_revocation_accept_private_key_jwt(
    web: TestClient, app_key: AppKey, client_id: str
) -> None:
    token = token_request(web, app_key.assertion_fields(client_id)).json()["access_token"]
    introspected = web.post(
        "/oauth2/introspect", data={"token": token, **app_key.assertion_fields(client_id)}
    )
    assert introspected.status_code == 200, introspected.text
    assert introspected.json()["active"] is True
    revoked = web.post(
        "/oauth2/revoke", data={"token": token, **app_key.assertion_fields(client_id)}
    )
    assert revoked.status_code == 200, revoked.text
    after = web.post(
        "/oauth2/introspect", data={"token": token, **app_key.assertion_fields(client_id)}
    )
    assert after.json() == {"active": False}


def test_registration_refuses_private_keys_and_missing_keys(runtime: IdpRuntime) -> None:
    key = AppKey()
    private = {"keys": [key.key.as_dict(private=True)]}
    with pytest.raises(InvalidClientSettings) as refused:
        key_client_with(runtime, ClientSettings(name="", jwks=private))
    assert refused.value.problems[0].field == "jwks"
    with pytest.raises(InvalidClientSettings) as missing:
        key_client_with(runtime, ClientSettings(name=""))
    assert missing.value.problems[0].field == "jwks"
    symmetric = {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}
    with pytest.raises(InvalidClientSettings):
        key_client_with(runtime, ClientSettings(name="", jwks=symmetric))


def key_client_with(runtime: IdpRuntime, keys: ClientSettings) -> None:
    register_client(
        runtime,
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="profile",
        auth_method="private_key_jwt",
        keys=keys,
    )


def test_cli_registers_a_private_key_jwt_client(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = AppKey()
    jwks_file = tmp_path / "app-jwks.json"
    jwks_file.write_text(json.dumps(key.jwks))
    data = cli.json(
        "client",
        "add",
        "--name",
        "Cổng dịch vụ công",
        "--grant-type",
        "client_credentials",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(jwks_file),
        "--json",
    )
    assert data["token_endpoint_auth_method"] == "private_key_jwt"
    assert data["client_secret"] is None
    assert data["jwks"] == key.jwks
    jwks_file.write_text(json.dumps({"keys": [key.key.as_dict(private=True)]}))
    refused = cli(
        "client",
        "add",
        "--name",
        "X",
        "--grant-type",
        "client_credentials",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(jwks_file),
    )
    assert refused.exit_code != 0
    assert "public keys" in refused.output
