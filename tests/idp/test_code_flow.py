"""The authorization code flow end to end through the real login form."""

from __future__ import annotations

import jwt as pyjwt
from jose import jwt as jose_jwt

from tests.conftest import ISSUER, OFFICIAL_PASSWORD, RP_REDIRECT
from tests.idp.oidc_flow import authorize_params, exchange_code, log_in, pkce_pair, query_of
from tests.sql_statements import statements_sent


def test_login_code_token_userinfo(web, rp, official):
    client, secret = rp
    verifier, challenge = pkce_pair()
    params = authorize_params(client.client_id, challenge)
    back = log_in(web, params, "nguyen.van.an", OFFICIAL_PASSWORD)
    assert back.status_code in (302, 303)  # 303: the answer to the login form's POST
    assert back.headers["location"].startswith(RP_REDIRECT + "?")
    reply = query_of(back.headers["location"])
    assert reply["state"] == params["state"]
    assert reply["iss"] == ISSUER  # RFC 9207

    token = exchange_code(web, client.client_id, secret, reply["code"], verifier)
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "Bearer"
    assert token.headers["cache-control"] == "no-store"
    jwks = web.get("/oauth2/jwks").json()

    header = pyjwt.get_unverified_header(body["id_token"])
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = pyjwt.decode(
        body["id_token"],
        pyjwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience=client.client_id,
        issuer=ISSUER,
    )
    assert claims["nonce"] == params["nonce"]
    assert claims["sub"] == official.subject
    assert claims["name"] == "Nguyễn Văn An"
    assert "at_hash" in claims and "auth_time" in claims and "sid" in claims

    at_claims = jose_jwt.decode(
        body["access_token"], jwks, algorithms=["RS256"], audience=client.client_id, issuer=ISSUER
    )
    assert jose_jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    assert at_claims["client_id"] == client.client_id

    info = web.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json()["sub"] == official.subject
    assert info.json()["email"] == "an.nv@laocai.gov.vn"


def test_a_password_sign_in_reads_and_writes_its_rows_once(web, runtime, rp, official):
    """Issue 15: a login's CPU besides the hash goes mostly to statements. The account comes
    with its second factors, the interaction is updated once, and on PostgreSQL the grant and
    its code are written by one statement."""
    client, secret = rp
    verifier, challenge = pkce_pair()
    engine = runtime.session_factory.kw["bind"]
    with statements_sent(engine) as sent:
        back = log_in(
            web, authorize_params(client.client_id, challenge), "nguyen.van.an", OFFICIAL_PASSWORD
        )
    code = query_of(back.headers["location"])["code"]
    assert exchange_code(web, client.client_id, secret, code, verifier).status_code == 200
    starts = [" ".join(statement.split())[:60] for statement in sent]
    assert not [
        s for s in starts if s.startswith(("SELECT idp_totp_credential", "SELECT idp_passkey"))
    ]
    assert len([s for s in starts if s.startswith("UPDATE idp_interaction")]) == 1
    code_inserts = [s for s in sent if "INSERT INTO idp_authorization_code" in s]
    assert len(code_inserts) == 1
    if engine.dialect.name == "postgresql":
        assert "INSERT INTO idp_grant" in code_inserts[0]


def test_second_authorization_uses_the_session(web, rp, official):
    client, _ = rp
    _, challenge = pkce_pair()
    log_in(web, authorize_params(client.client_id, challenge), "nguyen.van.an", OFFICIAL_PASSWORD)
    _, challenge = pkce_pair()
    again = web.get("/oauth2/authorize", params=authorize_params(client.client_id, challenge))
    assert again.status_code == 302
    assert "code=" in again.headers["location"]
