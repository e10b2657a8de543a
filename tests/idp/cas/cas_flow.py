"""Drives CAS sign-in like a browser, against the live server, for the CAS tests.

``ServiceApp`` is the shared app's side of single logout: a tiny app on its own loopback port
that records the ``logoutRequest`` POSTs it receives (CAS 3.0 Appendix C).
"""

from __future__ import annotations

import html
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from core.db import transaction
from core.text_search import fold_for_search
from idp.models import Account, AccountProfile, Agency, Unit
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD
from tests.idp.live_server import bind_loopback, issuer_for, serve

HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"')
FORM_ACTION = re.compile(r'<form[^>]* action="([^"]*)" method="post"')


class ServiceApp:
    """Records every form POSTed to it (the service URL receives the logout requests)."""

    def __init__(self, sock: socket.socket) -> None:
        self.base = issuer_for(sock)
        self.received: list[dict[str, list[str]]] = []

        async def record(request: Request) -> PlainTextResponse:
            body = (await request.body()).decode()
            self.received.append(parse_qs(body))
            return PlainTextResponse("ok")

        self.app = Starlette(routes=[Route("/{path:path}", record, methods=["POST"])])

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@contextmanager
def running_service_app() -> Iterator[ServiceApp]:
    sock = bind_loopback()
    try:
        service_app = ServiceApp(sock)
        with serve(service_app.app, sock):
            yield service_app
    finally:
        sock.close()


def is_login_form(response: httpx.Response) -> bool:
    return response.status_code == 200 and 'name="password"' in response.text


def hidden_inputs(page: str) -> dict[str, str]:
    return dict(HIDDEN_INPUT.findall(page))


def submit_password(
    browser: httpx.Client, form_page: httpx.Response, username: str = "nguyen.van.an"
) -> httpx.Response:
    fields = hidden_inputs(form_page.text)
    action = urljoin(str(form_page.url), html.unescape(FORM_ACTION.findall(form_page.text)[0]))
    return browser.post(
        action, data={**fields, "username": username, "password": OFFICIAL_PASSWORD}
    )


def follow_to_service(browser: httpx.Client, response: httpx.Response, issuer: str) -> str:
    """Follow our own redirects; the first Location outside the provider is returned."""
    for _ in range(6):
        assert response.is_redirect, (response.status_code, response.text[:500])
        location = urljoin(str(response.url), response.headers["location"])
        if not location.startswith(issuer + "/"):
            return location
        response = browser.get(location)
    raise AssertionError("redirect loop")


def ticket_of(location: str) -> str | None:
    values = parse_qs(urlsplit(location).query).get("ticket")
    return values[0] if values else None


def sign_in(browser: httpx.Client, login_url: str, issuer: str) -> str:
    """/cas/login → the form → password → back at the service; returns where it landed."""
    form = browser.get(login_url)
    assert is_login_form(form), form.text[:500]
    return follow_to_service(browser, submit_password(browser, form), issuer)


def place_at_work(runtime: IdpRuntime, official: Account) -> None:
    """The conftest official, working in a ward of Lào Cai as a Vietnamese-titled officer:
    every attribute group a CAS service can be released has a value."""
    with transaction(runtime.session_factory) as session:
        now = runtime.clock.now()
        province = Unit(
            code="15",
            level="province",
            name="Tỉnh Lào Cai",
            division_type="tỉnh",
            province_code="15",
            created_at=now,
            updated_at=now,
        )
        ward = Unit(
            code="02647",
            level="ward",
            name="Phường Cam Đường",
            division_type="phường",
            province_code="15",
            created_at=now,
            updated_at=now,
        )
        session.add_all([province, ward])
        session.flush()
        agency = Agency(unit_id=ward.id, kind="people_committee", name="UBND phường Cam Đường")
        session.add(agency)
        session.flush()
        session.add(
            AccountProfile(
                account_id=official.id,
                unit_id=ward.id,
                agency_id=agency.id,
                position="Phó Chủ tịch",
                search_name=fold_for_search(official.full_name),
            )
        )
