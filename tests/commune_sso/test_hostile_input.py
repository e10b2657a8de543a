"""Hostile input everywhere a body or parameter arrives: never a 5xx, always the endpoint's own
400 format (SCIM Error, the CA and admin APIs' ``{"error", "message"}``, RFC 6749 JSON, an
error page or redirect), on SQLite and PostgreSQL.

Property-based (Hypothesis): strings drawn with lone surrogates (category Cs), NUL and other
controls, bidi overrides and quotes, inside arbitrary and deeply nested JSON, sent to every
JSON endpoint and the main form endpoints through the real app with real tokens.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from core.web.json_body import JsonBodyError, parse_json_body
from idp.runtime import IdpRuntime
from tests.ca_admin.test_api import service_token
from tests.conftest import RP_REDIRECT
from tests.idp import test_scim as scim_read_side
from tests.idp.oidc_flow import (
    FORM_ACTION,
    authorize_params,
    hidden_inputs,
    open_login_form,
    pkce_pair,
)
from tests.idp.test_admin_import_api import admin_app, make_account, token_for, wards

directory = scim_read_side.directory
province_token = scim_read_side.province_token
__all__ = ["admin_app", "wards"]  # fixtures, used by name

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CA_SCOPES = "ca:read ca:request ca:approve ca:revoke"

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# The texts that broke endpoints once, and the categories they come from.
KNOWN_HOSTILE = ["\x00", "\ud800", "\udfff", "a\x00b", '"', "\u202e", "%00", "\\", "\ufeff"]
hostile_text = st.one_of(
    st.sampled_from(KNOWN_HOSTILE),
    st.text(
        alphabet=st.characters(categories=("Cs", "Cc", "Cf", "Zs", "Ll", "Lu", "Nd", "Po", "Sm")),
        max_size=12,
    ),
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)


def deep(depth: int, opener: str) -> str:
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


nested_body = st.builds(deep, st.integers(min_value=33, max_value=20_000), st.sampled_from("[{"))


def encoded(value: Any) -> bytes:
    # ensure_ascii: lone surrogates become "\ud800" escapes, which are valid JSON.
    return json.dumps(value, ensure_ascii=True).encode()


def body_with(template: dict[str, Any], name: str, value: Any) -> bytes:
    return encoded({**template, name: value})


# --------------------------------------------------------------------------------------------
# The reader itself


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 100_000, JsonBodyError.SYNTAX),
        (b"[" * 40 + b"]" * 40, JsonBodyError.TOO_DEEP),
        (b'{"a":' * 40 + b"1" + b"}" * 40, JsonBodyError.TOO_DEEP),
        (b'["\\ud800"]', JsonBodyError.UNSTORABLE_TEXT),
        (b'{"\\u0000": 1}', JsonBodyError.UNSTORABLE_TEXT),
        (b'"\xed\xa0\x80"', JsonBodyError.SYNTAX),  # a raw surrogate is not UTF-8
        (b"[NaN]", JsonBodyError.SYNTAX),
        (b"1" * 5000, JsonBodyError.SYNTAX),  # past int()'s digit limit
        (b"x" * 2000, JsonBodyError.TOO_LARGE),
    ],
)
def test_json_reader_refuses_before_it_recurses(raw, reason):
    with pytest.raises(JsonBodyError) as refused:
        parse_json_body(raw, max_bytes=1024 if reason == JsonBodyError.TOO_LARGE else 10**6)
    assert refused.value.reason == reason


def test_json_reader_keeps_what_is_fine():
    raw = '{"a": [{"b": "[[[{{"}], "c": "\\ud83d\\ude00 \\\\u0000", "d": "' + "[" * 40 + '"}'
    document = parse_json_body(raw.encode(), max_bytes=10**6)
    assert document["c"] == "😀 \\u0000" and document["a"] == [{"b": "[[[{{"}]
    assert parse_json_body(b"[" * 32 + b"]" * 32, max_bytes=10**6) is not None


# --------------------------------------------------------------------------------------------
# SCIM


def assert_scim_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/scim+json")
        body = response.json()
        assert body["schemas"] == [SCIM_ERROR] and body["status"] == str(response.status_code)


def scim_send(web: TestClient, token: str, method: str, path: str, raw: bytes) -> httpx.Response:
    return web.request(
        method,
        f"/scim/v2{path}",
        content=raw,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )


SCIM_USER = {"schemas": [CORE_USER], "userName": "hostile.user", "displayName": "Người thử"}
SCIM_GROUP = {"schemas": [GROUP], "displayName": "Nhóm thử"}


def test_scim_bodies_never_fail_the_server(web, province_token):
    @FUZZ
    @given(
        target=st.sampled_from(
            [
                ("POST", "/Users", SCIM_USER),
                ("PUT", "/Users/no-such-id", SCIM_USER),
                ("POST", "/Groups", SCIM_GROUP),
                ("POST", "/Users/.search", {"schemas": [SEARCH]}),
                ("POST", "/Groups/.search", {"schemas": [SEARCH]}),
            ]
        ),
        field=st.sampled_from(["userName", "displayName", "externalId", "filter", "name"]),
        value=json_value,
    )
    def check(target, field, value):
        method, path, template = target
        assert_scim_answer(
            scim_send(web, province_token, method, path, body_with(template, field, value))
        )

    check()


def test_scim_patch_and_nesting_never_fail_the_server(web, province_token):
    listed = web.get("/scim/v2/Users", headers={"Authorization": f"Bearer {province_token}"})
    user_id = listed.json()["Resources"][0]["id"]  # one of the directory's officials

    @FUZZ
    @given(
        operation=st.fixed_dictionaries(
            {"op": st.sampled_from(["add", "replace", "Replace", "remove"]) | hostile_text},
            optional={"path": hostile_text, "value": json_value},
        ),
        nested=st.none() | nested_body,
    )
    def check(operation, nested):
        raw = (
            nested.encode()
            if nested is not None
            else encoded({"schemas": [PATCH_OP], "Operations": [operation]})
        )
        assert_scim_answer(scim_send(web, province_token, "PATCH", f"/Users/{user_id}", raw))

    check()


@pytest.mark.parametrize(
    "path",
    [
        "/Users/%00",
        "/Users/abc%00def",
        "/Users/%C0%80",  # an overlong NUL
        "/Users/%ED%A0%80",  # an encoded surrogate
        "/Users?filter=userName%20eq%20%22a%00%22",
        "/Users?filter=userName%20eq%20%22%ED%A0%80%22",
        "/Groups?startIndex=%00",
    ],
)
def test_scim_paths_and_queries_with_nul_get_a_scim_error(web, province_token, path):
    response = web.get(f"/scim/v2{path}", headers={"Authorization": f"Bearer {province_token}"})
    assert response.status_code == 400, response.text
    assert_scim_answer(response)


def test_scim_lone_surrogate_and_nul_in_a_user_are_invalid_values(web, province_token):
    for bad in ["\ud800", "a\x00"]:
        response = scim_send(
            web, province_token, "POST", "/Users", body_with(SCIM_USER, "userName", bad)
        )
        assert response.status_code == 400, response.text
        assert response.json()["scimType"] == "invalidValue"
    deep_response = scim_send(
        web, province_token, "POST", "/Users", ("[" * 5000 + "]" * 5000).encode()
    )
    assert deep_response.status_code == 400
    assert deep_response.json()["scimType"] == "invalidSyntax"


# --------------------------------------------------------------------------------------------
# CA API and admin API


def assert_api_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["error"], str) and isinstance(body["message"], str), body


@pytest.fixture
def ca_token(web: TestClient, runtime: IdpRuntime) -> str:
    token, _, _ = service_token(web, runtime, CA_SCOPES)
    return token


def test_ca_api_bodies_never_fail_the_server(web, ca_token):
    @FUZZ
    @given(
        path=st.sampled_from(
            ["/requests", "/requests/1/approve", "/requests/1/reject", "/certificates/01/revoke"]
        ),
        value=json_value,
        field=st.sampled_from(["csr", "profile", "reason", "idempotency_key", "invalidity_date"]),
        nested=st.none() | nested_body,
    )
    def check(path, value, field, nested):
        raw = nested.encode() if nested is not None else body_with({}, field, value)
        response = web.post(
            f"/ca/api/v1{path}",
            content=raw,
            headers={"Authorization": f"Bearer {ca_token}", "Content-Type": "application/json"},
        )
        assert_api_answer(response)

    check()


@pytest.mark.parametrize(
    "path",
    [
        "/ca/api/v1/certificates?q=%00",
        "/ca/api/v1/certificates?status=good%00",
        "/ca/api/v1/requests?q=%ED%A0%80",
        "/ca/api/v1/certificates/%00",
        "/ca/api/v1/requests/1%00",
        "/admin/api/v1/imports/%00",
        "/admin/api/v1/imports/abc%00/results",
    ],
)
def test_api_paths_and_filters_with_nul_get_the_api_error(web, ca_token, path):
    response = web.get(path, headers={"Authorization": f"Bearer {ca_token}"})
    assert response.status_code == 400, response.text
    assert_api_answer(response)
    assert response.json()["error"] == "invalid_request"


def test_nul_in_an_idempotency_key_is_refused(web, ca_token):
    response = web.post(
        "/ca/api/v1/requests",
        json={"profile": "official-document-signing", "csr": "x", "idempotency_key": "k\x00"},
        headers={"Authorization": f"Bearer {ca_token}"},
    )
    assert response.status_code == 400, response.text
    assert_api_answer(response)


def test_admin_import_api_never_fails_the_server(web, runtime, admin_app, wards):
    make_account(runtime, "quan.tri.fuzz", system=True)
    token = token_for(web, admin_app, "quan.tri.fuzz")

    @FUZZ
    @given(job=hostile_text, dry_run=hostile_text, name=hostile_text)
    def check(job, dry_run, name):
        headers = {"Authorization": f"Bearer {token}"}
        quoted = quote(job.encode("utf-8", "surrogatepass"), safe="")
        for response in (
            web.get(f"/admin/api/v1/imports/{quoted or 'x'}", headers=headers),
            web.post(
                f"/admin/api/v1/imports?dry_run={quote(dry_run.encode('utf-8', 'surrogatepass'))}",
                files={"file": ("a.csv", b"a,b\n", "text/csv")},
                headers=headers,
            ),
            web.post(
                "/admin/api/v1/imports",
                params={"filename": name.encode("utf-8", "surrogatepass").decode("latin-1")},
                content=b"a,b\n",
                headers={**headers, "Content-Type": "text/csv"},
            ),
        ):
            assert_api_answer(response)

    check()


# --------------------------------------------------------------------------------------------
# OAuth and the login form


def form_body(fields: dict[str, str]) -> bytes:
    # Percent-encoded UTF-8, surrogates as their (invalid) 3-byte form: what a broken client sends.
    return "&".join(
        f"{quote(k.encode('utf-8', 'surrogatepass'))}={quote(v.encode('utf-8', 'surrogatepass'))}"
        for k, v in fields.items()
    ).encode()


def assert_oauth_json(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json")
        assert isinstance(response.json()["error"], str)


def test_back_channel_forms_never_fail_the_server(web, rp):
    client, secret = rp

    @FUZZ
    @given(
        endpoint=st.sampled_from(["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"]),
        fields=st.dictionaries(
            st.sampled_from(["grant_type", "code", "token", "refresh_token", "scope", "client_id"])
            | hostile_text,
            hostile_text,
            max_size=4,
        ),
        authenticated=st.booleans(),
    )
    def check(endpoint, fields, authenticated):
        response = web.post(
            endpoint,
            content=form_body(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            auth=(client.client_id, secret) if authenticated else None,
        )
        assert_oauth_json(response)

    check()


def test_authorize_never_fails_the_server(web, rp):
    client = rp[0]

    @FUZZ
    @given(
        name=st.sampled_from(
            ["response_type", "scope", "state", "nonce", "prompt", "redirect_uri", "client_id"]
        ),
        value=hostile_text,
    )
    def check(name, value):
        _, challenge = pkce_pair()
        params = {**authorize_params(client.client_id, challenge), name: value}
        query = form_body(params).decode()
        response = web.get(f"/oauth2/authorize?{query}", headers={"Accept": "text/html"})
        assert response.status_code < 500, response.text
        if response.status_code == 302:
            assert response.headers["location"].startswith(RP_REDIRECT)
            assert "error=" in response.headers["location"]
        elif response.status_code >= 400:
            assert response.headers["content-type"].startswith("text/html")

    check()


@pytest.mark.parametrize("response_type", ['code"', "code\u202e", '"', "\u202e"])
def test_authorize_response_type_with_quote_or_bidi_is_an_error_redirect(web, rp, response_type):
    _, challenge = pkce_pair()
    params = authorize_params(rp[0].client_id, challenge, response_type=response_type)
    response = web.get("/oauth2/authorize", params=params)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(RP_REDIRECT + "?")
    assert "error=unsupported_response_type" in location or "error=invalid_request" in location


def test_login_form_never_fails_the_server(web, rp, official):
    _, challenge = pkce_pair()
    login_page = open_login_form(web, authorize_params(rp[0].client_id, challenge))

    # Each attempt pays a password hash (a dummy one for unknown names): few examples.
    @settings(FUZZ, max_examples=8)
    @given(username=hostile_text, password=hostile_text)
    def check(username, password):
        fields = {**hidden_inputs(login_page.text), "username": username, "password": password}
        response = web.post(
            html.unescape(FORM_ACTION.findall(login_page.text)[0]),
            content=form_body(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code < 500, response.text
        assert "Traceback" not in response.text

    check()


@pytest.mark.parametrize("name", ["client_id", "redirect_uri", "state", "scope"])
def test_authorize_with_nul_redirects_or_shows_the_page_never_5xx(web, rp, name):
    _, challenge = pkce_pair()
    params = {**authorize_params(rp[0].client_id, challenge), name: "x\x00y"}
    response = web.get("/oauth2/authorize", params=params, headers={"Accept": "text/html"})
    if name in ("client_id", "redirect_uri"):  # nothing trustworthy to redirect to: our page
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("text/html")
    else:
        assert response.status_code == 302, response.text
        assert "error=invalid_request" in response.headers["location"]
