"""Relying parties built on independent libraries, against the provider served over real HTTP.

Authlib's OAuth 2.0 client drives the whole life of a sign-in (RFC 6749, RFC 7636, RFC 7009,
RFC 7662, RP-Initiated Logout 1.0); python-jose and PyJWT verify our tokens against the published
JWKS as resource servers would; pyoidc (``oic``), a certified OpenID relying-party library,
checks discovery and the ID token strictly. On top of the libraries, the ID token is checked
against OIDC Core §3.1.3.7 item by item, and the discovery document against Discovery 1.0 §3-4.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jwt as pyjwt
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc import rpinitiated
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata, get_well_known_url
from jose import jwt as jose_jwt
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import KeySet
from oic.oic import Client as OicClient
from oic.oic.message import AuthorizationResponse as OicAuthorizationResponse
from oic.oic.message import Message, RegistrationResponse, verify_id_token
from oic.utils.authn.client import CLIENT_AUTHN_METHOD
from oic.utils.settings import OicClientSettings

from core.clock import FixedClock
from keys.keyring import SUPPORTED_ALGORITHMS
from tests.conftest import OFFICIAL_PASSWORD, RP_LOGOUT_REDIRECT, RP_REDIRECT, register_client
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    LiveServer,
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
)
from tests.idp.oidc_flow import hidden_inputs, query_of

USERNAME = "nguyen.van.an"
SCOPE = "openid profile email offline_access"
FORM_ACTION = re.compile(r'<form\b[^>]*\baction="([^"]*)"[^>]*\bmethod="post"')
CLOCK_SKEW = 60  # seconds an RP tolerates between its clock and ours (iat, OIDC Core §3.1.3.7)


# --- The official's browser ---------------------------------------------------------------


@pytest.fixture
def browser(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        yield client


def follow(browser: httpx.Client, response: httpx.Response) -> httpx.Response:
    """Follow the provider's own redirects; stop at the first that leaves for a relying party."""
    for _ in range(8):
        if not response.is_redirect:
            return response
        location = urljoin(str(response.url), response.headers["location"])
        if location.startswith((RP_REDIRECT, RP_LOGOUT_REDIRECT)):
            return response
        response = browser.get(location)
    raise AssertionError("redirect loop")


def is_login_page(response: httpx.Response) -> bool:
    """The sign-in form: shown by the authorization endpoint itself, or at ``/login``."""
    return (
        response.status_code == 200
        and response.url.path in ("/oauth2/authorize", "/login")
        and 'name="password"' in response.text
    )


def submit_login_form(browser: httpx.Client, login_page: httpx.Response) -> httpx.Response:
    """Fill in the form as a person would: the hidden fields come from the page itself."""
    assert is_login_page(login_page), login_page.text[:500]
    fields = hidden_inputs(login_page.text)
    assert set(fields) == {"csrf_token", "interaction"}
    action = FORM_ACTION.search(login_page.text)
    assert action is not None
    submitted = browser.post(
        urljoin(str(login_page.url), html.unescape(action[1])),
        data={**fields, "username": USERNAME, "password": OFFICIAL_PASSWORD},
    )
    assert submitted.status_code == 303, submitted.text[:500]
    return follow(browser, submitted)


def callback_of(response: httpx.Response) -> str:
    """The redirect back to the client (the URL the RP's callback handler receives)."""
    assert response.status_code in (302, 303), response.text[:500]
    location = response.headers["location"]
    assert location.startswith(RP_REDIRECT + "?"), location
    return location


def sign_in(
    browser: httpx.Client, authorization_url: str, *, expect_login: bool | None = None
) -> str:
    """Authorization request → (login form if there is no session) → back to the client."""
    page = follow(browser, browser.get(authorization_url))
    if expect_login is not None:
        assert is_login_page(page) == expect_login
    if is_login_page(page):
        page = submit_login_form(browser, page)
    return callback_of(page)


# --- Helpers shared by the relying parties --------------------------------------------------


def discovery(live_server: LiveServer) -> dict[str, Any]:
    response = httpx.get(live_server.discovery_url, timeout=10)
    assert response.status_code == 200
    metadata: dict[str, Any] = response.json()
    return metadata


