"""Errors of the token endpoint: RFC 6749 §5.2 JSON bodies, RFC 7636 §4.6 for PKCE."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
import pytest
from starlette.testclient import TestClient

from tests.conftest import OFFICIAL_PASSWORD, RP_REDIRECT, register_client
from tests.idp.oidc_flow import authorize_params, exchange_code, log_in, pkce_pair, query_of

# RFC 6749 §5.2: error_description is restricted to %x20-21 / %x23-5B / %x5D-7E.
ERROR_TEXT_CHARS = {chr(c) for c in range(0x20, 0x7F)} - {'"', "\\"}
FORM = "application/x-www-form-urlencoded"


def assert_token_error(response: httpx.Response, status: int, error: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description"}, body
    assert set(body.get("error_description", "")) <= ERROR_TEXT_CHARS, body
    return body  # type: ignore[no-any-return]


def assert_basic_challenge(response: httpx.Response) -> None:
    """RFC 6749 §5.2: a 401 names the scheme the client may use (RFC 7617 Basic)."""
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")


def basic(client_id: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


CodeMaker = Callable[..., tuple[str, str]]


@pytest.fixture
def new_code(web: TestClient, official: object) -> CodeMaker:
    """An authorization code and its PKCE verifier for a client, through the real login."""

    def make(client_id: str) -> tuple[str, str]:
        verifier, challenge = pkce_pair()
        back = log_in(
            web, authorize_params(client_id, challenge), "nguyen.van.an", OFFICIAL_PASSWORD
        )
        assert back.status_code in (302, 303), back.text  # 303: the answer to the login POST
        return query_of(back.headers["location"])["code"], verifier

    return make


@pytest.fixture
def tokens(web, rp, new_code) -> dict[str, str]:
    client, secret = rp
    code, verifier = new_code(client.client_id)
    response = exchange_code(web, client.client_id, secret, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# --- Request shape ----------------------------------------------------------------------------


def test_json_body_is_an_invalid_request(web, rp):
    client, secret = rp
    response = web.post(
        "/oauth2/token", json={"grant_type": "client_credentials"}, auth=(client.client_id, secret)
    )
    assert_token_error(response, 400, "invalid_request")


def test_multipart_body_is_an_invalid_request(web, rp):
    client, secret = rp
    response = web.post(
        "/oauth2/token",
        files={"grant_type": (None, "client_credentials")},
        auth=(client.client_id, secret),
    )
    assert_token_error(response, 400, "invalid_request")


def test_missing_grant_type_is_an_invalid_request(web, rp):
    client, secret = rp
    response = web.post("/oauth2/token", data={"code": "x"}, auth=(client.client_id, secret))
    assert_token_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "grant_type",
    ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code", "bogus"],
)
def test_unknown_grant_type_is_unsupported(web, rp, grant_type):
    client, secret = rp
    response = web.post(
        "/oauth2/token", data={"grant_type": grant_type}, auth=(client.client_id, secret)
    )
    assert_token_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize("name", ["grant_type", "code", "code_verifier", "redirect_uri"])
def test_repeated_parameter_is_an_invalid_request(web, rp, new_code, name):
    client, secret = rp
    code, verifier = new_code(client.client_id)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": RP_REDIRECT,
        "code_verifier": verifier,
    }
    response = web.post(
        "/oauth2/token",
        content=urlencode([*data.items(), (name, data[name])]),
        headers={"Content-Type": FORM},
        auth=(client.client_id, secret),
    )
    body = assert_token_error(response, 400, "invalid_request")
    assert "repeated" in body["error_description"]


# --- Client authentication (RFC 6749 §2.3, §3.2.1) ---------------------------------------------


def test_confidential_client_without_authentication_is_invalid_client(web, rp, new_code):
    client, _ = rp
    code, verifier = new_code(client.client_id)
    response = exchange_code(web, client.client_id, None, code, verifier)
    assert_token_error(response, 401, "invalid_client")
    assert_basic_challenge(response)


def test_no_client_identification_at_all_is_invalid_client(web):
    response = web.post("/oauth2/token", data={"grant_type": "client_credentials"})
    assert_token_error(response, 401, "invalid_client")
    assert_basic_challenge(response)


def test_wrong_secret_via_basic_is_invalid_client_with_challenge(web, rp, new_code):
    client, secret = rp
    code, verifier = new_code(client.client_id)
    response = exchange_code(web, client.client_id, secret + "x", code, verifier)
    assert_token_error(response, 401, "invalid_client")
    assert_basic_challenge(response)


def test_wrong_secret_via_post_is_invalid_client(web, runtime):
    poster, _ = register_client(
        runtime,
        grant_types=["client_credentials"],
        redirect_uris=[],
        auth_method="client_secret_post",
    )
    response = web.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": poster.client_id,
            "client_secret": "not-the-secret",
        },
    )
    assert_token_error(response, 401, "invalid_client")


def test_right_secret_by_the_unregistered_method_is_invalid_client(web, runtime):
    # The client registered client_secret_post: Basic with the right secret is refused too.
    poster, secret = register_client(
        runtime,
        grant_types=["client_credentials"],
        redirect_uris=[],
        auth_method="client_secret_post",
    )
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(poster.client_id, secret),
    )
    assert_token_error(response, 401, "invalid_client")


@pytest.mark.parametrize("method", ["basic", "post"])
def test_unknown_client_is_invalid_client(web, method):
    data = {"grant_type": "client_credentials"}
    if method == "basic":
        response = web.post("/oauth2/token", data=data, auth=("no-such-client", "secret"))
        assert_token_error(response, 401, "invalid_client")
        assert_basic_challenge(response)
    else:
        data.update(client_id="no-such-client", client_secret="secret")
        assert_token_error(web.post("/oauth2/token", data=data), 400, "invalid_client")


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic ", id="empty"),
        pytest.param("Basic !!!", id="not-base64"),
        pytest.param("Basic " + base64.b64encode(b"\xff:\xfe").decode(), id="not-utf-8"),
        pytest.param("Basic " + base64.b64encode(b"no-colon").decode(), id="no-colon"),
        pytest.param("Basic " + base64.b64encode(b"a\x00:b").decode(), id="nul"),
    ],
)
def test_unreadable_basic_credentials_are_invalid_client(web, authorization):
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": authorization},
    )
    assert_token_error(response, 401, "invalid_client")
    assert_basic_challenge(response)


def test_nul_in_a_posted_client_id_is_invalid_client(web):
    # PostgreSQL refuses NUL in text: such a client_id must not reach a query (RFC 6749 A.1).
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "a\x00", "client_secret": "b"},
    )
    assert_token_error(response, 400, "invalid_client")


def test_basic_credentials_are_form_urlencoded(web, runtime):
    # RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Base64.
    _, secret = register_client(
        runtime,
        client_id="urn:commune:sync",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="profile",
    )
    assert secret is not None
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers=basic("urn%3Acommune%3Async", secret),
    )
    assert response.status_code == 200, response.text


def test_public_client_sending_a_secret_is_invalid_client(web, runtime, new_code):
    public, _ = register_client(runtime, public=True, name="Ứng dụng di động")
    code, verifier = new_code(public.client_id)
    response = web.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": RP_REDIRECT,
            "code_verifier": verifier,
            "client_id": public.client_id,
            "client_secret": "made-up",
        },
    )
    assert_token_error(response, 401, "invalid_client")


def test_client_credentials_for_a_code_only_client_is_unauthorized_client(web, rp):
    client, secret = rp
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, secret),
    )
    assert_token_error(response, 400, "unauthorized_client")


def test_code_grant_for_a_service_client_is_unauthorized_client(web, service):
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": "x", "redirect_uri": RP_REDIRECT},
        auth=service,
    )
    assert_token_error(response, 400, "unauthorized_client")


# --- authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.5) ----------------------------------


def test_missing_code_is_an_invalid_request(web, rp):
    client, secret = rp
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "redirect_uri": RP_REDIRECT},
        auth=(client.client_id, secret),
    )
    assert_token_error(response, 400, "invalid_request")


def test_unknown_code_is_an_invalid_grant(web, rp):
    client, secret = rp
    verifier, _ = pkce_pair()
    response = exchange_code(web, client.client_id, secret, "not-a-code", verifier)
    assert_token_error(response, 400, "invalid_grant")


def test_code_of_another_client_is_an_invalid_grant(web, runtime, rp, new_code):
    other, other_secret = register_client(runtime, name="Ứng dụng khác")
    assert other_secret is not None
    code, verifier = new_code(other.client_id)
    client, secret = rp
    response = exchange_code(web, client.client_id, secret, code, verifier)
    assert_token_error(response, 400, "invalid_grant")


def test_redirect_uri_mismatch_at_exchange_is_an_invalid_grant(web, runtime, new_code):
    client, secret = register_client(
        runtime, redirect_uris=[RP_REDIRECT, "http://127.0.0.1:9/other"]
    )
    assert secret is not None
    code, verifier = new_code(client.client_id)
    response = exchange_code(
        web, client.client_id, secret, code, verifier, redirect_uri="http://127.0.0.1:9/other"
    )
    assert_token_error(response, 400, "invalid_grant")


def test_missing_redirect_uri_at_exchange_is_an_invalid_grant(web, rp, new_code):
    # RFC 6749 §4.1.3: redirect_uri is required when the authorization request carried one.
    client, secret = rp
    code, verifier = new_code(client.client_id)
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
        auth=(client.client_id, secret),
    )
    # Authlib treats it as a mismatch (invalid_grant); invalid_request would fit as well.
    assert_token_error(response, 400, "invalid_grant")


def test_wrong_code_verifier_is_an_invalid_grant(web, rp, new_code):
    client, secret = rp
    code, _ = new_code(client.client_id)
    other_verifier, _ = pkce_pair()
    response = exchange_code(web, client.client_id, secret, code, other_verifier)
    assert_token_error(response, 400, "invalid_grant")


def test_missing_code_verifier_is_an_invalid_request(web, rp, new_code):
    # RFC 7636 §4.4.1 applies to confidential clients too here: PKCE is required for all.
    client, secret = rp
    code, _ = new_code(client.client_id)
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": RP_REDIRECT},
        auth=(client.client_id, secret),
    )
    assert_token_error(response, 400, "invalid_request")


def test_malformed_code_verifier_is_an_invalid_request(web, rp, new_code):
    client, secret = rp
    code, _ = new_code(client.client_id)
    response = exchange_code(web, client.client_id, secret, code, "short")
    assert_token_error(response, 400, "invalid_request")


def test_expired_code_is_an_invalid_grant(web, rp, new_code, clock):
    client, secret = rp
    code, verifier = new_code(client.client_id)
    clock.advance(61)
    response = exchange_code(web, client.client_id, secret, code, verifier)
    assert_token_error(response, 400, "invalid_grant")


def test_used_code_is_an_invalid_grant(web, rp, new_code):
    client, secret = rp
    code, verifier = new_code(client.client_id)
    assert exchange_code(web, client.client_id, secret, code, verifier).status_code == 200
    response = exchange_code(web, client.client_id, secret, code, verifier)
    assert_token_error(response, 400, "invalid_grant")


# --- refresh_token grant (RFC 6749 §6) ---------------------------------------------------------


def test_missing_refresh_token_is_an_invalid_request(web, rp):
    client, secret = rp
    response = web.post(
        "/oauth2/token", data={"grant_type": "refresh_token"}, auth=(client.client_id, secret)
    )
    assert_token_error(response, 400, "invalid_request")


def test_unknown_refresh_token_is_an_invalid_grant(web, rp):
    client, secret = rp
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": "not-a-refresh-token"},
        auth=(client.client_id, secret),
    )
    assert_token_error(response, 400, "invalid_grant")


def test_refresh_token_of_another_client_is_an_invalid_grant(web, runtime, tokens):
    other, other_secret = register_client(runtime, name="Ứng dụng khác")
    assert other_secret is not None
    response = web.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(other.client_id, other_secret),
    )
    assert_token_error(response, 400, "invalid_grant")


def test_refresh_with_a_broader_scope_is_an_invalid_scope(web, rp, tokens):
    client, secret = rp
    response = web.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": tokens["scope"] + " phone",
        },
        auth=(client.client_id, secret),
    )
    assert_token_error(response, 400, "invalid_scope")
    # Refused before rotation: the refresh token still works.
    again = web.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(client.client_id, secret),
    )
    assert again.status_code == 200, again.text


def test_refresh_with_an_unknown_scope_is_an_invalid_scope(web, rp, tokens):
    client, secret = rp
    response = web.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid bogus",
        },
        auth=(client.client_id, secret),
    )
    assert_token_error(response, 400, "invalid_scope")


def test_refresh_with_a_narrower_scope_still_works(web, rp, tokens):
    client, secret = rp
    response = web.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "scope": "openid offline_access",
        },
        auth=(client.client_id, secret),
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "openid offline_access"


# --- client_credentials grant (RFC 6749 §4.4) --------------------------------------------------


def test_client_credentials_with_an_unknown_scope_is_an_invalid_scope(web, service):
    response = web.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "scope": "bogus"}, auth=service
    )
    assert_token_error(response, 400, "invalid_scope")


def test_client_credentials_works_for_the_service(web, service):
    response = web.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=service)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "profile email"
    assert "refresh_token" not in response.json()


# --- Malformed input never becomes a server error ----------------------------------------------

HUGE = "x" * 10_000


Request = tuple[str, dict]  # method, httpx keyword arguments


def malformed_token_requests(client_id: str, secret: str) -> dict[str, Request]:
    client_auth = basic(client_id, secret)
    code_grant = f"grant_type=authorization_code&redirect_uri={RP_REDIRECT}&code="

    def post(body: str | bytes, headers: dict[str, str] | None = client_auth) -> Request:
        return "POST", {"content": body, "headers": {"Content-Type": FORM, **(headers or {})}}

    def with_basic(credentials: bytes) -> Request:
        header = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
        return post("grant_type=client_credentials", header)

    def with_authorization(value: str) -> Request:
        return post("grant_type=client_credentials", {"Authorization": value})

    return {
        "GET": ("GET", {}),
        "PUT": ("PUT", {"data": {"grant_type": "client_credentials"}, "headers": client_auth}),
        "huge field": post(f"grant_type=client_credentials&scope={HUGE}"),
        "huge code": post(code_grant + HUGE[:8000]),
        "many fields": post("&".join(f"p{i}=v" for i in range(500))),
        "non-UTF-8 grant_type": post("grant_type=%ff%fe"),
        "raw non-UTF-8 body": post(b"grant_type=\xff\xfe"),
        "binary body": post(bytes(range(256))),
        "NUL in code": post(code_grant + "a%00b&code_verifier=" + "v" * 43),
        "NUL in refresh_token": post("grant_type=refresh_token&refresh_token=%00"),
        "NUL in scope": post("grant_type=client_credentials&scope=openid%00"),
        "NUL in client_id": post("grant_type=client_credentials&client_id=a%00b", None),
        "NUL in client_id and secret": post(
            "grant_type=client_credentials&client_id=a%00&client_secret=b%00", None
        ),
        "very long client_id": post(f"grant_type=client_credentials&client_id={'c' * 300}", None),
        "non-ASCII code_verifier": post(code_grant + "x&code_verifier=" + "%C3%A9" * 50),
        "NUL in Basic client_id": with_basic(b"a\0:b"),
        "non-UTF-8 Basic": with_basic(b"\xff:\xfe"),
        "Basic without colon": with_basic(b"abc"),
        "huge Basic": with_basic(HUGE.encode() + b":x"),
        "Basic not base64": with_authorization("Basic !!!"),
        "Basic empty": with_authorization("Basic "),
        "Bearer instead of Basic": with_authorization("Bearer abc"),
        "JSON body": (
            "POST",
            {"json": {"grant_type": "client_credentials"}, "headers": client_auth},
        ),
        "multipart body": (
            "POST",
            {"files": {"grant_type": (None, "client_credentials")}, "headers": client_auth},
        ),
        "no content type": (
            "POST",
            {"content": "grant_type=client_credentials", "headers": client_auth},
        ),
    }


def test_malformed_token_requests_never_fail_the_server(web, rp):
    client, secret = rp
    failures = []
    for name, (method, options) in malformed_token_requests(client.client_id, secret).items():
        try:
            response = web.request(method, "/oauth2/token", **options)
        except Exception as error:  # the app raised: a 500 for a real client
            failures.append(f"{name}: {error!r}")
            continue
        if response.status_code >= 500 or "Traceback" in response.text:
            failures.append(f"{name}: {response.status_code}")
        elif method == "POST" and "error" not in response.json():
            failures.append(f"{name}: accepted")
    assert not failures


def test_get_on_the_token_endpoint_is_405(web):
    response = web.get("/oauth2/token")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
