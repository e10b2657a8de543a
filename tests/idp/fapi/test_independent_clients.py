"""The FAPI 2.0 parts driven by client libraries that are not ours, over real HTTP: Authlib's
OAuth 2.0 client (private_key_jwt) and panva's openid-client 6 for Node.js (PAR, DPoP,
private_key_jwt), run against the app under uvicorn."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from idp.clients import ClientSettings
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD, RP_REDIRECT, register_client
from tests.idp.fapi.client_keys import AppKey
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


OPENID_CLIENT = Path(__file__).parent / "openid_client"
# Installed by scripts/test (npm ci of the pinned lock, like axe-core).
OPENID_CLIENT_PREFIX = Path(__file__).resolve().parents[3] / ".cache" / "node-openid-client"


def run_openid_client(
    runtime: IdpRuntime,
    live_server: LiveServer,
    script_name: str,
    *mode: str,
    scope: str = "openid profile",
    **flags: bool,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Register an app that authenticates with private_key_jwt (ES256; ``flags``: its other
    ClientSettings), run one of the openid-client scripts as that app: it prints the
    authorization URL, the official signs in here, it gets the redirect back and prints its
    result. Returns the client_id, the first line and the result."""
    if shutil.which("node") is None or not (OPENID_CLIENT_PREFIX / "node_modules").is_dir():
        pytest.skip("node or openid-client (scripts/test installs it) is missing")
    key = AppKey("ES256")
    client, _ = register_client(
        runtime,
        name="Ứng dụng FAPI 2.0",
        auth_method="private_key_jwt",
        scope=scope,
        keys=ClientSettings(name="", jwks=key.jwks, **flags),
    )
    private_jwk = json.dumps({**key.key.as_dict(private=True), "kid": key.key.kid})
    script = OPENID_CLIENT_PREFIX / script_name
    shutil.copyfile(OPENID_CLIENT / script_name, script)
    arguments = [live_server.issuer, client.client_id, private_jwk, RP_REDIRECT, *mode]
    with subprocess.Popen(
        ["node", str(script), *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as node:
        assert node.stdout is not None and node.stdin is not None
        first_line = node.stdout.readline()
        assert first_line, node.stderr.read() if node.stderr else ""
        first = json.loads(first_line)
        query = query_of(first["authorization_url"])
        with httpx.Client(base_url=live_server.issuer, follow_redirects=False) as browser:
            back = log_in(browser, query, "nguyen.van.an", OFFICIAL_PASSWORD)  # type: ignore[arg-type]
        node.stdin.write(back.headers["location"] + "\n")
        node.stdin.flush()
        out, err = node.communicate(timeout=60)
    assert node.returncode == 0, err
    return client.client_id, first, json.loads(out.strip().splitlines()[-1])


def test_openid_client_signs_in_with_fapi2(
    runtime: IdpRuntime, live_server: LiveServer, official: object
) -> None:
    """panva's openid-client 6: private_key_jwt (ES256), PAR, PKCE S256 and DPoP with nonces,
    against a client registered under the FAPI 2.0 switch; the code, userinfo and the refresh
    all go through its own DPoP handling."""
    _, first, result = run_openid_client(
        runtime,
        live_server,
        "fapi_client.mjs",
        scope="openid profile offline_access",
        fapi2_profile=True,
    )
    assert set(query_of(first["authorization_url"])) == {"client_id", "request_uri"}  # pushed
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
    client_id, first, result = run_openid_client(
        runtime, live_server, "request_client.mjs", mode, require_signed_request_object=True
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
    _, first, result = run_openid_client(runtime, live_server, "request_client.mjs", "dpop-jkt")
    assert query_of(first["authorization_url"])["dpop_jkt"] == first["dpop_jkt"]
    assert result["token_type"].lower() == "dpop"
    claims = pyjwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": first["dpop_jkt"]}
