"""DPoP (RFC 9449): proofs at the token endpoint and at userinfo, server nonces, tokens and a
public client's refresh tokens bound to the key, introspection showing the binding, and each
refusal the RFC names — wrong htu or htm, a replayed proof (on another worker too), a stale
nonce, a token used without its key or as a bearer token, a missing ath. The fast paths (token
state cache, client cache) must not let a bound token through."""

from __future__ import annotations

from typing import Any

import jwt as pyjwt
import pytest
from starlette.testclient import TestClient

from commune_sso.app import build_runtime, create_app
from core.clock import FixedClock
from core.settings import Settings
from idp.clients import ClientSettings
from idp.runtime import IdpRuntime
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, RP_REDIRECT, register_client
from tests.idp.fapi.client_keys import AppKey, DpopKey
from tests.idp.oidc_flow import authorize_params, log_in, pkce_pair, query_of

TOKEN = f"{ISSUER}/oauth2/token"
USERINFO = f"{ISSUER}/oauth2/userinfo"


def claims_of(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


class DpopApp:
    """A client holding a DPoP key, remembering the server's latest nonce (§8)."""

    def __init__(self, web: TestClient, key: DpopKey | None = None) -> None:
        self.web, self.key, self.nonce = web, key or DpopKey("ES256"), None

    def post_token(self, fields: dict[str, str], **proof: Any):  # type: ignore[no-untyped-def]
        for _attempt in range(2):
            response = self.web.post(
                "/oauth2/token",
                data=fields(self) if callable(fields) else fields,
                headers={"DPoP": self.key.proof("POST", TOKEN, nonce=self.nonce, **proof)},
            )
            self.nonce = response.headers.get("dpop-nonce", self.nonce)
            if response.status_code != 400 or response.json()["error"] != "use_dpop_nonce":
                return response
        return response

    def userinfo(self, token: str, **proof: Any):  # type: ignore[no-untyped-def]
        for _attempt in range(2):
            response = self.web.get(
                "/oauth2/userinfo",
                headers={
                    "Authorization": f"DPoP {token}",
                    "DPoP": self.key.proof(
                        "GET", USERINFO, nonce=self.nonce, access_token=token, **proof
                    ),
                },
            )
            self.nonce = response.headers.get("dpop-nonce", self.nonce)
            if 'error="use_dpop_nonce"' not in response.headers.get("www-authenticate", ""):
                return response
        return response


@pytest.fixture
def service_key() -> AppKey:
    return AppKey("ES256")


@pytest.fixture
def service_id(runtime: IdpRuntime, service_key: AppKey) -> str:
    client, _ = register_client(
        runtime,
        name="Dịch vụ FAPI",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="profile",
        auth_method="private_key_jwt",
        keys=ClientSettings(name="", jwks=service_key.jwks, dpop_bound_access_tokens=True),
    )
    return client.client_id


def service_fields(service_key: AppKey, service_id: str):  # type: ignore[no-untyped-def]
    return lambda _app: {
        "grant_type": "client_credentials",
        **service_key.assertion_fields(service_id),
    }


def test_discovery_lists_the_dpop_algorithms(web: TestClient) -> None:
    algs = web.get("/.well-known/openid-configuration").json()["dpop_signing_alg_values_supported"]
    assert {"ES256", "PS256", "EdDSA"} <= set(algs) and "HS256" not in algs


def test_nonce_first_then_a_dpop_bound_token(
    web: TestClient, service_key: AppKey, service_id: str
) -> None:
    app = DpopApp(web)
    first = web.post(
        "/oauth2/token",
        data=service_fields(service_key, service_id)(app),
        headers={"DPoP": app.key.proof("POST", TOKEN)},
    )
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
    assert first.headers["dpop-nonce"]
    app.nonce = first.headers["dpop-nonce"]
    response = app.post_token(service_fields(service_key, service_id))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": app.key.jkt}
    introspected = web.post(
        "/oauth2/introspect",
        data={"token": body["access_token"], **service_key.assertion_fields(service_id)},
    ).json()
    assert introspected["active"] is True
    assert introspected["cnf"] == {"jkt": app.key.jkt}
    assert introspected["token_type"] == "DPoP"


@pytest.mark.parametrize(
    ("proof", "why"),
    [
        ({"htu": f"{ISSUER}/oauth2/introspect"}, "htu"),
        ({"htm": "GET"}, "htm"),
        ({"iat": 1_000_000_000}, "iat"),
        ({"typ": None}, None),
    ],
)
def test_token_endpoint_refuses_a_wrong_proof(
    web: TestClient, service_key: AppKey, service_id: str, proof: dict[str, Any], why: str | None
) -> None:
    app = DpopApp(web)
    app.post_token(service_fields(service_key, service_id))  # learn a nonce
    if proof.get("typ", 0) is None:
        forged = app.key.sign(
            {"jti": "x", "htm": "POST", "htu": TOKEN, "iat": 0, "nonce": app.nonce},
            jwk=app.key.key.as_dict(private=False),
        )  # typ missing: not a DPoP proof
    else:
        forged = app.key.proof("POST", TOKEN, nonce=app.nonce, **proof)
    refused = web.post(
        "/oauth2/token", data=service_fields(service_key, service_id)(app), headers={"DPoP": forged}
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_dpop_proof"
    if why:
        assert why in refused.json()["error_description"]


def test_replayed_proof_is_refused_on_every_worker(
    web: TestClient, service_key: AppKey, service_id: str, settings: Settings, clock: FixedClock
) -> None:
    app = DpopApp(web)
    assert app.post_token(service_fields(service_key, service_id)).status_code == 200
    proof = app.key.proof("POST", TOKEN, nonce=app.nonce)
    fields = service_fields(service_key, service_id)
    assert web.post("/oauth2/token", data=fields(app), headers={"DPoP": proof}).status_code == 200
    replayed = web.post("/oauth2/token", data=fields(app), headers={"DPoP": proof})
    assert replayed.json()["error"] == "invalid_dpop_proof"
    other_worker = build_runtime(settings, clock)
    try:
        with TestClient(create_app(settings, runtime=other_worker), base_url=ISSUER) as other:
            fresh = app.key.proof("POST", TOKEN, nonce=app.nonce)
            assert (
                other.post("/oauth2/token", data=fields(app), headers={"DPoP": fresh}).status_code
                == 200
            )
            again = web.post("/oauth2/token", data=fields(app), headers={"DPoP": fresh})
            assert again.json()["error"] == "invalid_dpop_proof"
    finally:
        other_worker.session_factory.kw["bind"].dispose()


def test_stale_nonce_asks_for_a_new_one(
    web: TestClient, service_key: AppKey, service_id: str, clock: FixedClock
) -> None:
    app = DpopApp(web)
    assert app.post_token(service_fields(service_key, service_id)).status_code == 200
    stale = app.nonce
    clock.advance(300)  # two nonce windows later
    refused = web.post(
        "/oauth2/token",
        data=service_fields(service_key, service_id)(app),
        headers={
            "DPoP": app.key.proof("POST", TOKEN, nonce=stale, iat=int(clock.now().timestamp()))
        },
    )
    assert refused.json()["error"] == "use_dpop_nonce"
    assert refused.headers["dpop-nonce"] != stale


def test_a_client_registered_for_dpop_needs_a_proof(
    web: TestClient, service_key: AppKey, service_id: str
) -> None:
    refused = web.post("/oauth2/token", data=service_fields(service_key, service_id)(None))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_dpop_proof"


def test_the_fast_path_does_not_skip_dpop_for_a_secret_client(
    runtime: IdpRuntime, web: TestClient
) -> None:
    client, secret = register_client(
        runtime,
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="profile",
        keys=ClientSettings(name="", dpop_bound_access_tokens=True),
    )
    assert secret is not None
    for _ in range(2):  # the second request finds the client cached
        refused = web.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client.client_id, secret),
        )
        assert refused.json()["error"] == "invalid_dpop_proof"


