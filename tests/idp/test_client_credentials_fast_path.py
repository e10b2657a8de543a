"""The token endpoint's fast path for client_credentials (idp/oauth/client_credentials.py).

Each request is sent both to the real app and to the general path alone (Authlib in a worker
thread, as every token request was answered before the fast path existed), sharing one
runtime: the same clock, keys and client cache. A fast-path token must be the general path's
token in every respect but its jti; every error must be the general path's error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidScopeError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jose import jwt as jose_jwt
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from core.db import transaction
from idp import clients, request_scope
from idp.claims import SUPPORTED_SCOPES
from idp.clients import ClientCache
from idp.oauth.client_credentials import form_fields, granted_scope, is_supported_scope
from idp.oauth.endpoints.token import token_exchange
from idp.runtime import IdpRuntime
from keys.keyring import _REGISTRIES, SUPPORTED_ALGORITHMS, KeyRing
from tests.conftest import ISSUER, register_client

FORM = "application/x-www-form-urlencoded"
COMPARED_HEADERS = ("content-type", "content-length", "cache-control", "pragma", "www-authenticate")


# --- Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def general(runtime: IdpRuntime) -> Iterator[TestClient]:
    """The token endpoint without the fast path: the general path only."""

    async def general_token_endpoint(request: Request) -> Response:
        return await request_scope.run_in_request_scope(request, token_exchange)

    app = Starlette(routes=[Route("/oauth2/token", general_token_endpoint, methods=["POST"])])
    app.state.idp = runtime
    with TestClient(app, base_url=ISSUER) as client:
        yield client


def service_client(
    runtime: IdpRuntime,
    *,
    alg: str = "RS256",
    method: str = "client_secret_basic",
    scope: str = "openid profile email scim",
) -> tuple[str, str]:
    client, secret = register_client(
        runtime,
        name="Dịch vụ đồng bộ",
        grant_types=["client_credentials"],
        redirect_uris=[],
        post_logout_redirect_uris=[],
        scope=scope,
        access_token_alg=alg,
        auth_method=method,
        first_party=False,
    )
    assert secret is not None
    return client.client_id, secret


def token_request(
    http: TestClient,
    client_id: str,
    secret: str,
    *,
    method: str = "client_secret_basic",
    **fields: str,
) -> httpx.Response:
    data = {"grant_type": "client_credentials", **fields}
    if method == "client_secret_basic":
        return http.post("/oauth2/token", data=data, auth=(client_id, secret))
    return http.post(
        "/oauth2/token", data={**data, "client_id": client_id, "client_secret": secret}
    )


def b64url_json(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def header_and_claims(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims, _ = token.split(".")
    return b64url_json(header), b64url_json(claims)


def assert_same_response(fast: httpx.Response, general: httpx.Response) -> None:
    """Status, the headers a client reads, and the body (for a token: all but the jti)."""
    assert fast.status_code == general.status_code, (fast.text, general.text)
    for name in COMPARED_HEADERS:
        assert fast.headers.get(name) == general.headers.get(name), name
    fast_body, general_body = fast.json(), general.json()
    if "access_token" not in general_body:
        assert fast_body == general_body
        return
    assert (
        list(fast_body)
        == list(general_body)
        == [
            "access_token",
            "token_type",
            "expires_in",
            "scope",
        ]
    )
    fast_header, fast_claims = header_and_claims(fast_body.pop("access_token"))
    general_header, general_claims = header_and_claims(general_body.pop("access_token"))
    assert fast_body == general_body
    assert fast_header == general_header
    assert list(fast_header) == ["alg", "kid", "typ"]
    assert fast_claims.pop("jti") != general_claims.pop("jti")
    assert list(fast_claims) == list(general_claims)
    assert fast_claims == general_claims


def verify_with_other_libraries(runtime: IdpRuntime, token: str, client_id: str, alg: str) -> None:
    """What resource servers built on PyJWT or python-jose do (as in test_interoperability)."""
    jwks = runtime.keyring.public_jwks(now=runtime.clock.now())
    keys = {key["kid"]: key for key in jwks["keys"]}
    jwk = keys[pyjwt.get_unverified_header(token)["kid"]]
    claims = pyjwt.decode(
        token,
        pyjwt.PyJWK(jwk).key,
        algorithms=[alg],
        audience=client_id,
        issuer=ISSUER,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
    )
    assert claims["client_id"] == claims["sub"] == client_id
    assert (
        jose_jwt.decode(token, jwk, algorithms=[alg], audience=client_id, issuer=ISSUER) == claims
    )


# --- The fast path answers like the general path ---------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_fast_path_token_is_the_general_paths_token(web, general, runtime, hops, alg, method):
    client_id, secret = service_client(runtime, alg=alg, method=method)
    reference = token_request(general, client_id, secret, method=method)  # also fills the cache
    assert reference.status_code == 200, reference.text
    hops.clear()

    fast = token_request(web, client_id, secret, method=method)

    assert hops == []  # answered on the event loop: no worker thread, no database session
    assert_same_response(fast, reference)
    token = fast.json()["access_token"]
    header, claims = header_and_claims(token)
    assert header == {
        "alg": alg,
        "kid": runtime.keyring.keys()[SUPPORTED_ALGORITHMS.index(alg)].kid,
        "typ": "at+jwt",
    }
    assert claims["scope"] == "profile email scim"
    assert claims["exp"] - claims["iat"] == runtime.settings.access_token_ttl
    verify_with_other_libraries(runtime, token, client_id, alg)


@pytest.mark.parametrize(
    "scope",
    [
        None,
        "",
        " ",
        "profile",
        "scim email",
        " email\tprofile  email ",
        "openid profile",
        "phone",
        "openid",
    ],
)
def test_granted_scope_is_the_general_paths(web, general, runtime, hops, scope):
    client_id, secret = service_client(runtime)
    extra = {} if scope is None else {"scope": scope}
    reference = token_request(general, client_id, secret, **extra)
    hops.clear()
    fast = token_request(web, client_id, secret, **extra)
    assert hops == []
    assert_same_response(fast, reference)


def test_unknown_parameters_are_ignored_as_by_the_general_path(web, general, runtime, hops):
    client_id, secret = service_client(runtime)
    reference = token_request(general, client_id, secret, resource="https://api.example.vn")
    hops.clear()
    fast = token_request(web, client_id, secret, resource="https://api.example.vn")
    assert hops == []
    assert_same_response(fast, reference)


def test_first_request_of_a_client_takes_the_general_path(web, runtime, hops):
    client_id, secret = service_client(runtime)
    first = token_request(web, client_id, secret)
    second = token_request(web, client_id, secret)
    assert first.status_code == second.status_code == 200
    assert hops == ["run_in_request_scope.<locals>.work"]  # only the cache miss


def test_chunked_body_takes_the_general_path(web, runtime, hops):
    client_id, secret = service_client(runtime)
    assert token_request(web, client_id, secret).status_code == 200
    hops.clear()
    response = web.post(
        "/oauth2/token",
        content=iter([b"grant_type=client_", b"credentials"]),  # no Content-Length
        headers={"Content-Type": FORM},
        auth=(client_id, secret),
    )
    assert response.status_code == 200, response.text
    assert len(hops) == 1


# --- Errors stay the general path's (RFC 6749 §5.2) ------------------------------------------


def error_cases(
    client_id: str, secret: str, poster_id: str, poster_secret: str, rp_id: str, rp_secret: str
):
    basic_form = {"grant_type": "client_credentials"}
    return {
        "wrong secret, basic": {"data": basic_form, "auth": (client_id, secret + "x")},
        "wrong secret, post": {
            "data": {**basic_form, "client_id": poster_id, "client_secret": "x" + poster_secret}
        },
        "unknown client, basic": {"data": basic_form, "auth": ("no-such-client", secret)},
        "unknown client, post": {
            "data": {**basic_form, "client_id": "no-such-client", "client_secret": secret}
        },
        "missing grant_type": {"data": {"scope": "profile"}, "auth": (client_id, secret)},
        "unsupported scope": {
            "data": {**basic_form, "scope": "profile root"},
            "auth": (client_id, secret),
        },
        "repeated grant_type": {
            "content": b"grant_type=client_credentials&grant_type=client_credentials",
            "auth": (client_id, secret),
        },
        "post client using basic": {"data": basic_form, "auth": (poster_id, poster_secret)},
        "basic client using post": {
            "data": {**basic_form, "client_id": client_id, "client_secret": secret}
        },
        "basic and post at once": {
            "data": {**basic_form, "client_id": poster_id, "client_secret": poster_secret},
            "auth": (client_id, secret),
        },
        "client without the grant": {"data": basic_form, "auth": (rp_id, rp_secret)},
        "unreadable basic header": {
            "data": basic_form,
            "headers": {"Authorization": "Basic !!!"},
        },
        "no authentication": {"data": basic_form},
        "json body": {"json": basic_form, "auth": (client_id, secret)},
    }


EXPECTED_ERRORS = {
    "wrong secret, basic": (401, "invalid_client"),
    "wrong secret, post": (401, "invalid_client"),
    "unknown client, basic": (401, "invalid_client"),
    "unknown client, post": (400, "invalid_client"),
    "missing grant_type": (400, "invalid_request"),
    "unsupported scope": (400, "invalid_scope"),
    "repeated grant_type": (400, "invalid_request"),
    "post client using basic": (401, "invalid_client"),
    "basic client using post": (401, "invalid_client"),
    "basic and post at once": (400, "invalid_request"),  # RFC 6749 §2.3: one method only
    "client without the grant": (400, "unauthorized_client"),
    "unreadable basic header": (401, "invalid_client"),
    "no authentication": (401, "invalid_client"),
    "json body": (400, "invalid_request"),
}


def test_errors_are_the_general_paths(web, general, runtime, rp):
    client_id, secret = service_client(runtime)
    poster_id, poster_secret = service_client(runtime, method="client_secret_post")
    rp_client, rp_secret = rp
    # Every client in the cache, so each case reaches the fast path's checks.
    for http in (web, general):
        assert token_request(http, client_id, secret).status_code == 200
        assert (
            token_request(http, poster_id, poster_secret, method="client_secret_post").status_code
            == 200
        )
    cases = error_cases(client_id, secret, poster_id, poster_secret, rp_client.client_id, rp_secret)
    assert set(cases) == set(EXPECTED_ERRORS)
    for name, request in cases.items():
        options = dict(request)
        headers = {"Content-Type": FORM} if "content" in options else {}
        headers.update(options.pop("headers", {}))
        fast = web.post("/oauth2/token", headers=headers, **options)
        reference = general.post("/oauth2/token", headers=headers, **options)
        status, error = EXPECTED_ERRORS[name]
        assert (fast.status_code, fast.json().get("error")) == (status, error), (name, fast.text)
        assert fast.headers["cache-control"] == "no-store", name
        if "auth" in request and status == 401:
            assert fast.headers["www-authenticate"].startswith("Basic "), name
        assert_same_response(fast, reference)


def remove_client(runtime: IdpRuntime, client_id: str) -> None:
    with transaction(runtime.session_factory) as session:
        clients.remove(
            session=session,
            clock=runtime.clock,
            actor="test",
            client=clients.get_active(session, client_id),
        )


def test_removed_client_is_refused_at_once(web, general, runtime, hops):
    client_id, secret = service_client(runtime)
    assert token_request(web, client_id, secret).status_code == 200
    remove_client(runtime, client_id)
    # The removal's commit reached the token state feed (idp/token_state.py), which made the
    # client cache forget the client: both paths read it again, and it is gone.
    hops.clear()
    fast, reference = (
        token_request(web, client_id, secret),
        token_request(general, client_id, secret),
    )
    assert fast.status_code == 401 and fast.json()["error"] == "invalid_client"
    assert fast.headers["www-authenticate"].startswith("Basic ")
    assert_same_response(fast, reference)
    assert len(hops) == 2


def test_removed_client_is_refused_once_its_cache_entry_is_stale(general, runtime):
    """Without the feed (a process whose lifespan does not run it), the client cache's ttl
    still bounds how long a removed client is known."""
    client_id, secret = service_client(runtime)
    assert token_request(general, client_id, secret).status_code == 200
    remove_client(runtime, client_id)
    assert token_request(general, client_id, secret).status_code == 200  # within the ttl
    runtime.client_cache = ClientCache(ttl=0.0)
    refused = token_request(general, client_id, secret)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def rotate_secret(runtime: IdpRuntime, client_id: str, overlap: timedelta) -> str:
    with transaction(runtime.session_factory) as session:
        return clients.rotate_secret(
            session=session,
            clock=runtime.clock,
            actor="test",
            client=clients.get_active(session, client_id),
            overlap=overlap,
        )


def test_rotated_secret_is_used_once_the_cache_entry_is_stale(web, runtime):
    client_id, old_secret = service_client(runtime)
    assert token_request(web, client_id, old_secret).status_code == 200
    new_secret = rotate_secret(runtime, client_id, timedelta(0))
    runtime.client_cache = ClientCache(ttl=0.0)
    assert token_request(web, client_id, old_secret).status_code == 401
    assert token_request(web, client_id, new_secret).status_code == 200


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_old_secret_works_on_the_fast_path_until_its_overlap_ends(
    web, general, runtime, hops, method
):
    client_id, old_secret = service_client(runtime, method=method)
    new_secret = rotate_secret(runtime, client_id, timedelta(hours=24))
    assert token_request(web, client_id, new_secret, method=method).status_code == 200
    hops.clear()
    assert token_request(web, client_id, old_secret, method=method).status_code == 200
    assert hops == []  # the cached registration holds the old secret's digest and its end
    runtime.clock.advance(hours=24)
    fast = token_request(web, client_id, old_secret, method=method)
    reference = token_request(general, client_id, old_secret, method=method)
    assert fast.status_code == 401 and fast.json()["error"] == "invalid_client"
    assert_same_response(fast, reference)
    assert token_request(web, client_id, new_secret, method=method).status_code == 200


# --- Fast-path tokens at the other endpoints -------------------------------------------------


def test_fast_path_token_can_be_introspected_and_revoked(web, runtime, hops):
    client_id, secret = service_client(runtime, alg="ES256")
    resource_id, resource_secret = service_client(runtime, scope="profile")
    assert token_request(web, client_id, secret).status_code == 200
    hops.clear()
    token = token_request(web, client_id, secret).json()["access_token"]
    assert hops == []

    def introspect() -> dict[str, Any]:
        response = web.post(
            "/oauth2/introspect", data={"token": token}, auth=(resource_id, resource_secret)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    active = introspect()
    assert active["active"] is True
    assert active["client_id"] == client_id
    assert active["scope"] == "profile email scim"
    revoked = web.post("/oauth2/revoke", data={"token": token}, auth=(client_id, secret))
    assert revoked.status_code == 200, revoked.text
    assert introspect() == {"active": False}


# --- The parts of the fast path ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"grant_type",  # no "="
        b"grant_type=client_credentials&",  # empty field
        b"grant_type=client_credentials;scope=profile",  # ";" also separates for Starlette
        b"grant_type=client_credentials&grant_type=client_credentials",
        b"grant_type=client_credentials&grant%5Ftype=client_credentials",  # the same name
        b"=client_credentials",
        "grant_type=client_credentials&scope=hồ".encode(),  # not ASCII
        b"&".join([b"a%d=1" % n for n in range(17)]),
    ],
)
def test_unusual_bodies_are_left_to_the_general_path(body):
    assert form_fields(body) is None


def test_form_fields_decode_like_a_form_parser():
    assert form_fields(b"grant_type=client_credentials&scope=profile+email&x=a%2Bb%3D") == {
        "grant_type": "client_credentials",
        "scope": "profile email",
        "x": "a+b=",
    }


@pytest.mark.parametrize(
    "scope",
    ["profile", "profile email", "profile  email", " profile\t", "root", "profile root", "scim"],
)
def test_supported_scope_is_authlibs_rule(scope):
    authlib_server = AuthorizationServer(scopes_supported=list(SUPPORTED_SCOPES))
    try:
        authlib_server.validate_requested_scope(scope)
        authlib_accepts = True
    except InvalidScopeError:
        authlib_accepts = False
    assert is_supported_scope(scope) is authlib_accepts
    assert authlib_accepts is (scope.split() != [] and "root" not in scope)


def test_granted_scope_keeps_the_requested_order_without_user_scopes(runtime):
    client_id, _ = service_client(runtime, scope="openid profile email offline_access")
    with transaction(runtime.session_factory) as session:
        info = runtime.client_cache.lookup(session, client_id)
    assert info is not None
    assert granted_scope(info, None) == "profile email"
    assert granted_scope(info, "email openid profile email") == "email profile"
    assert granted_scope(info, "phone") == ""


# --- sign_jwt builds the JWS itself (keys/keyring.py) ----------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
@pytest.mark.parametrize("typ", [None, "at+jwt", "logout+jwt"])
def test_deterministic_signatures_are_joserfcs_bytes(runtime, alg, typ):
    """RS256 (PKCS#1 v1.5) and Ed25519 are deterministic: the whole token must be the one
    joserfc's jwt.encode made before sign_jwt built the JWS itself."""
    ring: KeyRing = runtime.keyring
    now = runtime.clock.now()
    claims = {
        "iss": ISSUER,
        "sub": "Nguyễn Văn An",
        "exp": now + timedelta(minutes=5),
        "n": [1, None],
    }
    token = ring.sign_jwt(claims, alg=alg, now=now, typ=typ)
    key = ring._signing_key(alg, now)
    header = {"alg": alg, "kid": key.info.kid, **({"typ": typ} if typ else {})}
    # With the key ring's one-algorithm registry, as sign_jwt used it (no EdDSA warning).
    expected = joserfc_jwt.encode(
        header, dict(claims), key.private, registry=_REGISTRIES[alg], default_type=None
    )
    assert token == expected


def test_es256_signatures_are_raw_r_and_s(runtime):
    """RFC 7518 §3.4: 64 bytes, r and s each left-padded to 32 (not DER). Enough signatures that
    some r or s is shorter than 32 bytes and needs the padding."""
    ring: KeyRing = runtime.keyring
    now = runtime.clock.now()
    jwk = next(k for k in ring.public_jwks(now=now)["keys"] if k["alg"] == "ES256")
    public_key = ECKey.import_key(jwk).public_key
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    short = 0
    for n in range(1500):  # P(no short r or s) = (1 - 1/128) ** 1500, about 1e-5
        token = ring.sign_jwt({"n": n}, alg="ES256", now=now, typ="at+jwt")
        header, payload, signature = token.split(".")
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        assert len(raw) == 64
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        short += r < 2**248 or s < 2**248
        try:
            public_key.verify(
                encode_dss_signature(r, s),
                f"{header}.{payload}".encode(),
                ec.ECDSA(hashes.SHA256()),
            )
        except InvalidSignature:  # pragma: no cover - the assertion below reports it
            pytest.fail(f"signature {n} does not verify")
        if n % 100 == 0:
            assert ring.verify_jwt(token, now=now).claims == {"n": n}
    assert short > 0
