"""One client authentication method per request (RFC 6749 §2.3), else 400 ``invalid_request``
(§5.2), on every endpoint that authenticates clients: the token endpoint (its general path and
its client_credentials fast path), introspection (both paths) and revocation.

Before, a request carrying Basic credentials *and* a ``client_secret`` in the body was answered
for the Basic client, whatever the body said (a wrong secret, another client's secret).
"""

from __future__ import annotations

import base64

import httpx
import pytest
from starlette.testclient import TestClient

from idp.oauth.client_authentication import presented_methods
from idp.runtime import IdpRuntime
from tests.conftest import register_client
from tests.idp.test_token_errors import assert_token_error

ASSERTION = {
    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    "client_assertion": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def service(runtime: IdpRuntime, method: str, name: str) -> tuple[str, str]:
    client, secret = register_client(
        runtime,
        name=name,
        grant_types=["client_credentials"],
        redirect_uris=[],
        post_logout_redirect_uris=[],
        scope="openid profile",
        auth_method=method,
        first_party=False,
    )
    assert secret is not None
    return client.client_id, secret


@pytest.fixture
def basic_app(runtime: IdpRuntime) -> tuple[str, str]:
    return service(runtime, "client_secret_basic", "Ứng dụng A")


@pytest.fixture
def post_app(runtime: IdpRuntime) -> tuple[str, str]:
    return service(runtime, "client_secret_post", "Ứng dụng B")


def client_credentials(
    web: TestClient, headers: dict[str, str], body: dict[str, str]
) -> httpx.Response:
    return web.post(
        "/oauth2/token", data={"grant_type": "client_credentials", **body}, headers=headers
    )


def warm(web: TestClient, basic_app: tuple[str, str], post_app: tuple[str, str]) -> str:
    """One good token request per client, so both sit in the client cache and the next
    requests may take the fast paths; returns an access token of the Basic client."""
    a_id, a_secret = basic_app
    b_id, b_secret = post_app
    first = client_credentials(web, basic(a_id, a_secret), {})
    assert first.status_code == 200, first.text
    second = client_credentials(web, {}, {"client_id": b_id, "client_secret": b_secret})
    assert second.status_code == 200, second.text
    return str(first.json()["access_token"])


def doubled_credentials(
    basic_app: tuple[str, str], post_app: tuple[str, str]
) -> list[tuple[dict[str, str], dict[str, str]]]:
    """(headers, body) pairs that each carry two methods, or two clients."""
    a_id, a_secret = basic_app
    b_id, b_secret = post_app
    return [
        # Basic and the same client's right secret in the body: still two methods.
        (basic(a_id, a_secret), {"client_id": a_id, "client_secret": a_secret}),
        # Basic and a wrong secret in the body (the request was answered for A before).
        (basic(a_id, a_secret), {"client_id": a_id, "client_secret": "wrong"}),
        # Basic and another client's credentials in the body.
        (basic(a_id, a_secret), {"client_id": b_id, "client_secret": b_secret}),
        # Basic and a body secret without a client_id.
        (basic(a_id, a_secret), {"client_secret": b_secret}),
        # Basic and a client assertion.
        (basic(a_id, a_secret), ASSERTION),
        # A posted secret and a client assertion.
        ({}, {"client_id": b_id, "client_secret": b_secret, **ASSERTION}),
        # An unreadable Basic header is still Basic: beside a posted secret, two methods.
        ({"Authorization": "Basic !!!"}, {"client_id": b_id, "client_secret": b_secret}),
        # Basic for A and a body client_id naming B: two clients.
        (basic(a_id, a_secret), {"client_id": b_id}),
    ]


def test_presented_methods_counts_each_kind_of_credentials():
    assert presented_methods(None, {"client_id": "x"}) == []
    assert presented_methods("Bearer abc", {"client_secret": "s"}) == ["client_secret_post"]
    assert presented_methods("basic Zm9vOmJhcg==", {"client_id": "foo"}) == ["client_secret_basic"]
    assert presented_methods("Basic x", {"client_secret": "s", **ASSERTION}) == [
        "client_secret_basic",
        "client_secret_post",
        "client_assertion",
    ]


def test_token_endpoint_refuses_two_methods_on_both_paths(web, basic_app, post_app):
    warm(web, basic_app, post_app)
    for headers, body in doubled_credentials(basic_app, post_app):
        response = client_credentials(web, headers, body)
        assert_token_error(response, 400, "invalid_request")


def test_token_endpoint_refuses_two_methods_for_the_code_grant(web, rp):
    client, secret = rp
    response = web.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": "whatever",
            "redirect_uri": "https://app.example/cb",
            "code_verifier": "v" * 43,
            "client_id": client.client_id,
            "client_secret": "somebody-elses",
        },
        headers=basic(client.client_id, secret),
    )
    body = assert_token_error(response, 400, "invalid_request")
    assert "authentication method" in body["error_description"]


def test_basic_with_the_same_client_id_in_the_body_is_accepted(web, basic_app, post_app):
    """RFC 6749 §3.2.1 lets a client send its client_id in the body; it names no other
    method, so the request is authenticated by Basic alone."""
    warm(web, basic_app, post_app)
    a_id, a_secret = basic_app
    response = client_credentials(web, basic(a_id, a_secret), {"client_id": a_id})
    assert response.status_code == 200, response.text


def introspect(
    web: TestClient, path: str, headers: dict[str, str], body: dict[str, str]
) -> httpx.Response:
    return web.post(path, data=body, headers=headers)


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
def test_introspection_and_revocation_refuse_two_methods(web, basic_app, post_app, path):
    token = warm(web, basic_app, post_app)
    for headers, body in doubled_credentials(basic_app, post_app):
        response = introspect(web, path, headers, {"token": token, **body})
        assert_token_error(response, 400, "invalid_request")
    # The token was neither revoked nor shown: with one method it is still active.
    a_id, a_secret = basic_app
    active = introspect(web, "/oauth2/introspect", basic(a_id, a_secret), {"token": token})
    assert active.status_code == 200 and active.json()["active"] is True


def test_introspection_with_basic_and_the_same_client_id_is_accepted(web, basic_app, post_app):
    token = warm(web, basic_app, post_app)
    a_id, a_secret = basic_app
    response = introspect(
        web, "/oauth2/introspect", basic(a_id, a_secret), {"token": token, "client_id": a_id}
    )
    assert response.status_code == 200 and response.json()["active"] is True
