"""Drives the real login form like a browser would, for tests."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.testclient import TestClient

from tests.conftest import RP_REDIRECT

HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"')
FORM_ACTION = re.compile(r'<form[^>]* action="([^"]*)" method="post"')


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


def authorize_params(client_id: str, challenge: str, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": RP_REDIRECT,
        "scope": "openid profile email offline_access",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def hidden_inputs(html: str) -> dict[str, str]:
    return dict(HIDDEN_INPUT.findall(html))


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def submit_login(
    web: TestClient, login_page: httpx.Response, username: str, password: str
) -> httpx.Response:
    fields = hidden_inputs(login_page.text)
    action = html.unescape(FORM_ACTION.findall(login_page.text)[0])
    return web.post(action, data={**fields, "username": username, "password": password})


def follow_to_client(
    web: TestClient, response: httpx.Response, leaving_for: str = RP_REDIRECT
) -> httpx.Response:
    """Follow our own redirects until one leaves for the client's redirect URI (or, for a CAS
    service, ``leaving_for`` its URL)."""
    for _ in range(6):
        location = response.headers.get("location", "")
        if response.status_code not in (302, 303) or location.startswith(leaving_for):
            return response
        response = web.get(location)
    raise AssertionError("redirect loop")


def open_login_form(web: TestClient, params: dict[str, str]) -> httpx.Response:
    """The authorization request without a session: the login form, which the authorization
    endpoint shows itself (or, if it answers with a redirect, the page it leads to)."""
    started = web.get("/oauth2/authorize", params=params)
    if started.status_code == 303:
        assert started.headers["location"].startswith("/login?interaction="), started.headers
        started = web.get(started.headers["location"])
    assert started.status_code == 200, started.text
    assert 'name="password"' in started.text and 'name="interaction"' in started.text
    return started


def log_in(web: TestClient, params: dict[str, str], username: str, password: str) -> httpx.Response:
    """authorize (login form) → POST credentials → redirect to the client, following whatever
    steps the server puts in between (``/oauth2/authorize/resume``, for instance)."""
    login_page = open_login_form(web, params)
    submitted = submit_login(web, login_page, username, password)
    assert submitted.status_code == 303, submitted.text
    return follow_to_client(web, submitted)


def exchange_code(
    web: TestClient, client_id: str, secret: str | None, code: str, verifier: str, **extra: str
) -> httpx.Response:
    data: dict[str, Any] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": RP_REDIRECT,
        "code_verifier": verifier,
        **extra,
    }
    if secret is None:
        return web.post("/oauth2/token", data={**data, "client_id": client_id})
    return web.post("/oauth2/token", data=data, auth=(client_id, secret))