def left_half_hash(value: str, alg: str) -> str:
    """OIDC Core §3.1.3.6 at_hash, computed with PyJWT's own hash for the alg.

    PyJWT has no hash for EdDSA; for Ed25519 (the only curve we sign with) relying parties use
    SHA-512, as panva's oidc-token-hash (openid-client, oidc-provider) does."""
    algorithm = pyjwt.get_algorithm_by_name(alg)
    try:
        digest = algorithm.compute_hash_digest(value.encode("ascii"))
    except NotImplementedError:
        assert alg == "EdDSA"
        digest = hashlib.sha512(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def assert_valid_id_token(
    id_token: str,
    *,
    metadata: dict[str, Any],
    jwks: dict[str, Any],
    client_id: str,
    alg: str,
    nonce: str | None,
    access_token: str | None,
    now: float | None = None,
) -> dict[str, Any]:
    """OIDC Core §3.1.3.7 item by item, plus the JOSE header rules we promise (kid present).

    Returns the verified claims."""
    now = time.time() if now is None else now
    header = pyjwt.get_unverified_header(id_token)
    # §3.1.3.7 items 6-7: the alg is the one registered for the client (RS256 by default).
    assert header["alg"] == alg
    assert header["alg"] in metadata["id_token_signing_alg_values_supported"]
    # OIDC Core §10.1: with several keys published, every JWS names its key.
    assert header.get("typ", "JWT") == "JWT", "an ID token must not look like an access token"
    keys = {key["kid"]: key for key in jwks["keys"]}
    assert header["kid"] in keys
    assert keys[header["kid"]]["alg"] == alg
    claims: dict[str, Any] = pyjwt.decode(
        id_token,
        pyjwt.PyJWK(keys[header["kid"]]).key,
        algorithms=[alg],
        options={"verify_aud": False, "verify_iss": False, "verify_exp": False},
    )
    # Item 2: iss exactly (byte for byte) the issuer from discovery.
    assert claims["iss"] == metadata["issuer"]
    # Items 3-5: aud contains the client_id; azp is needed (and then equal) only with several
    # audiences. We always send exactly one, as a string.
    assert claims["aud"] == client_id
    assert "azp" not in claims or claims["azp"] == client_id
    # Item 9-10: exp in the future, iat recent and not ahead of the RP's clock beyond skew.
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
    assert claims["exp"] > now
    assert claims["exp"] > claims["iat"]
    assert now - CLOCK_SKEW <= claims["iat"] <= now + CLOCK_SKEW
    # Item 11: nonce equal to the one sent, absent (never null) when none was sent.
    if nonce is None:
        assert "nonce" not in claims
    else:
        assert claims["nonce"] == nonce
    # Item 13: auth_time present (we always send it; required with max_age, §3.1.2.1).
    assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= claims["iat"]
    assert isinstance(claims["sub"], str) and 0 < len(claims["sub"]) <= 255  # §2
    # §3.1.3.6, §3.1.3.8: at_hash is the left half of the alg's hash of the access token.
    if access_token is not None:
        assert claims["at_hash"] == left_half_hash(access_token, alg)
    return claims


# --- Authlib's OAuth 2.0 client as the relying party ---------------------------------------


def authlib_client(client_id: str, secret: str) -> OAuth2Client:
    return OAuth2Client(
        client_id=client_id,
        client_secret=secret,
        scope=SCOPE,
        redirect_uri=RP_REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
        timeout=10,
    )


def authlib_code_flow(
    oauth: OAuth2Client,
    metadata: dict[str, Any],
    browser: httpx.Client,
    *,
    expect_login: bool | None = None,
    **extra: str,
) -> tuple[dict[str, Any], str]:
    """One sign-in as an Authlib-based RP does it; returns the token response and the nonce."""
    verifier, nonce = generate_token(48), generate_token(20)
    url, state = oauth.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra
    )
    callback = sign_in(browser, url, expect_login=expect_login)
    # RFC 9207 §2.4: the RP compares iss with the issuer it expects, exactly.
    assert query_of(callback)["iss"] == metadata["issuer"]
    token = oauth.fetch_token(
        metadata["token_endpoint"],
        authorization_response=callback,
        state=state,
        code_verifier=verifier,
    )
    assert token["token_type"] == "Bearer"
    return dict(token), nonce


