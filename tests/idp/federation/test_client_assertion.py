"""private_key_jwt at the upstream's token endpoint (RFC 7523 §3, OIDC Core §9): the assertion
is signed by our key ring, so the upstream verifies it with the keys at our jwks_uri."""

from __future__ import annotations

from idp.federation.token_request import TokenRequest, client_assertion
from idp.runtime import IdpRuntime

TOKEN_ENDPOINT = "https://sso.example.gov.vn/oauth2/token"


def test_the_assertion_names_us_and_the_token_endpoint(runtime: IdpRuntime) -> None:
    request = TokenRequest(
        token_endpoint=TOKEN_ENDPOINT,
        jwks_uri="https://sso.example.gov.vn/oauth2/jwks",
        client_id="commune-sso-laocai",
        client_secret=None,
        auth_method="private_key_jwt",
        redirect_uri="http://127.0.0.1:8000/login/upstream/vneid/callback",
        code="c",
        code_verifier="v",
    )
    now = runtime.clock.now()
    first = client_assertion(request, keyring=runtime.keyring, now=now)
    second = client_assertion(request, keyring=runtime.keyring, now=now)
    token = runtime.keyring.verify_jwt(first, now=now)
    claims = dict(token.claims)
    assert token.header["alg"] == "RS256"
    assert claims["iss"] == claims["sub"] == "commune-sso-laocai"
    assert claims["aud"] == TOKEN_ENDPOINT
    assert 0 < claims["exp"] - claims["iat"] <= 60
    # A fresh jti each time: the upstream may refuse a replayed assertion.
    assert claims["jti"] != dict(runtime.keyring.verify_jwt(second, now=now).claims)["jti"]
