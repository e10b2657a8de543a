"""A browser (one httpx client, one cookie jar) signing in at our provider through the
upstream one, for tests."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from tests.conftest import OFFICIAL_PASSWORD, RP_REDIRECT
from tests.idp.federation.conftest import UPSTREAM_USERNAME
from tests.idp.live_server import LiveServer
from tests.idp.oidc_flow import FORM_ACTION, authorize_params, hidden_inputs, pkce_pair, query_of

UPSTREAM_BUTTON = re.compile(r'<a class="button[^"]*" href="(/login/upstream/[^"]+)">([^<]+)</a>')


def upstream_buttons(page: str) -> list[tuple[str, str]]:
    return [
        (html.unescape(href), html.unescape(text)) for href, text in UPSTREAM_BUTTON.findall(page)
    ]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {**query_of(url), **changes}
    return urlunsplit(parts._replace(query=urlencode(query)))


class Browser:
    """Follows redirects itself, so a test can look at (and tamper with) each hop."""

    def __init__(self, ours: LiveServer) -> None:
        self.ours = ours
        self.http = httpx.Client(follow_redirects=False, timeout=20.0)
        self.verifier, challenge = pkce_pair()
        self.params = authorize_params("", challenge)

    def close(self) -> None:
        self.http.close()

    def get(self, url: str) -> httpx.Response:
        return self.http.get(url if "://" in url else self.ours.url(url))

    def open_login(self, client_id: str, **extra: str) -> httpx.Response:
        self.params = {**self.params, "client_id": client_id, **extra}
        page = self.get(f"/oauth2/authorize?{urlencode(self.params)}")
        if page.status_code == 303:
            page = self.get(page.headers["location"])
        assert page.status_code == 200, page.text
        return page

    def to_upstream(self, client_id: str) -> httpx.Response:
        """Our login page → its upstream button → the upstream's authorization request."""
        buttons = upstream_buttons(self.open_login(client_id).text)
        assert buttons, "the login page offers no upstream provider"
        started = self.get(buttons[0][0])
        assert started.status_code == 303, started.text
        return started

    def sign_in_upstream(self, authorize_url: str) -> httpx.Response:
        """At the upstream: its login form, the official's password; returns its redirect
        back to our callback."""
        page = self.get(authorize_url)
        if page.status_code == 303:
            page = self.get(urljoin_origin(authorize_url, page.headers["location"]))
        assert page.status_code == 200, page.text
        action = html.unescape(FORM_ACTION.findall(page.text)[0])
        submitted = self.http.post(
            urljoin_origin(authorize_url, action),
            data={
                **hidden_inputs(page.text),
                "username": UPSTREAM_USERNAME,
                "password": OFFICIAL_PASSWORD,
            },
        )
        assert submitted.status_code == 303, submitted.text
        location = submitted.headers["location"]
        while "/login/upstream/" not in location:
            submitted = self.get(urljoin_origin(authorize_url, location))
            assert submitted.status_code in (302, 303), submitted.text
            location = submitted.headers["location"]
        return submitted

    def callback_url(self, client_id: str, tamper: Callable[[str], str] = str) -> str:
        """Our login → the upstream (its authorization request through ``tamper``) → the
        official's password there; returns the URL of our callback it redirects to."""
        started = self.to_upstream(client_id)
        back = self.sign_in_upstream(tamper(started.headers["location"]))
        return str(back.headers["location"])

    def follow_to_client(self, response: httpx.Response) -> httpx.Response:
        for _ in range(6):
            location = response.headers.get("location", "")
            if response.status_code not in (302, 303) or location.startswith(RP_REDIRECT):
                return response
            response = self.get(location)
        raise AssertionError("redirect loop")


def urljoin_origin(base: str, location: str) -> str:
    if "://" in location:
        return location
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc}{location}"