def authlib_id_token_claims(
    token: dict[str, Any],
    *,
    metadata: dict[str, Any],
    client_id: str,
    nonce: str | None,
    now: float | None = None,
) -> CodeIDToken:
    """Authlib's own OIDC validation (the one its framework clients run in parse_id_token)."""
    key_set = KeySet.import_key_set(httpx.get(metadata["jwks_uri"], timeout=10).json())
    decoded = joserfc_jwt.decode(
        token["id_token"], key_set, algorithms=metadata["id_token_signing_alg_values_supported"]
    )
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {
            "iss": {"essential": True, "value": metadata["issuer"]},
            "aud": {"essential": True, "value": client_id},
            "sub": {"essential": True},
            "auth_time": {"essential": True},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(now=now)
    return claims


@pytest.fixture
def metadata(live_server: LiveServer) -> dict[str, Any]:
    return discovery(live_server)


@pytest.fixture
def oauth(live_server: LiveServer, rp: tuple[Any, str]) -> Iterator[OAuth2Client]:
    client, secret = rp
    with authlib_client(client.client_id, secret) as session:
        yield session


def test_authlib_client_signs_in_reads_userinfo_and_rotates_refresh_tokens(
    oauth, metadata, browser, rp, official
):
    client, _ = rp
    token, nonce = authlib_code_flow(oauth, metadata, browser, expect_login=True)
    claims = authlib_id_token_claims(
        token, metadata=metadata, client_id=client.client_id, nonce=nonce
    )
    assert claims["sub"] == official.subject
    assert claims["name"] == "Nguyễn Văn An"
    jwks = httpx.get(metadata["jwks_uri"], timeout=10).json()
    assert_valid_id_token(
        token["id_token"],
        metadata=metadata,
        jwks=jwks,
        client_id=client.client_id,
        alg="RS256",
        nonce=nonce,
        access_token=token["access_token"],
    )

    # OIDC Core §5.3.1-5.3.2: GET and POST, plain JSON whose sub is the ID token's.
    for info in (
        oauth.get(metadata["userinfo_endpoint"]),
        oauth.post(metadata["userinfo_endpoint"]),
    ):
        assert info.status_code == 200
        assert info.headers["content-type"] == "application/json"
        assert info.json()["sub"] == claims["sub"]
        assert info.json()["email"] == "an.nv@laocai.gov.vn"

    first_refresh = token["refresh_token"]
    refreshed = oauth.refresh_token(metadata["token_endpoint"], refresh_token=first_refresh)
    assert refreshed["refresh_token"] != first_refresh
    assert refreshed["access_token"] != token["access_token"]
    # OIDC Core §12.2: same iss, sub, aud and auth_time as the original ID token, no nonce.
    renewed = authlib_id_token_claims(
        dict(refreshed), metadata=metadata, client_id=client.client_id, nonce=None
    )
    for name in ("iss", "sub", "aud", "auth_time"):
        assert renewed[name] == claims[name]
    assert_valid_id_token(
        refreshed["id_token"],
        metadata=metadata,
        jwks=jwks,
        client_id=client.client_id,
        alg="RS256",
        nonce=None,
        access_token=refreshed["access_token"],
    )
    assert oauth.get(metadata["userinfo_endpoint"]).status_code == 200

    # RFC 9700 §4.14.2: the rotated token is refused, and its reuse revokes the whole family.
    with pytest.raises(OAuthError) as reused:
        oauth.refresh_token(metadata["token_endpoint"], refresh_token=first_refresh)
    assert reused.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as family:
        oauth.refresh_token(metadata["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert family.value.error == "invalid_grant"
    assert oauth.get(metadata["userinfo_endpoint"]).status_code == 401


def test_authlib_client_revokes_then_logs_out(oauth, metadata, browser, rp, official, runtime):
    client, _ = rp
    token, _ = authlib_code_flow(oauth, metadata, browser, expect_login=True)
    introspection = metadata["introspection_endpoint"]
    before = oauth.introspect_token(introspection, token=token["refresh_token"])
    assert before.json()["active"] is True
    assert before.json()["client_id"] == client.client_id

    revoked = oauth.revoke_token(
        metadata["revocation_endpoint"],
        token=token["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200
    for presented in (token["refresh_token"], token["access_token"]):
        # RFC 7009 §2.1: revoking the refresh token also ends the access tokens of its grant.
        assert oauth.introspect_token(introspection, token=presented).json() == {"active": False}
    assert oauth.get(metadata["userinfo_endpoint"]).status_code == 401

    # RP-Initiated Logout 1.0 §3: never redirect to a URI not registered for the client; the
    # refused request leaves the session alone.
    refused = browser.get(
        metadata["end_session_endpoint"],
        params={
            "id_token_hint": token["id_token"],
            "post_logout_redirect_uri": "http://127.0.0.1:9/not-registered",
            "state": "x",
        },
    )
    assert refused.status_code == 400
    assert "location" not in refused.headers

    # The browser session outlives the grant and the refused logout: silent sign-in works...
    silent, _ = authlib_code_flow(oauth, metadata, browser, expect_login=False, prompt="none")
    session_cookie = browser.cookies.get(runtime.session_cookie_name)
    assert session_cookie

    # ...until RP-Initiated Logout 1.0 §2-3 with a hint, a registered URI and a state.
    logout_state = generate_token(16)
    ended = browser.get(
        metadata["end_session_endpoint"],
        params={
            "id_token_hint": silent["id_token"],
            "post_logout_redirect_uri": RP_LOGOUT_REDIRECT,
            "state": logout_state,
        },
    )
    assert ended.status_code in (302, 303), ended.text[:500]
    location = ended.headers["location"]
    assert location.split("?")[0] == RP_LOGOUT_REDIRECT
    assert query_of(location) == {"state": logout_state}
    assert browser.cookies.get(runtime.session_cookie_name) is None
    # The grant issued in that session ended with it.
    assert oauth.introspect_token(introspection, token=silent["refresh_token"]).json() == {
        "active": False
    }

    # The old cookie, replayed, no longer signs in silently: the session ended on our side.
    with httpx.Client(follow_redirects=False, timeout=10) as stale:
        stale.cookies.set(runtime.session_cookie_name, session_cookie)
        url, state = oauth.create_authorization_url(
            metadata["authorization_endpoint"],
            code_verifier=generate_token(48),
            nonce=generate_token(20),
            prompt="none",
        )
        reply = query_of(callback_of(follow(stale, stale.get(url))))
    assert reply["error"] == "login_required"
    assert reply["state"] == state
    assert reply["iss"] == metadata["issuer"]


# --- python-jose and PyJWT as resource servers ----------------------------------------------


@pytest.mark.parametrize("alg", SUPPORTED_ALGORITHMS)
def test_tokens_verify_with_independent_jwt_libraries(
    live_server, metadata, browser, runtime, official, alg
):
    client, secret = register_client(runtime, id_token_alg=alg, access_token_alg=alg)
    assert secret is not None
    with authlib_client(client.client_id, secret) as oauth:
        token, nonce = authlib_code_flow(oauth, metadata, browser, expect_login=True)
    id_token, access_token = token["id_token"], token["access_token"]

    jwks_client = pyjwt.PyJWKClient(metadata["jwks_uri"], cache_keys=False, timeout=10)
    id_claims = pyjwt.decode(
        id_token,
        jwks_client.get_signing_key_from_jwt(id_token).key,
        algorithms=[alg],
        audience=client.client_id,
        issuer=metadata["issuer"],
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )
    assert id_claims["nonce"] == nonce
    assert id_claims["at_hash"] == left_half_hash(access_token, alg)
    at_claims = pyjwt.decode(
        access_token,
        jwks_client.get_signing_key_from_jwt(access_token).key,
        algorithms=[alg],
        audience=client.client_id,
        issuer=metadata["issuer"],
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"]},
    )
    # RFC 9068 §2.1-2.2: typ at+jwt, a kid naming a published key, and the claims a resource
    # server relies on.
    at_header = pyjwt.get_unverified_header(access_token)
    assert at_header["typ"] == "at+jwt"
    assert at_header["alg"] == alg
    assert at_header["kid"] == jwks_client.get_signing_key_from_jwt(access_token).key_id
    assert at_claims["client_id"] == client.client_id
    assert at_claims["sub"] == official.subject
    assert "openid" in at_claims["scope"].split()

    if alg == "EdDSA":
        return  # python-jose has no EdDSA.
    # python-jose tries every key of a JWKS with the token's alg and stops at the first key of
    # another type, so apps built on it pick the key by kid (as Auth0's examples do).
    jwks = {key["kid"]: key for key in httpx.get(metadata["jwks_uri"], timeout=10).json()["keys"]}
    # python-jose checks at_hash itself when given the access token.
    jose_claims = jose_jwt.decode(
        id_token,
        jwks[jose_jwt.get_unverified_header(id_token)["kid"]],
        algorithms=[alg],
        audience=client.client_id,
        issuer=metadata["issuer"],
        access_token=access_token,
    )
    assert jose_claims == id_claims
    assert (
        jose_jwt.decode(
            access_token,
            jwks[jose_jwt.get_unverified_header(access_token)["kid"]],
            algorithms=[alg],
            audience=client.client_id,
            issuer=metadata["issuer"],
        )
        == at_claims
    )


# --- pyoidc, a certified OpenID relying-party library ---------------------------------------


@pytest.mark.parametrize("alg", [alg for alg in SUPPORTED_ALGORITHMS if alg != "EdDSA"])
def test_certified_relying_party_library_accepts_discovery_and_id_token(
    live_server, browser, runtime, official, clock, alg
):
    """pyoidc (``oic``, certified RP) — its key library (pyjwkest) has no OKP keys, so EdDSA
    is left to the explicit §3.1.3.7 checks in the other tests."""
    client, secret = register_client(runtime, id_token_alg=alg, access_token_alg=alg)
    rp = OicClient(client_authn_method=CLIENT_AUTHN_METHOD, settings=OicClientSettings(timeout=10))
    # Discovery 1.0 §4.3: refuses a document whose issuer differs from the one asked for.
    provider = rp.provider_config(live_server.issuer)
    assert provider["issuer"] == live_server.issuer
    # pyoidc's schema check of the document: required members present, each of its type.
    # ProviderConfigurationResponse.verify() adds an https-only rule for the issuer that a
    # loopback test server cannot meet; its other rules are asserted here.
    Message.verify(provider)
    assert "openid" in provider["scopes_supported"]
    assert "token_endpoint" in provider
    assert not urlsplit(provider["issuer"]).query and not urlsplit(provider["issuer"]).fragment
    rp.store_registration_info(
        RegistrationResponse(
            client_id=client.client_id,
            client_secret=secret,
            redirect_uris=[RP_REDIRECT],
            post_logout_redirect_uris=[RP_LOGOUT_REDIRECT],
            id_token_signed_response_alg=alg,
            token_endpoint_auth_method="client_secret_basic",
        )
    )
    pkce, verifier = rp.add_code_challenge()
    state, nonce = generate_token(32), generate_token(32)
    request = rp.construct_AuthorizationRequest(
        request_args={
            "response_type": "code",
            "scope": SCOPE.split(),
            "redirect_uri": RP_REDIRECT,
            "state": state,
            "nonce": nonce,
            **pkce,
        }
    )
    callback = sign_in(browser, request.request(provider["authorization_endpoint"]))

    # Checks the RFC 9207 iss parameter against the discovered issuer.
    authorization = rp.parse_response(
        OicAuthorizationResponse, info=urlsplit(callback).query, sformat="urlencoded"
    )
    assert authorization["state"] == state
    tokens = rp.do_access_token_request(
        state=state,
        request_args={
            "code": authorization["code"],
            "redirect_uri": RP_REDIRECT,
            "code_verifier": verifier,
        },
        authn_method="client_secret_basic",
        algs={"sign": alg},
    )
    # Verified on parsing: signature against the discovered JWKS, iss, aud, azp, exp, iat,
    # and the nonce against the one stored for this state.
    id_token = tokens["id_token"]
    assert id_token["nonce"] == nonce
    assert id_token.jws_header["alg"] == alg
    published = rp.keyjar.get_verify_key(owner=provider["issuer"])
    assert id_token.jws_header["kid"] in {key.kid for key in published}
    rp.verify_id_token(id_token, request)  # nonce, max_age, response type rules
    # at_hash, checked by pyoidc when asked (check_hash).
    verify_id_token(
        Message(id_token=tokens["id_token_jwt"], access_token=tokens["access_token"]),
        check_hash=True,
        keyjar=rp.keyjar,
        iss=provider["issuer"],
        client_id=client.client_id,
        algs={"sign": alg},
    )
    assert_valid_id_token(
        tokens["id_token_jwt"],
        metadata=provider.to_dict(),
        jwks=httpx.get(provider["jwks_uri"], timeout=10).json(),
        client_id=client.client_id,
        alg=alg,
        nonce=nonce,
        access_token=tokens["access_token"],
    )

    # OIDC Core §5.3.2: pyoidc compares the UserInfo sub with the ID token's.
    userinfo = rp.do_user_info_request(state=state)
    assert userinfo["sub"] == official.subject

    # RP-Initiated Logout 1.0 §2: the OP accepts POST as well as GET, and an ID token whose
    # exp has passed is still a good hint for a session that is current.
    clock.advance(runtime.settings.id_token_ttl + 60)
    logout_state = generate_token(16)
    logout = rp.construct_EndSessionRequest(
        request_args={
            "id_token_hint": tokens["id_token_jwt"],
            "post_logout_redirect_uri": RP_LOGOUT_REDIRECT,
            "state": logout_state,
        }
    )
    ended = browser.post(provider["end_session_endpoint"], data=logout.to_dict())
    assert ended.status_code in (302, 303), ended.text[:500]
    assert ended.headers["location"] == f"{RP_LOGOUT_REDIRECT}?state={logout_state}"
    assert browser.cookies.get(runtime.session_cookie_name) is None


# --- Discovery 1.0 --------------------------------------------------------------------------


def test_discovery_document_is_consistent_and_truthful(
    live_server, metadata, browser, runtime, official
):
    # Discovery §4: the document lives at issuer + /.well-known/openid-configuration, and its
    # issuer is exactly that prefix (§4.3).
    assert get_well_known_url(metadata["issuer"], external=True) == live_server.discovery_url
    assert metadata["issuer"] == live_server.issuer
    OpenIDProviderMetadata(metadata).validate(metadata_classes=[rpinitiated.OpenIDProviderMetadata])

    endpoints = {name: url for name, url in metadata.items() if name.endswith("_endpoint")}
    endpoints["jwks_uri"] = metadata["jwks_uri"]
    post_only = {
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "pushed_authorization_request_endpoint",
    }
    for name, url in endpoints.items():
        assert url.startswith(live_server.issuer + "/"), name
        answer = httpx.request("POST" if name in post_only else "GET", url, timeout=10)
        assert answer.status_code not in (404, 405), (name, answer.status_code)
        assert answer.status_code < 500, (name, answer.status_code)

    jwks = httpx.get(metadata["jwks_uri"], timeout=10).json()
    kids = [key["kid"] for key in jwks["keys"]]
    assert len(kids) == len(set(kids))
    assert all(key.get("use") == "sig" and "d" not in key for key in jwks["keys"])

    # Every advertised signing alg really signs: one login, then one client per alg signs in
    # silently through the same browser session.
    alg_lists = {name for name in metadata if name.endswith("_alg_values_supported")}
    # The client authentication lists (private_key_jwt) are exercised alg by alg in
    # tests/idp/fapi/test_private_key_jwt.py, the ID token list here.
    # DPoP's list in tests/idp/fapi/test_dpop.py, request objects' in
    # tests/idp/fapi/test_request_objects.py.
    client_auth_lists = {
        f"{endpoint}_endpoint_auth_signing_alg_values_supported"
        for endpoint in ("token", "revocation", "introspection")
    } | {"dpop_signing_alg_values_supported", "request_object_signing_alg_values_supported"}
    assert alg_lists - client_auth_lists == {"id_token_signing_alg_values_supported"}, (
        "teach this test the new list"
    )
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]  # Discovery §3
    for number, alg in enumerate(metadata["id_token_signing_alg_values_supported"]):
        client, secret = register_client(runtime, id_token_alg=alg)
        assert secret is not None
        with authlib_client(client.client_id, secret) as oauth:
            token, nonce = authlib_code_flow(oauth, metadata, browser, expect_login=number == 0)
        assert_valid_id_token(
            token["id_token"],
            metadata=metadata,
            jwks=jwks,
            client_id=client.client_id,
            alg=alg,
            nonce=nonce,
            access_token=token["access_token"],
        )

    # What is not advertised is refused, back at the client (OIDC Core §3.1.2.6, §6.1-6.2).
    assert metadata["request_uri_parameter_supported"] is False
    assert metadata["request_parameter_supported"] is True  # for clients with keys (RFC 9101)
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["response_modes_supported"] == ["query"]
    plain_pkce = {"code_challenge": generate_token(43), "code_challenge_method": "plain"}
    refused: list[tuple[dict[str, str], str]] = [
        ({"request_uri": "https://rp.example/request.jwt"}, "request_uri_not_supported"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        (plain_pkce, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_mode": "form_post"}, "invalid_request"),
    ]
    client, secret = register_client(runtime)
    assert secret is not None
    with authlib_client(client.client_id, secret) as oauth:
        for parameters, error in refused:
            verifier = None if "code_challenge" in parameters else generate_token(48)
            url, state = oauth.create_authorization_url(
                metadata["authorization_endpoint"],
                code_verifier=verifier,
                nonce=generate_token(20),
                **parameters,
            )
            reply = query_of(callback_of(browser.get(url)))
            assert (reply["error"], reply["state"]) == (error, state), parameters
            assert reply["iss"] == metadata["issuer"]


# --- max_age, auth_time and prompt=login (OIDC Core §3.1.2.1, §2) ----------------------------


def test_max_age_and_prompt_login_govern_reauthentication(
    oauth, metadata, browser, rp, official, clock: FixedClock
):
    client, _ = rp
    logged_in_at = int(clock.now().timestamp())
    token, nonce = authlib_code_flow(oauth, metadata, browser, expect_login=True)
    first = authlib_id_token_claims(
        token, metadata=metadata, client_id=client.client_id, nonce=nonce
    )
    assert first["auth_time"] == logged_in_at

    # OIDC Core §3.1.2.1 (errata set 2): max_age=0 is prompt=login, even within the second;
    # once the official has signed in again, the request completes.
    token, nonce = authlib_code_flow(oauth, metadata, browser, expect_login=True, max_age="0")
    assert token["id_token"]

    clock.advance(120)
    # The session is 120 s old: max_age=60 sends the official back to the form...
    url, _ = oauth.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=generate_token(48), max_age="60"
    )
    assert is_login_page(follow(browser, browser.get(url)))
    # ...max_age=3600 does not, and the ID token tells the original sign-in time.
    token, nonce = authlib_code_flow(oauth, metadata, browser, expect_login=False, max_age="3600")
    # The provider's clock is now 120 s ahead of the real one: validate at its time.
    kept = authlib_id_token_claims(
        token,
        metadata=metadata,
        client_id=client.client_id,
        nonce=nonce,
        now=clock.now().timestamp(),
    )
    assert kept["auth_time"] == logged_in_at
    assert kept["iat"] == logged_in_at + 120

    # prompt=login shows the form even with a fresh session; auth_time moves to the new login.
    token, nonce = authlib_code_flow(oauth, metadata, browser, expect_login=True, prompt="login")
    again = authlib_id_token_claims(
        token,
        metadata=metadata,
        client_id=client.client_id,
        nonce=nonce,
        now=clock.now().timestamp(),
    )
    assert again["auth_time"] == logged_in_at + 120
