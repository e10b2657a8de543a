"""Signed request objects (RFC 9101, OIDC Core §6.1): by value at the authorization endpoint
and inside a pushed request, their parameters replacing the query's (§6.3), and the refusals
§6.3 names — bad signature, wrong aud, expired, unsigned (alg none), another client's, a
replayed jti — plus require_signed_request_object per client (§10.5)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from idp.clients import ClientSettings
from idp.oauth.client_signed_jwts import CLIENT_SIGNING_ALGORITHMS
from idp.runtime import IdpRuntime
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, RP_REDIRECT, register_client
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
AUTHORIZE = "/oauth2/authorize"


class SigningApp:
    """A confidential app with a secret for the token endpoint and a key for its requests."""

    def __init__(
        self, runtime: IdpRuntime, *, require_signed: bool = False, alg: str = "ES256"
    ) -> None:
        self.key = AppKey(alg)
        client, secret = register_client(
            runtime,
            keys=ClientSettings(
                name="", jwks=self.key.jwks, require_signed_request_object=require_signed
            ),
        )
        assert secret is not None
        self.client_id, self.secret = client.client_id, secret
        self.verifier, challenge = pkce_pair()
        self.params = authorize_params(self.client_id, challenge)

    def request_object(self, key: AppKey | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            **self.params,
            "iss": self.client_id,
            "aud": ISSUER,
            "iat": now,
            "nbf": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(overrides)
        header = {"typ": "oauth-authz-req+jwt"}
        return (key or self.key).sign({k: v for k, v in claims.items() if v is not None}, **header)


@pytest.fixture
def app_with_key(runtime: IdpRuntime) -> SigningApp:
    return SigningApp(runtime)


def sign_in(web: TestClient, params: dict[str, str]):  # type: ignore[no-untyped-def]
    login_form = open_login_form(web, params)
    assert login_form.status_code == 200, login_form.text
    submitted = submit_login(web, login_form, "nguyen.van.an", OFFICIAL_PASSWORD)
    return follow_to_client(web, submitted)


def test_discovery_advertises_request_objects_by_value_only(web: TestClient) -> None:
    metadata = web.get("/.well-known/openid-configuration").json()
    assert metadata["request_parameter_supported"] is True
    assert metadata["request_uri_parameter_supported"] is False
    assert metadata["require_signed_request_object"] is False
    assert "none" not in metadata["request_object_signing_alg_values_supported"]
    assert "ES256" in metadata["request_object_signing_alg_values_supported"]


@pytest.mark.parametrize("alg", CLIENT_SIGNING_ALGORITHMS)
def test_every_advertised_alg_signs_a_request_object(
    runtime: IdpRuntime, web: TestClient, alg: str
) -> None:
    app = SigningApp(runtime, alg=alg)
    accepted = web.get(
        AUTHORIZE, params={"client_id": app.client_id, "request": app.request_object()}
    )
    assert accepted.status_code == 303, accepted.text  # to the login page


def test_request_object_parameters_replace_the_query_ones(
    web: TestClient, app_with_key: SigningApp, official: object
) -> None:
    app = app_with_key
    signed = app.request_object(state="from-the-object", max_age=3600)
    # The query carries other values; only the request object's count (RFC 9101 §6.3).
    query = {
        "client_id": app.client_id,
        "request": signed,
        "state": "from-the-query",
        "scope": "openid",
        "redirect_uri": "https://evil.example/cb",
    }
    back = sign_in(web, query)
    assert back.headers["location"].startswith(RP_REDIRECT)
    answer = query_of(back.headers["location"])
    assert answer["state"] == "from-the-object"
    tokens = exchange_code(web, app.client_id, app.secret, answer["code"], app.verifier)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "openid profile email offline_access"


def test_a_pushed_request_object(
    web: TestClient, app_with_key: SigningApp, official: object
) -> None:
    app = app_with_key
    pushed = web.post(PAR, data={"request": app.request_object()}, auth=(app.client_id, app.secret))
    assert pushed.status_code == 201, pushed.text
    back = sign_in(web, {"client_id": app.client_id, "request_uri": pushed.json()["request_uri"]})
    answer = query_of(back.headers["location"])
    assert answer["state"] == app.params["state"]
    tokens = exchange_code(web, app.client_id, app.secret, answer["code"], app.verifier)
    assert tokens.status_code == 200, tokens.text


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'oauth-authz-req+jwt'})}.{part(claims)}."


REFUSED = {
    "bad-signature": lambda app: app.request_object(key=AppKey("ES256")),
    "wrong-aud": lambda app: app.request_object(aud="https://other.example"),
    "expired": lambda app: app.request_object(exp=int(time.time()) - 120),
    "no-exp": lambda app: app.request_object(exp=None),
    "too-long-lived": lambda app: app.request_object(exp=int(time.time()) + 7200),
    "nbf-in-the-future": lambda app: app.request_object(nbf=int(time.time()) + 600),
    "alg-none": lambda app: unsigned({**app.params, "iss": app.client_id, "aud": ISSUER}),
    "hmac": lambda app: hmac_signed(app),
    "iss-not-the-client": lambda app: app.request_object(iss="another-app"),
    "client-id-mismatch": lambda app: app.request_object(client_id="another-app"),
    "wrong-typ": lambda app: app.key.sign(
        {**app.params, "iss": app.client_id, "aud": ISSUER, "exp": int(time.time()) + 60},
        typ="dpop+jwt",
    ),
    "nested-request-uri": lambda app: app.request_object(request_uri="https://rp.example/r"),
}


def hmac_signed(app: SigningApp) -> str:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    claims = {**app.params, "iss": app.client_id, "aud": ISSUER, "exp": int(time.time()) + 60}
    return jwt.encode({"alg": "HS256"}, claims, OctKey.generate_key(256), algorithms=["HS256"])


@pytest.mark.parametrize("case", REFUSED)
def test_refused_request_objects(web: TestClient, app_with_key: SigningApp, case: str) -> None:
    app = app_with_key
    request_object = REFUSED[case](app)
    refused = web.get(AUTHORIZE, params={"client_id": app.client_id, "request": request_object})
    # Without a redirect_uri in the query, an object not believed shows our page; a verified
    # one's errors go to its (registered) redirect_uri with its state.
    if refused.status_code == 302:
        answer = query_of(refused.headers["location"])
        assert refused.headers["location"].startswith(RP_REDIRECT)
        assert answer["error"] == "invalid_request_object", answer
        assert answer["state"] == app.params["state"]
        assert answer["iss"] == ISSUER
    else:
        assert refused.status_code == 400
        assert "invalid_request_object" in refused.text
    # At the PAR endpoint: a JSON error (RFC 9126 §2.3).
    pushed = web.post(PAR, data={"request": request_object}, auth=(app.client_id, app.secret))
    assert pushed.status_code == 400
    assert pushed.json()["error"] == "invalid_request_object"


def test_a_refusal_goes_to_the_querys_registered_redirect_uri(
    web: TestClient, app_with_key: SigningApp
) -> None:
    app = app_with_key
    forged = app.request_object(key=AppKey("ES256"))
    refused = web.get(
        AUTHORIZE,
        params={
            "client_id": app.client_id,
            "request": forged,
            "redirect_uri": RP_REDIRECT,
            "state": "q",
        },
    )
    assert refused.status_code == 302
    answer = query_of(refused.headers["location"])
    assert (answer["error"], answer["state"]) == ("invalid_request_object", "q")


def test_a_replayed_request_object_is_refused(
    web: TestClient, app_with_key: SigningApp, official: object
) -> None:
    app = app_with_key
    params = {"client_id": app.client_id, "request": app.request_object()}
    first = web.get(AUTHORIZE, params=params)
    # Not the form inline: its language links would send the object again.
    assert first.status_code == 303
    again = web.get(AUTHORIZE, params=params)
    assert again.status_code == 302
    assert query_of(again.headers["location"])["error"] == "invalid_request_object"


def test_the_query_client_id_must_be_the_objects(
    runtime: IdpRuntime, web: TestClient, app_with_key: SigningApp
) -> None:
    other = SigningApp(runtime)
    # The other app's key does not verify a request object in app_with_key's name...
    refused = web.get(
        AUTHORIZE,
        params={"client_id": other.client_id, "request": app_with_key.request_object()},
    )
    assert refused.status_code == 400 and "invalid_request_object" in refused.text
    # ... nor does its own object pass under another client_id.
    mixed = web.get(
        AUTHORIZE,
        params={"client_id": app_with_key.client_id, "request": other.request_object()},
    )
    assert mixed.status_code == 400 and "invalid_request_object" in mixed.text


def test_a_client_without_keys_gets_request_not_supported(
    runtime: IdpRuntime, web: TestClient
) -> None:
    client, _ = register_client(runtime)
    _verifier, challenge = pkce_pair()
    params = authorize_params(client.client_id, challenge, request="eyJhbGciOiJub25lIn0.e30.")
    refused = web.get(AUTHORIZE, params=params)
    assert query_of(refused.headers["location"])["error"] == "request_not_supported"


def test_a_client_that_must_sign_sends_only_request_objects(
    runtime: IdpRuntime, web: TestClient, official: object
) -> None:
    app = SigningApp(runtime, require_signed=True)
    plain = web.get(AUTHORIZE, params=app.params)
    assert plain.status_code == 302
    assert query_of(plain.headers["location"])["error"] == "invalid_request"
    plain_push = web.post(
        PAR,
        data={k: v for k, v in app.params.items() if k != "client_id"},
        auth=(app.client_id, app.secret),
    )
    assert plain_push.status_code == 400 and plain_push.json()["error"] == "invalid_request"
    pushed = web.post(PAR, data={"request": app.request_object()}, auth=(app.client_id, app.secret))
    assert pushed.status_code == 201
    back = sign_in(web, {"client_id": app.client_id, "request_uri": pushed.json()["request_uri"]})
    assert "code" in query_of(back.headers["location"])
    # Signed in already: the code comes back at once.
    by_value = web.get(
        AUTHORIZE, params={"client_id": app.client_id, "request": app.request_object()}
    )
    assert "code" in query_of(by_value.headers["location"])


def test_require_signed_request_object_needs_keys(runtime: IdpRuntime) -> None:
    from core.errors import DomainError

    with pytest.raises(DomainError) as refused:
        register_client(runtime, keys=ClientSettings(name="", require_signed_request_object=True))
    assert "JWK Set" in str(refused.value.text())


def test_cli_registers_a_client_that_must_sign_its_requests(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    key = AppKey()
    jwks_file = tmp_path / "app-jwks.json"
    jwks_file.write_text(json.dumps(key.jwks))
    data = cli.json(
        "client",
        "add",
        "--name",
        "Cổng dịch vụ công",
        "--redirect-uri",
        RP_REDIRECT,
        "--jwks-file",
        str(jwks_file),
        "--require-signed-request-object",
        "--json",
    )
    assert data["require_signed_request_object"] is True
    assert data["token_endpoint_auth_method"] == "client_secret_basic"
    refused = cli(
        "client",
        "add",
        "--name",
        "X",
        "--redirect-uri",
        RP_REDIRECT,
        "--require-signed-request-object",
    )
    assert refused.exit_code != 0
    assert "JWK Set" in refused.output


def test_deeply_nested_json_is_refused_not_a_server_error(
    web: TestClient, app_with_key: SigningApp
) -> None:
    """json.loads recurses (PITFALLS): a header nested thousands deep is a refusal."""
    nested = base64.urlsafe_b64encode(b"[" * 11000).rstrip(b"=").decode()
    request_object = f"{nested}.e30.c2ln"
    refused = web.get(
        AUTHORIZE, params={"client_id": app_with_key.client_id, "request": request_object}
    )
    assert refused.status_code == 400 and "invalid_request_object" in refused.text
    assertion = web.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": f"e30.{nested}.c2ln",
        },
    )
    assert assertion.status_code in (400, 401)
    proof = web.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"DPoP": f"{nested[:7000]}.e30.c2ln"},
    )
    assert proof.status_code == 400 and proof.json()["error"] == "invalid_dpop_proof"
