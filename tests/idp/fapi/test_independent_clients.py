"""The FAPI 2.0 parts driven by client libraries that are not ours, over real HTTP: Authlib's
OAuth 2.0 client (private_key_jwt) and panva's openid-client 6 for Node.js (PAR, DPoP,
private_key_jwt), run against the app under uvicorn."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import jwt as pyjwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from idp.clients import ClientSettings
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD, RP_REDIRECT, register_client
from tests.idp.fapi.client_keys import AppKey
from tests.idp.fapi.openid_client_runner import (
    run_openid_client,
    run_openid_client_script,
    skip_without_openid_client,
)
from tests.idp.fapi.test_private_key_jwt import TOKEN, key_client
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    LiveServer,
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
)
from tests.idp.oidc_flow import log_in, query_of


def test_authlib_client_gets_a_token_with_private_key_jwt(
    runtime: IdpRuntime, live_server: LiveServer
) -> None:
    """Authlib's own client (its PrivateKeyJWT signs RS256 assertions for the token endpoint
    URL, valid for an hour) — an independent implementation of RFC 7523 §2.2."""
    key = AppKey("RS256")
    client_id = key_client(runtime, key)
    token_endpoint = live_server.url(TOKEN)
    with OAuth2Client(
        client_id,
        key.key.as_pem(private=True),
        token_endpoint_auth_method=PrivateKeyJWT(token_endpoint, headers={"kid": key.key.kid}),
    ) as client:
        token = client.fetch_token(token_endpoint, grant_type="client_credentials")
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "profile email"


def key_app(runtime: IdpRuntime, key: AppKey, *, scope: str, **flags: bool) -> str:
    """An app that authenticates with private_key_jwt (``flags``: its other ClientSettings)."""
    client, _ = register_client(
        runtime,
        name="Ứng dụng FAPI 2.0",
        auth_method="private_key_jwt",
        scope=scope,
        keys=ClientSettings(name="", jwks=key.jwks, **flags),
    )
    return client.client_id


def script_arguments(live_server: LiveServer, client_id: str, key: AppKey) -> list[str]:
    private_jwk = {**key.key.as_dict(private=True), "kid": key.key.kid}
    return [live_server.issuer, client_id, json.dumps(private_jwk), RP_REDIRECT]


def official_signs_in(live_server: LiveServer) -> Callable[[str], str]:
    def sign_in(authorization_url: str) -> str:
        with httpx.Client(base_url=live_server.issuer, follow_redirects=False) as browser:
            query = query_of(authorization_url)
            back = log_in(browser, query, "nguyen.van.an", OFFICIAL_PASSWORD)  # type: ignore[arg-type]
        return back.headers["location"]

    return sign_in


def test_openid_client_signs_in_with_fapi2(
    runtime: IdpRuntime, live_server: LiveServer, official: object
) -> None:
    """panva's openid-client 6: private_key_jwt (ES256), PAR, PKCE S256 and DPoP with nonces,
    against a client registered under the FAPI 2.0 switch; the code, userinfo and the refresh
    all go through its own DPoP handling."""
    skip_without_openid_client()
    key = AppKey("ES256")
    client_id = key_app(runtime, key, scope="openid profile offline_access", fapi2_profile=True)
    result = run_openid_client(
        "fapi_client.mjs",
        script_arguments(live_server, client_id, key),
        official_signs_in(live_server),
    )
    assert result["token_type"].lower() == "dpop"
    assert result["refreshed_token_type"].lower() == "dpop"
    assert result["userinfo"]["preferred_username"] == "nguyen.van.an"
    claims = pyjwt.decode(result["access_token"], options={"verify_signature": False})
    assert "jkt" in claims["cnf"]


@pytest.mark.parametrize("mode", ["jar", "par-jar"])
def test_openid_client_sends_signed_request_objects(
    runtime: IdpRuntime, live_server: LiveServer, official: object, mode: str
) -> None:
    """openid-client's buildAuthorizationUrlWithJAR (RFC 9101), by value and pushed (PAR with
    JAR), for a client that may send nothing else."""
    skip_without_openid_client()
    key = AppKey("ES256")
    client_id = key_app(runtime, key, scope="openid profile", require_signed_request_object=True)
    first, result = run_openid_client_script(
        "request_client.mjs",
        [*script_arguments(live_server, client_id, key), mode],
        official_signs_in(live_server),
    )
    query = query_of(first["authorization_url"])
    assert set(query) == (
        {"client_id", "request"} if mode == "jar" else {"client_id", "request_uri"}
    )
    assert result["token_type"] == "bearer"
    assert result["id_token_claims"]["aud"] == client_id


def test_openid_client_binds_the_code_with_dpop_jkt(
    runtime: IdpRuntime, live_server: LiveServer, official: object
) -> None:
    """openid-client sends dpop_jkt (RFC 9449 §10) in a plain authorization request and
    redeems the code with its DPoP handle: the token is bound to that key."""
    skip_without_openid_client()
    key = AppKey("ES256")
    client_id = key_app(runtime, key, scope="openid profile")
    first, result = run_openid_client_script(
        "request_client.mjs",
        [*script_arguments(live_server, client_id, key), "dpop-jkt"],
        official_signs_in(live_server),
    )
    assert query_of(first["authorization_url"])["dpop_jkt"] == first["dpop_jkt"]
    assert result["token_type"].lower() == "dpop"
    claims = pyjwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": first["dpop_jkt"]}
