"""dpop_jkt (RFC 9449 §10): the authorization code bound to the client's DPoP key at the
authorization endpoint, or by the proof sent with a pushed request (§10.1); the token request
must bring a proof of that key (invalid_grant otherwise, and without any proof)."""

from __future__ import annotations

from starlette.testclient import TestClient

from idp.runtime import IdpRuntime
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, RP_REDIRECT, register_client
from tests.idp.fapi.client_keys import DpopKey
from tests.idp.fapi.test_dpop import DpopApp, claims_of
from tests.idp.oidc_flow import (
    authorize_params,
    exchange_code,
    follow_to_client,
    log_in,
    open_login_form,
    pkce_pair,
    query_of,
    submit_login,
)

PAR = "/oauth2/par"


def code_fields(client_id: str, code: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": RP_REDIRECT,
        "code_verifier": verifier,
        "client_id": client_id,
    }


def redeem_with_proof(
    web: TestClient, key: DpopKey, client_id: str, secret: str, code: str, verifier: str
):  # type: ignore[no-untyped-def]
    """The confidential app's token request (Basic authentication) with a proof of ``key``."""
    nonce = None
    for _attempt in range(2):
        response = web.post(
            "/oauth2/token",
            data=code_fields(client_id, code, verifier),
            auth=(client_id, secret),
            headers={"DPoP": key.proof("POST", f"{ISSUER}/oauth2/token", nonce=nonce)},
        )
        nonce = response.headers.get("dpop-nonce")
        if response.status_code != 400 or response.json()["error"] != "use_dpop_nonce":
            break
    return response


def bound_code(web: TestClient, client_id: str, jkt: str) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    params = authorize_params(client_id, challenge, dpop_jkt=jkt)
    back = web.get("/oauth2/authorize", params=params)
    if back.status_code != 302:  # not signed in yet
        back = log_in(web, params, "nguyen.van.an", OFFICIAL_PASSWORD)
    return query_of(back.headers["location"])["code"], verifier


def test_the_code_is_redeemed_with_a_proof_of_its_key(
    web: TestClient, runtime: IdpRuntime, official: object
) -> None:
    client, _ = register_client(runtime, name="Ứng dụng di động", public=True)
    app = DpopApp(web)
    code, verifier = bound_code(web, client.client_id, app.key.jkt)
    tokens = app.post_token(code_fields(client.client_id, code, verifier))
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["token_type"] == "DPoP"
    assert claims_of(tokens.json()["access_token"])["cnf"] == {"jkt": app.key.jkt}


def test_another_key_or_no_proof_is_invalid_grant(
    web: TestClient, shared_app: tuple[str, str], official: object
) -> None:
    client_id, secret = shared_app
    key = DpopKey("ES256")
    code, verifier = bound_code(web, client_id, key.jkt)
    stolen = redeem_with_proof(web, DpopKey("ES256"), client_id, secret, code, verifier)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    code, verifier = bound_code(web, client_id, key.jkt)
    bearer = exchange_code(web, client_id, secret, code, verifier)
    assert bearer.status_code == 400
    assert bearer.json()["error"] == "invalid_grant"


def test_a_malformed_dpop_jkt_is_an_invalid_request(
    web: TestClient, shared_app: tuple[str, str]
) -> None:
    client_id, _ = shared_app
    _verifier, challenge = pkce_pair()
    refused = web.get(
        "/oauth2/authorize", params=authorize_params(client_id, challenge, dpop_jkt="not-a-jkt")
    )
    assert refused.status_code == 302
    assert query_of(refused.headers["location"])["error"] == "invalid_request"


def push_with_proof(web: TestClient, client_id: str, secret: str, key: DpopKey, **params: str):  # type: ignore[no-untyped-def]
    verifier, challenge = pkce_pair()
    fields = authorize_params(client_id, challenge, **params)
    del fields["client_id"]
    nonce = None
    for _attempt in range(2):
        pushed = web.post(
            PAR,
            data=fields,
            auth=(client_id, secret),
            headers={"DPoP": key.proof("POST", f"{ISSUER}{PAR}", nonce=nonce)},
        )
        nonce = pushed.headers.get("dpop-nonce")
        if pushed.status_code != 400 or pushed.json()["error"] != "use_dpop_nonce":
            break
    return pushed, verifier


def test_a_proof_sent_with_the_push_binds_the_code(
    web: TestClient, shared_app: tuple[str, str], official: object
) -> None:
    client_id, secret = shared_app
    app = DpopApp(web)
    pushed, verifier = push_with_proof(web, client_id, secret, app.key)
    assert pushed.status_code == 201, pushed.text
    login_form = open_login_form(
        web, {"client_id": client_id, "request_uri": pushed.json()["request_uri"]}
    )
    back = follow_to_client(web, submit_login(web, login_form, "nguyen.van.an", OFFICIAL_PASSWORD))
    code = query_of(back.headers["location"])["code"]
    other_key = DpopKey("ES256")
    refused = redeem_with_proof(web, other_key, client_id, secret, code, verifier)
    assert refused.json()["error"] == "invalid_grant"
    # The refused attempt used the code up (single use); a new one with the right key works.
    pushed, verifier = push_with_proof(web, client_id, secret, app.key)
    back = follow_to_client(
        web,
        web.get(
            "/oauth2/authorize",
            params={"client_id": client_id, "request_uri": pushed.json()["request_uri"]},
        ),
    )
    code = query_of(back.headers["location"])["code"]
    tokens = redeem_with_proof(web, app.key, client_id, secret, code, verifier)
    assert tokens.status_code == 200, tokens.text
    assert claims_of(tokens.json()["access_token"])["cnf"] == {"jkt": app.key.jkt}


def test_a_push_whose_dpop_jkt_is_not_its_proofs_key_is_refused(
    web: TestClient, shared_app: tuple[str, str]
) -> None:
    client_id, secret = shared_app
    key = DpopKey("ES256")
    pushed, _ = push_with_proof(web, client_id, secret, key, dpop_jkt=DpopKey("ES256").jkt)
    assert pushed.status_code == 400
    assert pushed.json()["error"] == "invalid_request"


def test_a_wrong_proof_at_the_push_is_refused(web: TestClient, shared_app: tuple[str, str]) -> None:
    client_id, secret = shared_app
    _verifier, challenge = pkce_pair()
    fields = authorize_params(client_id, challenge)
    del fields["client_id"]
    wrong_htu = DpopKey("ES256").proof("POST", f"{ISSUER}/oauth2/token")
    refused = web.post(PAR, data=fields, auth=(client_id, secret), headers={"DPoP": wrong_htu})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_dpop_proof"
    assert "dpop-nonce" in refused.headers