@pytest.fixture
def public_app(runtime: IdpRuntime) -> str:
    client, _ = register_client(runtime, name="Ứng dụng di động", public=True)
    return client.client_id


def dpop_sign_in(web: TestClient, app: DpopApp, client_id: str) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    back = log_in(web, authorize_params(client_id, challenge), "nguyen.van.an", OFFICIAL_PASSWORD)
    code = query_of(back.headers["location"])["code"]
    response = app.post_token(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": RP_REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
        }
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_userinfo_needs_the_key_of_a_bound_token(
    web: TestClient, public_app: str, official: object
) -> None:
    app = DpopApp(web)
    tokens = dpop_sign_in(web, app, public_app)
    access = tokens["access_token"]
    assert tokens["token_type"] == "DPoP"
    ok = app.userinfo(access)
    assert ok.status_code == 200, ok.text
    assert ok.json()["preferred_username"] == "nguyen.van.an"
    # Twice: the second answer may come from the token state cache; the binding still holds.
    for _ in range(2):
        as_bearer = web.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {access}"})
        assert as_bearer.status_code == 401
        assert 'error="invalid_token"' in as_bearer.headers["www-authenticate"]
    thief = DpopApp(web, DpopKey("ES256"))
    thief.nonce = app.nonce
    stolen = thief.userinfo(access)
    assert stolen.status_code == 401 and "not bound to this DPoP key" in stolen.text
    no_ath = app.userinfo(access, ath=None)
    assert no_ath.status_code == 401 and "ath" in no_ath.json()["error_description"]
    wrong_htu = app.userinfo(access, htu=TOKEN)
    assert (
        wrong_htu.status_code == 401
        and 'error="invalid_dpop_proof"' in wrong_htu.headers["www-authenticate"]
    )
    proof = app.key.proof("GET", USERINFO, nonce=app.nonce, access_token=access)
    headers = {"Authorization": f"DPoP {access}", "DPoP": proof}
    assert web.get("/oauth2/userinfo", headers=headers).status_code == 200
    replayed = web.get("/oauth2/userinfo", headers=headers)
    assert replayed.status_code == 401 and "already used" in replayed.text


