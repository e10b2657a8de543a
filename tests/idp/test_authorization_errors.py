"""Errors of the authorization endpoint (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6, RFC 9207).

Before the client and its redirect URI are known to be good, the official sees our own error
page and is never sent anywhere; after that, the error goes back to the client as a redirect
carrying ``error``, ``state`` and ``iss``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from tests.conftest import ISSUER, OFFICIAL_PASSWORD, RP_REDIRECT, register_client
from tests.idp.oidc_flow import authorize_params, log_in, open_login_form, pkce_pair, submit_login

# RFC 6749 §4.1.2.1: error_description is restricted to %x20-21 / %x23-5B / %x5D-7E.
ERROR_TEXT_CHARS = {chr(c) for c in range(0x20, 0x7F)} - {'"', "\\"}
REDIRECT_ERROR_PARAMETERS = {"error", "error_description", "state", "iss"}


def request_authorization(
    web: TestClient, method: str, params: dict[str, str] | list[tuple[str, str]]
) -> httpx.Response:
    if method == "POST":
        return web.post("/oauth2/authorize", data=params)  # type: ignore[arg-type]
    return web.get("/oauth2/authorize", params=params)


def valid_params(client_id: str, /, **changes: str | None) -> dict[str, str]:
    """A valid request for ``client_id``, with parameters changed (None removes one)."""
    _, challenge = pkce_pair()
    params: dict[str, str | None] = {**authorize_params(client_id, challenge), **changes}
    return {name: value for name, value in params.items() if value is not None}


def assert_error_page(response: httpx.Response) -> None:
    """Our own page, never a redirect: the redirect URI could belong to an attacker."""
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text


def redirected_error(response: httpx.Response, state: str | None) -> dict[str, str]:
    """The error parameters of a redirect to the client, checked for RFC 6749 and RFC 9207."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(RP_REDIRECT + "?")
    pairs = parse_qsl(urlsplit(location).query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), names
    assert set(names) <= REDIRECT_ERROR_PARAMETERS, names
    reply = dict(pairs)
    assert reply["iss"] == ISSUER
    assert reply.get("state") == state
    assert set(reply.get("error_description", "")) <= ERROR_TEXT_CHARS
    return reply


