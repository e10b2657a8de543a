"""Codes, refresh tokens, revocation and client credentials: the lifecycle rules of issue 2."""

from __future__ import annotations

import jwt as pyjwt
import pytest

from core import audit
from core.db import transaction
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, register_client
from tests.idp.oidc_flow import authorize_params, exchange_code, log_in, pkce_pair, query_of


def signed_in_tokens(web, client_id, secret, **extra):
    verifier, challenge = pkce_pair()
    back = log_in(
        web, authorize_params(client_id, challenge, **extra), "nguyen.van.an", OFFICIAL_PASSWORD
    )
    code = query_of(back.headers["location"])["code"]
    response = exchange_code(web, client_id, secret, code, verifier)
    assert response.status_code == 200, response.text
    return code, verifier, response.json()


def refresh(web, client_id, secret, refresh_token):
    return web.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(client_id, secret),
    )


def userinfo_status(web, access_token):
    return web.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"}
    ).status_code


def introspect(web, client_id, secret, token):
    return web.post("/oauth2/introspect", data={"token": token}, auth=(client_id, secret)).json()


def test_code_is_single_use_and_replay_revokes_its_tokens(web, rp, official):
    client, secret = rp
    code, verifier, tokens = signed_in_tokens(web, client.client_id, secret)
    assert userinfo_status(web, tokens["access_token"]) == 200

    replay = exchange_code(web, client.client_id, secret, code, verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert userinfo_status(web, tokens["access_token"]) == 401
    assert refresh(web, client.client_id, secret, tokens["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )


def test_code_expires_after_sixty_seconds(web, rp, official, clock):
    client, secret = rp
    verifier, challenge = pkce_pair()
    back = log_in(
        web, authorize_params(client.client_id, challenge), "nguyen.van.an", OFFICIAL_PASSWORD
    )
    clock.advance(61)
    late = exchange_code(
        web, client.client_id, secret, query_of(back.headers["location"])["code"], verifier
    )
    assert late.json()["error"] == "invalid_grant"


def test_refresh_rotates_and_reuse_revokes_the_family(web, rp, official):
    client, secret = rp
    _, _, tokens = signed_in_tokens(web, client.client_id, secret)
    first = refresh(web, client.client_id, secret, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert userinfo_status(web, rotated["access_token"]) == 200

    reuse = refresh(web, client.client_id, secret, tokens["refresh_token"])
    assert reuse.json()["error"] == "invalid_grant"
    # The thief's use of the old token killed the whole family, the legitimate one included.
    assert refresh(web, client.client_id, secret, rotated["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )
    assert userinfo_status(web, rotated["access_token"]) == 401
    assert introspect(web, client.client_id, secret, rotated["refresh_token"]) == {"active": False}


def test_refresh_returns_an_id_token_without_nonce_and_with_original_auth_time(web, rp, official):
    client, secret = rp
    _, _, tokens = signed_in_tokens(web, client.client_id, secret)
    original = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    renewed = refresh(web, client.client_id, secret, tokens["refresh_token"]).json()
    claims = pyjwt.decode(renewed["id_token"], options={"verify_signature": False})
    assert "nonce" not in claims
    assert claims["auth_time"] == original["auth_time"]
    assert claims["sub"] == original["sub"] and claims["aud"] == client.client_id


def test_refresh_tokens_are_stored_only_as_digests(web, rp, official, runtime):
    client, secret = rp
    _, _, tokens = signed_in_tokens(web, client.client_id, secret)
    with transaction(runtime.session_factory) as session:
        from idp.models import RefreshToken

        stored = [row.token_digest for row in session.query(RefreshToken)]
    assert stored and tokens["refresh_token"] not in stored
    assert all(len(value) == 64 for value in stored)


def test_revoking_a_refresh_token_ends_the_grant(web, rp, official):
    client, secret = rp
    _, _, tokens = signed_in_tokens(web, client.client_id, secret)
    revoked = web.post(
        "/oauth2/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(client.client_id, secret),
    )
    assert revoked.status_code == 200
    assert userinfo_status(web, tokens["access_token"]) == 401
    assert refresh(web, client.client_id, secret, tokens["refresh_token"]).status_code == 400


def test_revoking_an_access_token_only_ends_that_token(web, rp, official):
    client, secret = rp
    _, _, tokens = signed_in_tokens(web, client.client_id, secret)
    web.post(
        "/oauth2/revoke", data={"token": tokens["access_token"]}, auth=(client.client_id, secret)
    )
    assert userinfo_status(web, tokens["access_token"]) == 401
    assert introspect(web, client.client_id, secret, tokens["access_token"]) == {"active": False}
    assert refresh(web, client.client_id, secret, tokens["refresh_token"]).status_code == 200


def test_introspection_describes_an_active_access_token(web, rp, official):
    client, secret = rp
    _, _, tokens = signed_in_tokens(web, client.client_id, secret)
    info = introspect(web, client.client_id, secret, tokens["access_token"])
    assert info["active"] is True
    assert info["sub"] == official.subject
    assert info["username"] == "nguyen.van.an"
    assert info["client_id"] == client.client_id
    assert info["iss"] == ISSUER
    assert set(info["scope"].split()) == {"openid", "profile", "email", "offline_access"}


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_client_credentials_issue_rfc9068_tokens(web, runtime, alg):
    client, secret = register_client(
        runtime,
        name="Dịch vụ báo cáo",
        redirect_uris=[],
        post_logout_redirect_uris=[],
        grant_types=["client_credentials"],
        scope="openid profile",
        access_token_alg=alg,
    )
    response = web.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, secret)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body and "id_token" not in body
    assert body["scope"] == "profile"
    jwks = web.get("/oauth2/jwks").json()
    header = pyjwt.get_unverified_header(body["access_token"])
    assert header["alg"] == alg and header["typ"] == "at+jwt"
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = pyjwt.decode(
        body["access_token"],
        pyjwt.PyJWK(key).key,
        algorithms=[alg],
        audience=client.client_id,
        issuer=ISSUER,
    )
    assert claims["sub"] == client.client_id and claims["client_id"] == client.client_id
    assert {"iat", "exp", "jti"} <= claims.keys()
    assert userinfo_status(web, body["access_token"]) == 403


def test_public_client_uses_pkce_without_a_secret(web, runtime, official):
    client, secret = register_client(runtime, name="Ứng dụng di động", public=True)
    assert secret is None
    _, _, tokens = signed_in_tokens(web, client.client_id, None)
    assert "refresh_token" in tokens
    renewed = web.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client.client_id,
        },
    )
    assert renewed.status_code == 200, renewed.text


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_id_token_algorithm_follows_the_client(web, runtime, official, alg):
    client, secret = register_client(runtime, id_token_alg=alg)
    _, _, tokens = signed_in_tokens(web, client.client_id, secret)
    assert pyjwt.get_unverified_header(tokens["id_token"])["alg"] == alg


def test_no_nonce_means_no_nonce_claim(web, rp, official):
    client, secret = rp
    verifier, challenge = pkce_pair()
    params = authorize_params(client.client_id, challenge)
    del params["nonce"]
    back = log_in(web, params, "nguyen.van.an", OFFICIAL_PASSWORD)
    tokens = exchange_code(
        web, client.client_id, secret, query_of(back.headers["location"])["code"], verifier
    ).json()
    assert "nonce" not in pyjwt.decode(tokens["id_token"], options={"verify_signature": False})


def test_audit_chain_records_the_login_and_stays_intact(web, rp, official, runtime):
    client, secret = rp
    signed_in_tokens(web, client.client_id, secret)
    with transaction(runtime.session_factory) as session:
        actions = [entry.action for entry in audit.tail(session, limit=50)]
        result = audit.verify(session)
    assert "login.success" in actions and "account.create" in actions
    assert result.ok, result.problems


def test_generated_client_ids_are_safe_on_a_command_line(runtime):
    # token_urlsafe ids sometimes began with "-", which `commune-sso client remove` took for
    # an option (a flaky CLI test found it).
    for _ in range(50):
        client, _ = register_client(runtime, name="Ứng dụng")
        assert client.client_id[0].isalnum()
