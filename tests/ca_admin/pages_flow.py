"""Signing in to the CA pages through the real IdP login form, like a browser, for tests."""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import httpx
from starlette.testclient import TestClient

from core.db import transaction
from idp import accounts
from idp.models import Account
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD
from tests.idp.oidc_flow import submit_login

FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def set_password(runtime: IdpRuntime, account: Account) -> None:
    with transaction(runtime.session_factory) as session:
        stored = session.get(Account, account.id)
        assert stored is not None
        accounts.set_password(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            account=stored,
            password=OFFICIAL_PASSWORD,
        )


def follow(web: TestClient, response: httpx.Response, *, stop: str) -> httpx.Response:
    """Follow redirects until one points at ``stop`` (a path prefix) or a page is shown."""
    for _ in range(8):
        location = response.headers.get("location", "")
        if response.status_code not in (302, 303) or urlsplit(location).path.startswith(stop):
            return response
        response = web.get(location)
    raise AssertionError("redirect loop")


def sign_in(
    web: TestClient, runtime: IdpRuntime, account: Account, next_path: str = "/ca/pages/"
) -> httpx.Response:
    """A fresh browser signs in to the CA pages; returns the page it lands on."""
    set_password(runtime, account)
    web.cookies.clear()
    started = web.get("/ca/pages/login", params={"next": next_path})
    assert started.status_code == 303, started.text
    login_page = follow(web, started, stop="/login")
    login_page = web.get(login_page.headers["location"]) if login_page.is_redirect else login_page
    assert login_page.status_code == 200, login_page.text
    submitted = submit_login(web, login_page, account.username, OFFICIAL_PASSWORD)
    assert submitted.status_code == 303, submitted.text
    callback = follow(web, submitted, stop="/ca/pages/callback")
    landed = web.get(callback.headers["location"])
    assert landed.status_code == 303, landed.text
    assert "ca_session" in landed.headers.get("set-cookie", "")
    return web.get(landed.headers["location"])


def reauthenticate(web: TestClient, link: str, username: str) -> httpx.Response:
    """Follow the page's 'confirm my identity' link through the IdP's login form again."""
    started = web.get(html.unescape(link))
    assert started.status_code == 303
    page = follow(web, started, stop="/login")
    page = web.get(page.headers["location"]) if page.is_redirect else page
    assert page.status_code == 200 and 'name="password"' in page.text, page.text
    submitted = submit_login(web, page, username, OFFICIAL_PASSWORD)
    callback = follow(web, submitted, stop="/ca/pages/callback")
    landed = web.get(callback.headers["location"])
    assert landed.status_code == 303, landed.text
    return web.get(landed.headers["location"])


def csrf_of(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)
