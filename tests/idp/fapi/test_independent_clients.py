"""The FAPI 2.0 parts driven by client libraries that are not ours, over real HTTP: Authlib's
OAuth 2.0 client (private_key_jwt) and panva's openid-client 6 for Node.js (PAR, DPoP,
private_key_jwt), run against the app under uvicorn."""

from __future__ import annotations

from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from idp.runtime import IdpRuntime
from tests.idp.fapi.client_keys import AppKey
from tests.idp.fapi.test_private_key_jwt import TOKEN, key_client
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    LiveServer,
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
)


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