def test_a_public_clients_refresh_token_is_bound_to_its_key(
    web: TestClient, public_app: str, official: object
) -> None:
    app = DpopApp(web)
    tokens = dpop_sign_in(web, app, public_app)
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": public_app,
    }
    thief = DpopApp(web, DpopKey("ES256"))
    stolen = thief.post_token(refresh)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    without_proof = web.post("/oauth2/token", data=refresh)
    assert without_proof.json()["error"] == "invalid_grant"
    renewed = app.post_token(refresh)
    assert renewed.status_code == 200, renewed.text
    assert claims_of(renewed.json()["access_token"])["cnf"] == {"jkt": app.key.jkt}


CA_VALIDATIONS = "/ca/api/v1/validations"


def test_the_ca_api_takes_a_dpop_bound_token_only_with_its_proof(
    web: TestClient, runtime: IdpRuntime
) -> None:
    """RFC 9449 §7.1 at the CA API as at userinfo: the bound token as a plain bearer token is
    refused; with the DPoP scheme it needs a proof of its key for this request (htm, htu, ath)
    carrying our nonce. Authenticated, the unreadable document is what is refused (422)."""
    key = AppKey("ES256")
    client, _ = register_client(
        runtime,
        name="Ứng dụng kiểm tra chữ ký",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="ca:validate",
        auth_method="private_key_jwt",
        keys=ClientSettings(name="", jwks=key.jwks, dpop_bound_access_tokens=True),
    )
    app = DpopApp(web)
    issued = app.post_token(service_fields(key, client.client_id))
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    url = f"{ISSUER}{CA_VALIDATIONS}"

    def post(authorization: str, proof: str | None) -> Any:
        headers = {"Authorization": authorization, "Content-Type": "application/pdf"}
        if proof is not None:
            headers["DPoP"] = proof
        return web.post(CA_VALIDATIONS, content=b"not a pdf", headers=headers)

    as_bearer = post(f"Bearer {token}", None)
    assert as_bearer.status_code == 401
    assert 'error="invalid_token"' in as_bearer.headers["www-authenticate"]

    without_nonce = post(f"DPoP {token}", app.key.proof("POST", url, access_token=token))
    assert without_nonce.status_code == 401
    assert without_nonce.headers["www-authenticate"].startswith("DPoP ")
    assert 'error="use_dpop_nonce"' in without_nonce.headers["www-authenticate"]
    nonce = without_nonce.headers["dpop-nonce"]

    other_key = DpopKey("ES256")
    refused = {
        "another key": other_key.proof("POST", url, nonce=nonce, access_token=token),
        "another URL": app.key.proof(
            "POST", f"{ISSUER}/oauth2/userinfo", nonce=nonce, access_token=token
        ),
        "no ath": app.key.proof("POST", url, nonce=nonce),
    }
    for why, proof in refused.items():
        answer = post(f"DPoP {token}", proof)
        assert answer.status_code == 401, why
        assert answer.headers["www-authenticate"].startswith("DPoP "), why

    accepted = post(f"DPoP {token}", app.key.proof("POST", url, nonce=nonce, access_token=token))
    assert accepted.status_code == 422, accepted.text
    assert accepted.json()["error"] == "unreadable_document"
