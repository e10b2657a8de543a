"""Pushed authorization requests (RFC 9126): the push, the sign-in through its request_uri,
and the refusals §2.3 and §4 name — reused, expired or another client's request_uri, a client
that must push and did not, a request_uri inside a push."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from core.clock import FixedClock
from idp.clients import ClientSettings
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD, RP_REDIRECT, register_client
from tests.idp.fapi.client_keys import AppKey
from tests.idp.oidc_flow import (
    authorize_params,
    exchange_code,
    follow_to_client,
    open_login_form,
    pkce_pair,
    query_of,
    submit_login,
)

PAR = "/oauth2/par"


def push(web: TestClient, client_id: str, secret: str, **params: str):  # type: ignore[no-untyped-def]
    _verifier, challenge = pkce_pair()
    fields = authorize_params(client_id, challenge, **params)
    del fields["client_id"]  # Basic authentication names the client (RFC 9126 §2.1)
    return web.post(PAR, data=fields, auth=(client_id, secret))


def sign_in_with(web: TestClient, client_id: str, request_uri: str):  # type: ignore[no-untyped-def]
    login_form = open_login_form(web, {"client_id": client_id, "request_uri": request_uri})
    submitted = submit_login(web, login_form, "nguyen.van.an", OFFICIAL_PASSWORD)
    return follow_to_client(web, submitted)


def test_discovery_names_the_par_endpoint(web: TestClient) -> None:
    metadata = web.get("/.well-known/openid-configuration").json()
    assert metadata["pushed_authorization_request_endpoint"].endswith(PAR)
    assert metadata["require_pushed_authorization_requests"] is False


def test_push_then_sign_in_then_the_code_works(
    web: TestClient, shared_app: tuple[str, str], official: object
) -> None:
    client_id, secret = shared_app
    verifier, challenge = pkce_pair()
    fields = authorize_params(client_id, challenge, state="trạng-thái")
    pushed = web.post(PAR, data=fields, auth=(client_id, secret))
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["cache-control"] == "no-store"
    body = pushed.json()
    assert body["expires_in"] == 60
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    # The browser brings only client_id and request_uri; anything else is ignored (§4).
    back = sign_in_with(web, client_id, body["request_uri"])
    assert back.headers["location"].startswith(RP_REDIRECT)
    answer = query_of(back.headers["location"])
    assert answer["state"] == "trạng-thái"
    tokens = exchange_code(web, client_id, secret, answer["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    assert "id_token" in tokens.json()


def test_request_uri_is_single_use(
    web: TestClient, shared_app: tuple[str, str], official: object
) -> None:
    client_id, secret = shared_app
    request_uri = push(web, client_id, secret).json()["request_uri"]
    assert sign_in_with(web, client_id, request_uri).status_code in (302, 303)
    again = web.get(
        "/oauth2/authorize", params={"client_id": client_id, "request_uri": request_uri}
    )
    assert again.status_code == 400
    assert "invalid_request_uri" in again.text


def test_request_uri_expires_after_60_seconds(
    web: TestClient, shared_app: tuple[str, str], clock: FixedClock
) -> None:
    client_id, secret = shared_app
    request_uri = push(web, client_id, secret).json()["request_uri"]
    clock.advance(61)
    late = web.get("/oauth2/authorize", params={"client_id": client_id, "request_uri": request_uri})
    assert late.status_code == 400
    assert "invalid_request_uri" in late.text


def test_another_clients_request_uri_is_refused(
    runtime: IdpRuntime, web: TestClient, shared_app: tuple[str, str]
) -> None:
    client_id, secret = shared_app
    request_uri = push(web, client_id, secret).json()["request_uri"]
    other, _ = register_client(runtime, name="Ứng dụng khác")
    stolen = web.get(
        "/oauth2/authorize", params={"client_id": other.client_id, "request_uri": request_uri}
    )
    assert stolen.status_code == 400 and "invalid_request_uri" in stolen.text
    # ... and the refusal did not use it up for its owner.
    mine = web.get("/oauth2/authorize", params={"client_id": client_id, "request_uri": request_uri})
    assert mine.status_code == 303


def test_a_client_that_must_push_cannot_send_a_plain_request(
    runtime: IdpRuntime, web: TestClient
) -> None:
    client, secret = register_client(
        runtime, keys=ClientSettings(name="", require_pushed_authorization_requests=True)
    )
    assert secret is not None
    _verifier, challenge = pkce_pair()
    plain = web.get("/oauth2/authorize", params=authorize_params(client.client_id, challenge))
    assert plain.status_code == 302
    assert query_of(plain.headers["location"])["error"] == "invalid_request"
    assert push(web, client.client_id, secret).status_code == 201


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"request_uri": "urn:ietf:params:oauth:request_uri:x"}, "invalid_request"),
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_push_errors_are_json(
    web: TestClient, shared_app: tuple[str, str], params: dict[str, str], error: str
) -> None:
    client_id, secret = shared_app
    refused = push(web, client_id, secret, **params)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == error


def test_push_needs_client_authentication(web: TestClient, shared_app: tuple[str, str]) -> None:
    client_id, _secret = shared_app
    refused = push(web, client_id, "wrong-secret")
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_push_with_private_key_jwt(runtime: IdpRuntime, web: TestClient, official: object) -> None:
    key = AppKey("PS256")
    client, _ = register_client(
        runtime, auth_method="private_key_jwt", keys=ClientSettings(name="", jwks=key.jwks)
    )
    verifier, challenge = pkce_pair()
    fields = {**authorize_params(client.client_id, challenge)}
    # The assertion's audience may be the issuer or, as here, the PAR endpoint itself.
    assertion = key.assertion_fields(client.client_id, aud=f"{runtime.settings.issuer}{PAR}")
    pushed = web.post(PAR, data={**fields, **assertion})
    assert pushed.status_code == 201, pushed.text
    replayed = web.post(PAR, data={**fields, **assertion})
    assert replayed.json()["error"] == "invalid_client"
    back = sign_in_with(web, client.client_id, pushed.json()["request_uri"])
    code = query_of(back.headers["location"])["code"]
    tokens = web.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": RP_REDIRECT,
            "code_verifier": verifier,
            **key.assertion_fields(client.client_id),
        },
    )
    assert tokens.status_code == 200, tokens.text