# --- No trustworthy redirect URI: our own error page -------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_missing_client_id_shows_the_error_page(web, rp, method):
    response = request_authorization(web, method, valid_params(rp[0].client_id, client_id=None))
    assert_error_page(response)
    assert "<code>invalid_client</code>" in response.text


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_client_id_shows_the_error_page(web, rp, method):
    response = request_authorization(web, method, valid_params("no-such-client"))
    assert_error_page(response)
    assert "<code>invalid_client</code>" in response.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        pytest.param("https://attacker.example/cb", id="other-host"),
        pytest.param(RP_REDIRECT + "/", id="trailing-slash"),
        pytest.param(RP_REDIRECT + "?next=/admin", id="added-query"),
        pytest.param(RP_REDIRECT + "#fragment", id="fragment"),
        pytest.param(RP_REDIRECT.upper(), id="other-case"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unregistered_redirect_uri_is_never_followed(web, rp, method, redirect_uri):
    response = request_authorization(
        web, method, valid_params(rp[0].client_id, redirect_uri=redirect_uri)
    )
    assert_error_page(response)
    assert "attacker" not in response.headers.get("location", "")


def test_missing_redirect_uri_shows_the_error_page(web, rp):
    # OIDC Core §3.1.2.1: redirect_uri is required; we never fall back to a registered one.
    response = web.get("/oauth2/authorize", params=valid_params(rp[0].client_id, redirect_uri=None))
    assert_error_page(response)
    assert "<code>invalid_request</code>" in response.text


def test_repeated_redirect_uri_shows_the_error_page(web, rp):
    params = [*valid_params(rp[0].client_id).items(), ("redirect_uri", RP_REDIRECT)]
    response = web.get("/oauth2/authorize", params=params)
    assert_error_page(response)


def test_redirect_uri_of_another_client_shows_the_error_page(web, runtime, rp):
    register_client(runtime, redirect_uris=["http://127.0.0.1:9/other"])
    response = web.get(
        "/oauth2/authorize",
        params=valid_params(rp[0].client_id, redirect_uri="http://127.0.0.1:9/other"),
    )
    assert_error_page(response)


def test_client_without_the_code_flow_or_a_redirect_uri_gets_the_error_page(web, runtime):
    """A client_credentials-only client has no registered redirect URI, so RFC 6749 §4.1.2.1
    forbids redirecting anywhere, even to report unauthorized_client: our page it is."""
    service, _ = register_client(
        runtime, grant_types=["client_credentials"], redirect_uris=[], first_party=False
    )
    response = web.get("/oauth2/authorize", params=valid_params(service.client_id))
    assert_error_page(response)


def test_error_page_is_vietnamese_by_default(web):
    response = web.get("/oauth2/authorize", params=valid_params("no-such-client"))
    assert_error_page(response)
    assert '<html lang="vi">' in response.text
    assert "Lỗi đăng nhập" in response.text
    assert "Sign-in error" not in response.text


def test_error_page_is_english_with_ui_locales_en(web):
    response = web.get(
        "/oauth2/authorize", params=valid_params("no-such-client", ui_locales="en-GB vi")
    )
    assert_error_page(response)
    assert '<html lang="en">' in response.text
    assert "Sign-in error" in response.text
    assert "For your safety you were not redirected." in response.text


def test_bad_redirect_uri_page_does_not_echo_the_uri_as_a_link(web, rp):
    evil = "https://attacker.example/cb"
    response = web.get("/oauth2/authorize", params=valid_params(rp[0].client_id, redirect_uri=evil))
    assert_error_page(response)
    assert f'href="{evil}' not in response.text


# --- Redirect URI verified: the error goes back to the client ----------------------------------

REDIRECTED_ERRORS = [
    pytest.param({"response_type": "token"}, "unsupported_response_type", id="implicit-token"),
    pytest.param({"response_type": "id_token"}, "unsupported_response_type", id="implicit-id"),
    pytest.param({"response_type": "code id_token"}, "unsupported_response_type", id="hybrid"),
    pytest.param({"scope": "openid profile bogus"}, "invalid_scope", id="unknown-scope"),
    pytest.param({"code_challenge": None}, "invalid_request", id="no-code-challenge"),
    pytest.param({"code_challenge_method": "plain"}, "invalid_request", id="pkce-plain"),
    pytest.param({"code_challenge_method": None}, "invalid_request", id="pkce-no-method"),
    pytest.param({"code_challenge": "tooshort"}, "invalid_request", id="pkce-short-challenge"),
    pytest.param({"code_challenge": "!" * 43}, "invalid_request", id="pkce-bad-characters"),
    pytest.param({"prompt": "none login"}, "invalid_request", id="prompt-none-with-login"),
    pytest.param({"prompt": "bogus"}, "invalid_request", id="prompt-unknown"),
    # Not offered (one SSO session per browser: nothing to choose), so not silently ignored.
    pytest.param({"prompt": "select_account"}, "invalid_request", id="prompt-select-account"),
    pytest.param({"max_age": "abc"}, "invalid_request", id="max-age-not-a-number"),
    pytest.param({"max_age": "-5"}, "invalid_request", id="max-age-negative"),
    pytest.param({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported", id="request"),
    pytest.param(
        {"request_uri": "https://rp.example/req.jwt"}, "request_uri_not_supported", id="req-uri"
    ),
    pytest.param({"response_mode": "fragment"}, "invalid_request", id="response-mode-fragment"),
    pytest.param({"response_mode": "form_post"}, "invalid_request", id="response-mode-form-post"),
    pytest.param({"state": "s" * 3000}, "invalid_request", id="state-too-long"),
    pytest.param({"nonce": "n\x00nce"}, "invalid_request", id="nul-in-nonce"),
    pytest.param({"login_hint": "an\r\nX-Injected: 1"}, "invalid_request", id="crlf-in-login-hint"),
]


@pytest.mark.parametrize(("changes", "error"), REDIRECTED_ERRORS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_invalid_request_is_redirected_with_the_named_error(web, rp, method, changes, error):
    params = valid_params(rp[0].client_id, **changes)
    response = request_authorization(web, method, params)
    reply = redirected_error(response, params["state"])
    assert reply["error"] == error


def test_missing_response_type_is_an_invalid_request(web, rp):
    # RFC 6749 §4.1.2.1: a missing required parameter is invalid_request, not an
    # unsupported_response_type.
    params = valid_params(rp[0].client_id, response_type=None)
    reply = redirected_error(web.get("/oauth2/authorize", params=params), params["state"])
    assert reply["error"] == "invalid_request"


def test_error_redirect_without_state_carries_no_state(web, rp):
    params = valid_params(rp[0].client_id, response_type="token", state=None)
    reply = redirected_error(web.get("/oauth2/authorize", params=params), None)
    assert reply["error"] == "unsupported_response_type"


def test_repeated_state_is_an_invalid_request(web, rp):
    # RFC 6749 §3.1: request parameters MUST NOT be included more than once.
    params = valid_params(rp[0].client_id)
    response = web.get("/oauth2/authorize", params=[*params.items(), ("state", "second")])
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(RP_REDIRECT + "?")
    reply = dict(parse_qsl(urlsplit(location).query))
    assert reply["error"] == "invalid_request"
    assert reply["iss"] == ISSUER
    assert "code" not in reply


@pytest.mark.parametrize("name", ["scope", "code_challenge", "nonce", "response_type"])
def test_repeated_parameter_is_an_invalid_request(web, rp, name):
    params = valid_params(rp[0].client_id)
    response = web.get("/oauth2/authorize", params=[*params.items(), (name, params[name])])
    reply = redirected_error(response, params["state"])
    assert reply["error"] == "invalid_request"


def test_client_with_redirect_uri_but_without_the_code_flow_is_unauthorized(web, runtime):
    service, _ = register_client(
        runtime, grant_types=["client_credentials"], redirect_uris=[RP_REDIRECT]
    )
    params = valid_params(service.client_id)
    reply = redirected_error(web.get("/oauth2/authorize", params=params), params["state"])
    assert reply["error"] == "unauthorized_client"


def test_prompt_none_without_a_session_is_login_required(web, rp):
    params = valid_params(rp[0].client_id, prompt="none")
    reply = redirected_error(web.get("/oauth2/authorize", params=params), params["state"])
    assert reply["error"] == "login_required"


def test_prompt_none_for_an_unconsented_client_is_consent_required(web, runtime, rp, official):
    log_in(web, valid_params(rp[0].client_id), "nguyen.van.an", OFFICIAL_PASSWORD)
    outside, _ = register_client(runtime, name="Ứng dụng bên ngoài", first_party=False)
    params = valid_params(outside.client_id, prompt="none")
    reply = redirected_error(web.get("/oauth2/authorize", params=params), params["state"])
    assert reply["error"] == "consent_required"


def test_prompt_none_with_expired_max_age_is_login_required(web, rp, official, clock):
    log_in(web, valid_params(rp[0].client_id), "nguyen.van.an", OFFICIAL_PASSWORD)
    clock.advance(120)
    params = valid_params(rp[0].client_id, prompt="none", max_age="60")
    reply = redirected_error(web.get("/oauth2/authorize", params=params), params["state"])
    assert reply["error"] == "login_required"


def test_prompt_none_with_another_login_hint_is_login_required(web, rp, official):
    log_in(web, valid_params(rp[0].client_id), "nguyen.van.an", OFFICIAL_PASSWORD)
    params = valid_params(rp[0].client_id, prompt="none", login_hint="tran.thi.binh")
    reply = redirected_error(web.get("/oauth2/authorize", params=params), params["state"])
    assert reply["error"] == "login_required"


# --- Malformed input never becomes a server error ----------------------------------------------

HUGE = "x" * 10_000


Request = tuple[str, str, dict]  # method, URL, httpx keyword arguments


def malformed_authorization_requests(client_id: str) -> dict[str, Request]:
    good = urlencode(valid_params(client_id))

    def get(query: str, path: str = "/oauth2/authorize") -> Request:
        return "GET", f"{path}?{query}", {}

    def post(body: str | bytes) -> Request:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        return "POST", "/oauth2/authorize", {"content": body, "headers": form}

    return {
        "huge client_id": get(f"client_id={HUGE}"),
        "huge redirect_uri": get(f"{good}&redirect_uri={HUGE}"),
        "huge state": get(f"{good}&state={HUGE}"),
        "huge everything": get("&".join(f"p{i}={HUGE}" for i in range(5))),
        "very long client_id": get(f"client_id={'c' * 300}"),
        "many parameters": get("&".join(f"p{i}=v" for i in range(500))),
        "non-UTF-8 client_id": get("client_id=%ff%fe"),
        "non-UTF-8 scope": get(f"{good}&scope=openid%ff"),
        "broken percent-encoding": get("client_id=%zz&state=%"),
        "NUL in client_id": get("client_id=abc%00def"),
        "NUL in redirect_uri": get(f"client_id={client_id}&redirect_uri={RP_REDIRECT}%00"),
        "NUL in state": get(f"{good}&state=a%00b"),
        "NUL in nonce": get(f"{good}&nonce=a%00b"),
        "NUL in login_hint": get(f"{good}&login_hint=an%00"),
        "NUL in a parameter name": get(f"{good}&a%00b=c"),
        "control characters in ui_locales": get(f"{good}&ui_locales=%01%1b"),
        "non-ASCII response_type": get(f"{good}&response_type=c%C3%B3de"),
        "huge form field": post(f"client_id={HUGE}"),
        "many form fields": post("&".join(f"p{i}=v" for i in range(500))),
        "non-UTF-8 form": post(b"client_id=\xff\xfe&state=%ff"),
        "NUL in form": post(f"client_id={client_id}%00"),
        "binary form": post(bytes(range(256))),
        "JSON body": ("POST", "/oauth2/authorize", {"json": valid_params(client_id)}),
        "multipart body": ("POST", "/oauth2/authorize", {"files": {"client_id": (None, "x")}}),
        "PUT": ("PUT", f"/oauth2/authorize?{good}", {}),
        "DELETE": ("DELETE", f"/oauth2/authorize?{good}", {}),
        "resume without interaction": ("GET", "/oauth2/authorize/resume", {}),
        "resume with NUL interaction": get("interaction=a%00", "/oauth2/authorize/resume"),
        "resume with huge interaction": get(f"interaction={HUGE}", "/oauth2/authorize/resume"),
        "logout with NUL client_id": get("client_id=a%00", "/oauth2/logout"),
        "logout with huge id_token_hint": get(f"id_token_hint={HUGE}", "/oauth2/logout"),
        "logout with garbage id_token_hint": get("id_token_hint=a.b.c", "/oauth2/logout"),
    }


def test_malformed_authorization_requests_never_fail_the_server(web, rp):
    failures = []
    for name, (method, url, options) in malformed_authorization_requests(rp[0].client_id).items():
        try:
            response = web.request(method, url, **options)
        except Exception as error:  # the app raised: a 500 for a real client
            failures.append(f"{name}: {error!r}")
            continue
        if response.status_code >= 500 or "Traceback" in response.text:
            failures.append(f"{name}: {response.status_code}")
    assert not failures


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("nguyen.van.an\x00", OFFICIAL_PASSWORD, id="nul-in-username"),
        pytest.param("\x00", OFFICIAL_PASSWORD, id="only-nul"),
        pytest.param("nguyen.van.an", OFFICIAL_PASSWORD + "\x00", id="nul-in-password"),
    ],
)
def test_login_with_a_nul_is_refused_not_a_server_error(web, rp, official, username, password):
    # The login step of the flow: PostgreSQL refuses NUL in text, so it must not reach a query.
    login_page = open_login_form(web, valid_params(rp[0].client_id))
    response = submit_login(web, login_page, username, password)
    assert response.status_code == 401
    assert "Traceback" not in response.text


def test_discovery_offers_only_the_prompt_values_that_work(web, rp):
    """select_account is not offered (a browser holds one SSO session: nothing to choose), and
    every value that is offered is accepted by the authorization endpoint."""
    offered = web.get("/.well-known/openid-configuration").json()["prompt_values_supported"]
    assert offered == ["none", "login", "consent"]
    for value in offered:
        params = valid_params(rp[0].client_id, prompt=value)
        response = web.get("/oauth2/authorize", params=params)
        assert "error=invalid_request" not in response.headers.get("location", ""), value
