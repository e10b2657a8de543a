"""OpenID Front-Channel Logout 1.0: the logged-out page embeds an iframe per app of the session
(with iss and sid when the app requires them), the page's CSP lets exactly those origins be
framed, and with a post_logout_redirect_uri the page goes on there once the frames loaded."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import jwt as pyjwt
from starlette.testclient import TestClient

from core.web.templating import CONTENT_SECURITY_POLICY
from tests.conftest import ISSUER, RP_LOGOUT_REDIRECT, RP_REDIRECT, register_client
from tests.idp.oidc_flow import hidden_inputs
from tests.idp.test_backchannel_logout import sign_in

IFRAME = re.compile(r'<iframe class="frontchannel-logout" src="([^"]*)"')
APP_ORIGIN = "http://127.0.0.1:9"  # the origin of RP_REDIRECT


def iframes(page: str) -> list[str]:
    return [html.unescape(src) for src in IFRAME.findall(page)]


def frame_src(response) -> str:
    policy = response.headers["content-security-policy"]
    [directive] = [d.strip() for d in policy.split(";") if d.strip().startswith("frame-src")]
    return directive


def test_logged_out_page_frames_each_app_with_iss_and_sid(app, runtime, official):
    browser = TestClient(app, base_url=ISSUER, follow_redirects=False)
    app_a, secret_a = register_client(runtime, frontchannel_logout_uri=f"{APP_ORIGIN}/fcl?app=a")
    app_b, secret_b = register_client(
        runtime,
        name="Báo cáo",
        frontchannel_logout_uri=f"{APP_ORIGIN}/fcl-b",
        frontchannel_logout_session_required=False,
    )
    silent, secret_s = register_client(runtime, name="Không đăng ký")
    tokens = sign_in(browser, app_a, secret_a, first=True)
    sign_in(browser, app_b, secret_b, first=False)
    sign_in(browser, silent, secret_s, first=False)
    sid = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})["sid"]

    page = browser.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})
    assert page.status_code == 200
    urls = iframes(page.text)
    assert len(urls) == 2
    framed_a = next(u for u in urls if "app=a" in u)
    assert urlsplit(framed_a).path == "/fcl"
    assert parse_qs(urlsplit(framed_a).query) == {"app": ["a"], "iss": [ISSUER], "sid": [sid]}
    # Not session-required: the bare URI, the app ends the session its cookie names.
    assert f"{APP_ORIGIN}/fcl-b" in urls
    assert frame_src(page) == f"frame-src 'self' {APP_ORIGIN}"
    assert page.headers["content-security-policy"].startswith(CONTENT_SECURITY_POLICY)
    assert "refresh" not in page.headers  # nowhere to go on to
    # The iframes are hidden and the official sees the usual page.
    assert " hidden " in page.text and "<h1" in page.text


def test_with_a_redirect_the_page_frames_then_goes_on(app, runtime, official):
    browser = TestClient(app, base_url=ISSUER, follow_redirects=False)
    client, secret = register_client(runtime, frontchannel_logout_uri=f"{APP_ORIGIN}/fcl")
    tokens = sign_in(browser, client, secret, first=True)
    page = browser.get(
        "/oauth2/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": RP_LOGOUT_REDIRECT,
            "state": "tro-ve",
        },
    )
    assert page.status_code == 200  # not the usual 303: the frames must load first
    [url] = iframes(page.text)
    assert parse_qs(urlsplit(url).query)["iss"] == [ISSUER]
    assert page.headers["refresh"] == f"1; url={RP_LOGOUT_REDIRECT}?state=tro-ve"
    assert f'href="{RP_LOGOUT_REDIRECT}?state=tro-ve"' in page.text  # and a link to go at once
    # The session is over: a second logout frames nothing and simply redirects.
    again = browser.get(
        "/oauth2/logout",
        params={"client_id": client.client_id, "post_logout_redirect_uri": RP_LOGOUT_REDIRECT},
    )
    assert again.status_code == 303 and iframes(again.text) == []


def test_confirmed_logout_frames_the_apps_too(app, runtime, official):
    browser = TestClient(app, base_url=ISSUER, follow_redirects=False)
    client, secret = register_client(runtime, frontchannel_logout_uri=f"{APP_ORIGIN}/fcl")
    sign_in(browser, client, secret, first=True)
    ask = browser.get(
        "/oauth2/logout",
        params={"client_id": client.client_id, "post_logout_redirect_uri": RP_LOGOUT_REDIRECT},
    )
    assert ask.status_code == 200 and iframes(ask.text) == []  # nothing before the answer
    done = browser.post(
        "/oauth2/logout/confirm", data={**hidden_inputs(ask.text), "decision": "logout"}
    )
    assert done.status_code == 200
    [url] = iframes(done.text)
    assert url.startswith(f"{APP_ORIGIN}/fcl?iss=")
    assert done.headers["refresh"].endswith(f"url={RP_LOGOUT_REDIRECT}")


def test_apps_without_front_channel_keep_the_plain_redirect(app, runtime, official):
    browser = TestClient(app, base_url=ISSUER, follow_redirects=False)
    client, secret = register_client(runtime)
    tokens = sign_in(browser, client, secret, first=True)
    out = browser.get(
        "/oauth2/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": RP_LOGOUT_REDIRECT,
        },
    )
    assert out.status_code == 303 and out.headers["location"] == RP_LOGOUT_REDIRECT
    page = browser.get("/oauth2/logout")
    assert "frame-src" not in page.headers["content-security-policy"]
    assert RP_REDIRECT.startswith(APP_ORIGIN)
