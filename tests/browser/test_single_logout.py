"""Single sign-on and single logout between two demo shared apps, in headless Chromium.

Log in once at app A through the provider's login form; app B then signs in without a
password; signing out at app A (RP-initiated logout) signs the official out of app B too — by
back-channel logout (the provider's worker POSTs a logout token to B), or by front-channel
logout (an iframe on the provider's logged-out page). An app whose back-channel receiver
never answers does not hold up the official's logout."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from playwright.sync_api import Page, Request, expect

from idp.logout.backchannel import SEND_TIMEOUT
from tests.browser.conftest import StartApps
from tests.browser_support import SharedApp
from tests.conftest import OFFICIAL_PASSWORD

USERNAME = "nguyen.van.an"
FULL_NAME = "Nguyễn Văn An"
SIGNED_IN = re.compile(f"Signed in as {FULL_NAME}")
NOT_SIGNED_IN = re.compile("Not signed in")


def watch_login_pages(page: Page, issuer: str) -> list[str]:
    """Every time a password is sent to the provider (the login form posted), its URL is
    appended. (The form itself may come from /login or straight from /oauth2/authorize.)"""
    seen: list[str] = []

    def note(request: Request) -> None:
        if request.method == "POST" and request.url.startswith(f"{issuer}/login"):
            seen.append(request.url)

    page.on("request", note)
    return seen


def logged_out_page(app: SharedApp) -> re.Pattern[str]:
    """The app's post-logout page (with the ``state`` the app sent along)."""
    return re.compile(re.escape(app.url("/logged-out")) + r"(\?.*)?$")


def sign_in_with_password(page: Page, app: SharedApp, shoot: Callable[[str], None]) -> None:
    page.goto(app.url("/"))
    expect(page.locator("#status")).to_contain_text(NOT_SIGNED_IN)
    page.locator("#login").click()
    expect(page.locator("input[name=username]")).to_be_visible()
    shoot("login-form")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", OFFICIAL_PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(app.url("/"))
    expect(page.locator("#status")).to_contain_text(SIGNED_IN)


def sign_in_without_password(page: Page, app: SharedApp) -> None:
    page.goto(app.url("/"))
    page.locator("#login").click()
    page.wait_for_url(app.url("/"))
    expect(page.locator("#status")).to_contain_text(SIGNED_IN)


def expect_attributes_in_vietnamese(page: Page) -> None:
    """The demo app (CAS or SAML) shows every attribute group of the official at work."""
    attributes = page.locator("#attributes")
    for label, value in (
        ("Họ và tên", "Nguyễn Văn An"),
        ("Thư điện tử", "an.nv@laocai.gov.vn"),
        ("Đơn vị", "Phường Cam Đường"),
        ("Tỉnh", "Tỉnh Lào Cai"),
        ("Cơ quan", "UBND phường Cam Đường"),
        ("Chức vụ", "Phó Chủ tịch"),
    ):
        expect(attributes).to_contain_text(label)
        expect(attributes).to_contain_text(value)
    expect(page.locator('[data-attribute="unit_code"]')).to_have_text("02647")


def sign_out_at(page: Page, app: SharedApp) -> None:
    """Sign out with the app's button and land on its post-logout page."""
    page.goto(app.url("/"))
    page.locator("#logout").click()
    page.wait_for_url(logged_out_page(app))
    expect(page.locator("#status")).to_contain_text(NOT_SIGNED_IN)


def expect_signed_out(page: Page, app: SharedApp, within: float = 5.0) -> None:
    """The app's page shows signed out (a notice may take a moment: reload until it does)."""
    deadline = time.monotonic() + within
    while True:
        page.goto(app.url("/"))
        text = page.locator("#status").inner_text()
        if NOT_SIGNED_IN.search(text) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    expect(page.locator("#status")).to_contain_text(NOT_SIGNED_IN)


def test_back_channel_logout_signs_out_of_the_other_app(
    page: Page, shared_apps: StartApps, provider: str, shoot
):
    app_a, app_b = shared_apps(b_logout="backchannel")
    logins = watch_login_pages(page, provider)

    sign_in_with_password(page, app_a, shoot)
    shoot("a-signed-in")
    sign_in_without_password(page, app_b)  # single sign-on
    shoot("b-signed-in")
    assert len(logins) == 1, logins  # the password was asked once, at A

    page.goto(app_a.url("/"))
    page.locator("#logout").click()
    page.wait_for_url(logged_out_page(app_a))
    expect(page.locator("#status")).to_contain_text(NOT_SIGNED_IN)
    shoot("a-signed-out")

    expect_signed_out(page, app_b)  # back-channel logout token delivered to B
    shoot("b-signed-out")
    # And the SSO session is over: signing in at B asks for the password again.
    page.locator("#login").click()
    expect(page.locator("input[name=password]")).to_be_visible()


def test_front_channel_logout_signs_out_of_the_other_app(
    page: Page, shared_apps: StartApps, provider: str, shoot
):
    app_a, app_b = shared_apps(b_logout="frontchannel")
    sign_in_with_password(page, app_a, shoot)
    sign_in_without_password(page, app_b)
    shoot("b-signed-in")

    page.goto(app_a.url("/"))
    frames: list[str] = []
    page.on(
        "requestfinished",
        lambda request: (
            frames.append(request.url)
            if request.url.startswith(app_b.url("/frontchannel-logout"))
            else None
        ),
    )
    page.locator("#logout").click()
    # The provider's page: signed out, B's logout page loaded in a hidden iframe...
    page.wait_for_url(re.compile(re.escape(provider) + r"/oauth2/logout"))
    expect(page.locator("h1")).to_be_visible()
    shoot("provider-signed-out")
    # ...then on to A's post-logout page.
    page.wait_for_url(logged_out_page(app_a))
    assert len(frames) == 1 and "sid=" in frames[0] and "iss=" in frames[0], frames

    page.goto(app_b.url("/"))
    expect(page.locator("#status")).to_contain_text(NOT_SIGNED_IN)
    shoot("b-signed-out")


def test_a_stuck_receiver_does_not_hold_up_logout(
    page: Page, shared_apps: StartApps, provider: str, shoot
):
    app_a, app_b = shared_apps(b_logout="stuck")
    sign_in_with_password(page, app_a, shoot)
    sign_in_without_password(page, app_b)

    page.goto(app_a.url("/"))
    started = time.monotonic()
    page.locator("#logout").click()
    page.wait_for_url(logged_out_page(app_a))
    # Waiting for B's receiver would take the whole send timeout (5 s).
    assert time.monotonic() - started < SEND_TIMEOUT.read - 1
    expect(page.locator("#status")).to_contain_text(NOT_SIGNED_IN)
    shoot("a-signed-out")
    # The provider's session is over even though B never answered.
    page.goto(app_b.url("/login"))
    expect(page.locator("input[name=password]")).to_be_visible()
    shoot("login-again")
