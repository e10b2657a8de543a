"""Errors of the endpoints that take a token: UserInfo (OIDC Core §5.3.3, RFC 6750 §3),
introspection (RFC 7662 §2.3) and revocation (RFC 7009 §2.2)."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.conftest import OFFICIAL_PASSWORD, register_client
from tests.idp.oidc_flow import authorize_params, exchange_code, log_in, pkce_pair, query_of


@pytest.fixture
def public_client(runtime) -> str:
    client, _ = register_client(runtime, public=True, name="Ứng dụng di động")
    return client.client_id


def assert_json_error(response: httpx.Response, status: int, error: str) -> None:
    """RFC 6749 §5.2 shape (RFC 7009 §2.2.1 and RFC 7662 §2.3 use it), never cached."""
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    assert set(body) <= {"error", "error_description"}
    assert body.get("error_description", "").isascii()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge_of(response: httpx.Response) -> str:
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    return challenge


def assert_bearer_error(response: httpx.Response, status: int, error: str) -> None:
    """RFC 6750 §3: the error code in the challenge (and, for clients that read it, the body)."""
    assert f'error="{error}"' in challenge_of(response)
    assert_json_error(response, status, error)


# --- UserInfo -----------------------------------------------------------------------------------


def test_userinfo_without_a_token_is_401_without_an_error_code(web):
    # RFC 6750 §3.1: a request with no authentication information carries no error code.
    response = web.get("/oauth2/userinfo")
    assert response.status_code == 401
    assert "error=" not in challenge_of(response)


def test_userinfo_with_another_auth_scheme_is_401_without_an_error_code(web, rp):
    client, secret = rp
    response = web.get("/oauth2/userinfo", auth=(client.client_id, secret))
    assert response.status_code == 401
    assert "error=" not in challenge_of(response)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("garbage", id="opaque"),
        pytest.param("a.b.c", id="three-dots"),
        pytest.param("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", id="alg-none"),
    ],
)
def test_userinfo_with_a_garbage_token_is_invalid_token(web, token):
    response = web.get("/oauth2/userinfo", headers=bearer(token))
    assert_bearer_error(response, 401, "invalid_token")


def test_userinfo_with_the_token_in_header_and_body_is_invalid_request(web, user_tokens):
    # RFC 6750 §2: the client MUST NOT use more than one method to transmit the token.
    token = user_tokens["access_token"]
    response = web.post("/oauth2/userinfo", headers=bearer(token), data={"access_token": token})
    assert_bearer_error(response, 400, "invalid_request")


def test_userinfo_with_a_client_credentials_token_is_insufficient_scope(web, service):
    issued = web.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=service)
    assert issued.status_code == 200, issued.text
    response = web.get("/oauth2/userinfo", headers=bearer(issued.json()["access_token"]))
    assert_bearer_error(response, 403, "insufficient_scope")


def test_userinfo_with_an_id_token_is_invalid_token(web, user_tokens):
    # RFC 9068 §4: only a JWT typed at+jwt is an access token; an ID token is signed by the
    # same key but must not open the UserInfo endpoint.
    response = web.get("/oauth2/userinfo", headers=bearer(user_tokens["id_token"]))
    assert_bearer_error(response, 401, "invalid_token")


def test_userinfo_with_an_expired_token_is_invalid_token(web, user_tokens, clock):
    clock.advance(int(user_tokens["expires_in"]) + 1)
    response = web.get("/oauth2/userinfo", headers=bearer(user_tokens["access_token"]))
    assert_bearer_error(response, 401, "invalid_token")


def test_userinfo_with_a_token_in_the_query_is_not_accepted(web, user_tokens):
    # RFC 6750 §2.3 is optional and leaks tokens into logs: we do not offer it.
    response = web.get("/oauth2/userinfo", params={"access_token": user_tokens["access_token"]})
    assert response.status_code == 401
    assert "error=" not in challenge_of(response)


def test_userinfo_by_post_with_a_form_token_works(web, official, user_tokens):
    response = web.post("/oauth2/userinfo", data={"access_token": user_tokens["access_token"]})
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == official.subject


def test_userinfo_with_a_revoked_token_is_invalid_token(web, rp, user_tokens):
    client, secret = rp
    revoked = web.post(
        "/oauth2/revoke",
        data={"token": user_tokens["access_token"]},
        auth=(client.client_id, secret),
    )
    assert revoked.status_code == 200
    response = web.get("/oauth2/userinfo", headers=bearer(user_tokens["access_token"]))
    assert_bearer_error(response, 401, "invalid_token")


# --- Introspection ------------------------------------------------------------------------------


def test_introspection_without_client_authentication_is_invalid_client(web, user_tokens):
    response = web.post("/oauth2/introspect", data={"token": user_tokens["access_token"]})
    assert_json_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_introspection_with_a_wrong_secret_is_invalid_client(web, rp, user_tokens):
    client, secret = rp
    response = web.post(
        "/oauth2/introspect",
        data={"token": user_tokens["access_token"]},
        auth=(client.client_id, secret + "x"),
    )
    assert_json_error(response, 401, "invalid_client")


def test_introspection_by_a_public_client_is_invalid_client(web, public_client, user_tokens):
    response = web.post(
        "/oauth2/introspect",
        data={"token": user_tokens["access_token"], "client_id": public_client},
    )
    assert_json_error(response, 401, "invalid_client")


def test_introspection_of_garbage_is_inactive(web, rp):
    client, secret = rp
    response = web.post(
        "/oauth2/introspect", data={"token": "garbage"}, auth=(client.client_id, secret)
    )
    assert response.status_code == 200
    assert response.json() == {"active": False}
    assert response.headers["cache-control"] == "no-store"


def test_introspection_of_an_id_token_is_inactive(web, rp, user_tokens):
    client, secret = rp
    response = web.post(
        "/oauth2/introspect",
        data={"token": user_tokens["id_token"]},
        auth=(client.client_id, secret),
    )
    assert response.json() == {"active": False}


def test_introspection_of_a_valid_access_token_is_active(web, rp, official, user_tokens, clock):
    client, secret = rp
    response = web.post(
        "/oauth2/introspect",
        data={"token": user_tokens["access_token"], "token_type_hint": "access_token"},
        auth=(client.client_id, secret),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True
    assert body["sub"] == official.subject
    assert body["client_id"] == client.client_id
    assert body["scope"] == user_tokens["scope"]
    assert body["exp"] > clock.now().timestamp()


def test_introspection_of_an_expired_access_token_is_inactive(web, rp, user_tokens, clock):
    client, secret = rp
    clock.advance(int(user_tokens["expires_in"]) + 1)
    response = web.post(
        "/oauth2/introspect",
        data={"token": user_tokens["access_token"]},
        auth=(client.client_id, secret),
    )
    assert response.json() == {"active": False}


def test_introspection_without_a_token_is_invalid_request(web, rp):
    client, secret = rp
    response = web.post("/oauth2/introspect", data={}, auth=(client.client_id, secret))
    assert_json_error(response, 400, "invalid_request")


def test_introspection_with_an_unknown_token_type_hint_is_unsupported_token_type(web, rp):
    client, secret = rp
    response = web.post(
        "/oauth2/introspect",
        data={"token": "garbage", "token_type_hint": "id_token"},
        auth=(client.client_id, secret),
    )
    assert_json_error(response, 400, "unsupported_token_type")


def test_introspection_with_a_repeated_token_is_invalid_request(web, rp):
    client, secret = rp
    response = web.post(
        "/oauth2/introspect",
        content="token=a&token=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(client.client_id, secret),
    )
    assert_json_error(response, 400, "invalid_request")


# --- Revocation ---------------------------------------------------------------------------------


def test_revocation_of_garbage_succeeds(web, rp):
    # RFC 7009 §2.2: an invalid token is not an error; the client cannot do anything about it.
    client, secret = rp
    response = web.post(
        "/oauth2/revoke", data={"token": "garbage"}, auth=(client.client_id, secret)
    )
    assert response.status_code == 200


def test_revocation_without_client_authentication_is_invalid_client(web, user_tokens):
    response = web.post("/oauth2/revoke", data={"token": user_tokens["refresh_token"]})
    assert_json_error(response, 401, "invalid_client")


def test_revocation_without_a_token_is_invalid_request(web, rp):
    client, secret = rp
    response = web.post("/oauth2/revoke", data={}, auth=(client.client_id, secret))
    assert_json_error(response, 400, "invalid_request")


def test_revocation_with_an_unknown_token_type_hint_is_unsupported_token_type(web, rp):
    # RFC 7009 §2.2.1 defines unsupported_token_type.
    client, secret = rp
    response = web.post(
        "/oauth2/revoke",
        data={"token": "garbage", "token_type_hint": "id_token"},
        auth=(client.client_id, secret),
    )
    assert_json_error(response, 400, "unsupported_token_type")


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_revocation_of_another_clients_token_is_refused(web, runtime, rp, user_tokens, kind):
    """RFC 7009 §2.1: the server "verifies whether the token was issued to the client making
    the revocation request. If this validation fails, the request is refused and the client is
    informed of the error"; §2.2.1 uses the RFC 6749 §5.2 codes, whose invalid_grant covers a
    grant "issued to another client". Authlib answers exactly that, and the token survives."""
    other, other_secret = register_client(runtime, name="Ứng dụng khác")
    assert other_secret is not None
    response = web.post(
        "/oauth2/revoke",
        data={"token": user_tokens[kind]},
        auth=(other.client_id, other_secret),
    )
    assert_json_error(response, 400, "invalid_grant")
    client, secret = rp
    still = web.post(
        "/oauth2/introspect", data={"token": user_tokens[kind]}, auth=(client.client_id, secret)
    )
    assert still.json()["active"] is True


def test_revocation_by_a_public_client_of_its_own_token_succeeds(web, public_client, official):
    verifier, challenge = pkce_pair()
    back = log_in(
        web, authorize_params(public_client, challenge), "nguyen.van.an", OFFICIAL_PASSWORD
    )
    code = query_of(back.headers["location"])["code"]
    issued = exchange_code(web, public_client, None, code, verifier)
    assert issued.status_code == 200, issued.text
    response = web.post(
        "/oauth2/revoke",
        data={"token": issued.json()["refresh_token"], "client_id": public_client},
    )
    assert response.status_code == 200


# --- Malformed input never becomes a server error ----------------------------------------------

HUGE = "x" * 10_000
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


Request = tuple[str, str, dict]  # method, path, httpx keyword arguments


def malformed_requests(client_id: str, secret: str) -> dict[str, Request]:
    """For UserInfo, then the same list for introspection and for revocation."""
    client_auth = {"auth": (client_id, secret)}

    def userinfo(**options: object) -> Request:
        return "GET", "/oauth2/userinfo", options

    def post(path: str, **options: object) -> Request:
        return "POST", path, options

    requests: dict[str, Request] = {
        "PUT userinfo": ("PUT", "/oauth2/userinfo", {}),
        "DELETE userinfo": ("DELETE", "/oauth2/userinfo", {}),
        "huge bearer": userinfo(headers=bearer(HUGE)),
        "bearer with spaces": userinfo(headers=bearer("a b c")),
        "bearer without token": userinfo(headers={"Authorization": "Bearer"}),
        "bearer non-JSON JWT": userinfo(headers=bearer("e30.bm90anNvbg.c2ln")),
        "bearer non-base64 JWT": userinfo(headers=bearer("!!.??.**")),
        "huge form token": ("POST", "/oauth2/userinfo", {"data": {"access_token": HUGE}}),
        "NUL form token": ("POST", "/oauth2/userinfo", {"data": {"access_token": "a\0b"}}),
        "userinfo JSON body": ("POST", "/oauth2/userinfo", {"json": {"access_token": "x"}}),
        "userinfo multipart": (
            "POST",
            "/oauth2/userinfo",
            {"files": {"access_token": (None, "x")}},
        ),
    }
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        requests |= {
            f"GET {path}": ("GET", path, {}),
            f"{path} huge token": post(path, data={"token": HUGE}, **client_auth),
            f"{path} NUL token": post(path, data={"token": "a\0b"}, **client_auth),
            f"{path} NUL in a JWT": post(path, data={"token": "a.b\0.c"}, **client_auth),
            f"{path} non-UTF-8 token": post(
                path, content=b"token=%ff\xfe", headers=FORM, **client_auth
            ),
            f"{path} NUL hint": post(
                path, data={"token": "x", "token_type_hint": "\0"}, **client_auth
            ),
            f"{path} NUL client_id": post(
                path, data={"token": "x", "client_id": "a\0", "client_secret": "b"}
            ),
            f"{path} non-UTF-8 Basic": post(
                path,
                data={"token": "x"},
                headers={"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()},
            ),
            f"{path} JSON": post(path, json={"token": "x"}, **client_auth),
            f"{path} multipart": post(path, files={"token": (None, "x")}, **client_auth),
        }
    return requests


def test_malformed_requests_never_fail_the_server(web, rp):
    client, secret = rp
    failures = []
    for name, (method, path, options) in malformed_requests(client.client_id, secret).items():
        try:
            response = web.request(method, path, **options)
        except Exception as error:  # the app raised: a 500 for a real client
            failures.append(f"{name}: {error!r}")
            continue
        if response.status_code >= 500 or "Traceback" in response.text:
            failures.append(f"{name}: {response.status_code}")
    assert not failures


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
def test_get_on_a_post_only_endpoint_is_405(web, path):
    response = web.get(path)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
