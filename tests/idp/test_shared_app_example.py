"""The demo shared app (examples/shared_app) against the provider over real HTTP: sign-in with
code + PKCE, a real back-channel delivery ending its session, and its logout receiver
refusing bad logout tokens with 400 (Back-Channel Logout 1.0 §2.6, §2.8)."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from core.db import transaction
from idp.logout import backchannel
from idp.models import BrowserSession
from tests.browser_support import SharedApp, bind_loopback, run_shared_app
from tests.conftest import OFFICIAL_PASSWORD, register_client
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    LiveServer,
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
)
from tests.idp.oidc_flow import hidden_inputs

FORM_ACTION = re.compile(r'<form\b[^>]*\baction="([^"]*)"[^>]*\bmethod="post"')
EVENT = {backchannel.LOGOUT_EVENT: {}}


@pytest.fixture
def demo(live_server: LiveServer, runtime, official) -> Iterator[tuple[SharedApp, object]]:
    sock = bind_loopback()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client, secret = register_client(
        runtime,
        redirect_uris=[f"{base}/auth/callback"],
        post_logout_redirect_uris=[f"{base}/logged-out"],
        backchannel_logout_uri=f"{base}/backchannel-logout",
        scope="openid profile email",
    )
    assert secret is not None
    with run_shared_app(
        issuer=live_server.issuer,
        client_id=client.client_id,
        client_secret=secret,
        sock=sock,
        name="Ứng dụng mẫu",
    ) as app:
        yield app, client
    sock.close()


def sign_in(browser: httpx.Client, app: SharedApp) -> None:
    login = browser.get(app.url("/login"))
    # The authorization endpoint shows the form itself (or redirects to /login).
    assert login.url.path in ("/oauth2/authorize", "/login") and 'name="password"' in login.text
    action = html.unescape(FORM_ACTION.findall(login.text)[0])
    home = browser.post(
        str(login.url.join(action)),
        data={
            **hidden_inputs(login.text),
            "username": "nguyen.van.an",
            "password": OFFICIAL_PASSWORD,
        },
    )
    assert home.url == app.url("/") and "Signed in as" in home.text, home.text[:500]
    # PKCE S256 was used: the authorization request in the history carried the challenge.
    authorize = next(r for r in [*login.history, login] if r.url.path == "/oauth2/authorize")
    assert parse_qs(urlsplit(str(authorize.url)).query)["code_challenge_method"] == ["S256"]


def sign_token(runtime, client_id: str, **claims) -> str:
    now = runtime.clock.now()
    base = {
        "iss": runtime.settings.issuer,
        "aud": client_id,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 120,
        "jti": f"jti-{len(claims)}-{sorted(claims)}",
        "sub": "someone",
        "sid": "some-session",
        "events": EVENT,
    }
    base.update(claims)
    payload = {k: v for k, v in base.items() if v is not None}
    return runtime.keyring.sign_jwt(payload, alg="RS256", now=now, typ="logout+jwt")


def test_demo_app_signs_in_and_is_signed_out_by_a_real_delivery(demo, runtime):
    app, _ = demo
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        sign_in(browser, app)
        # RP-initiated logout through the app: the provider queues a notice to the app itself.
        out = browser.get(app.url("/logout"))
        assert out.url.path == "/logged-out"

        async def round_() -> list[backchannel.DeliveryOutcome]:
            async with httpx.AsyncClient() as http:
                return await backchannel.deliver_due(runtime, http)

        [outcome] = asyncio.run(round_())
        assert outcome.status == "delivered"  # the demo app answered 200 to a real token
        assert "Not signed in" in browser.get(app.url("/")).text


def test_demo_app_ends_the_session_named_by_a_logout_token(demo, runtime):
    app, client = demo
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        sign_in(browser, app)
        # The sid the app holds: the one of the provider's only session.
        with transaction(runtime.session_factory) as session:
            sid = session.scalar(select(BrowserSession.sid))
        receiver = app.url("/backchannel-logout")

        def post(token: str | None) -> httpx.Response:
            data = {"logout_token": token} if token is not None else {}
            return httpx.post(receiver, data=data, timeout=10)

        cid = client.client_id
        bad = {
            "missing": post(None),
            "garbage": post("not.a.jwt"),
            "nonce": post(sign_token(runtime, cid, sid=sid, nonce="n-0S6_WzA2Mj")),
            "aud": post(sign_token(runtime, "another-app", sid=sid)),
            "iss": post(sign_token(runtime, cid, sid=sid, iss="https://evil.example")),
            "events": post(sign_token(runtime, cid, sid=sid, events={"other": {}})),
            "neither": post(sign_token(runtime, cid, sid=None, sub=None)),
            "old": post(sign_token(runtime, cid, sid=sid, iat=1_000_000_000)),
        }
        for case, response in bad.items():
            assert response.status_code == 400, case
            assert response.json()["error"] == "invalid_request", case
            assert response.headers["cache-control"] == "no-store", case
        assert "Signed in as" in browser.get(app.url("/")).text  # none of them counted

        good = sign_token(runtime, cid, sid=sid, jti="good-one")
        assert post(good).status_code == 200
        assert post(good).status_code == 400  # jti replayed
        assert "Not signed in" in browser.get(app.url("/")).text
