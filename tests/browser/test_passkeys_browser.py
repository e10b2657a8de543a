"""Passkeys in headless Chromium with the DevTools virtual authenticator (CTAP2, internal
transport, resident keys, user verification): an official registers a passkey on
/account/passkeys, signs out, signs in with the passkey alone (no username), then with the
password and the passkey as the second factor. The issuer is ``localhost``: Chromium refuses an
IP address as RP ID. Screenshots at desktop and phone width."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable

import pytest
from playwright.sync_api import CDPSession, Page, expect

from core.settings import Settings
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD


@pytest.fixture
def settings(settings: Settings, idp_socket: socket.socket) -> Settings:
    port = idp_socket.getsockname()[1]
    return Settings(**{**settings.model_dump(), "issuer": f"http://localhost:{port}"})


def virtual_authenticator(page: Page) -> tuple[CDPSession, str]:
    """A platform authenticator inside the browser (DevTools protocol, WebAuthn domain)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    answer = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, answer["authenticatorId"]


def test_register_a_passkey_then_sign_in_with_it_alone_and_as_second_factor(
    page: Page, provider: str, official, runtime: IdpRuntime, shoot: Callable[[str], None]
):
    cdp, authenticator_id = virtual_authenticator(page)

    # Sign in with the password, open the Passkeys page, add one.
    page.goto(f"{provider}/account/passkeys")
    page.get_by_label("Tên đăng nhập").fill(official.username)
    page.get_by_label("Mật khẩu").fill(OFFICIAL_PASSWORD)
    page.get_by_role("button", name="Đăng nhập", exact=True).click()
    page.wait_for_url(re.compile(r"/account/passkeys$"))
    expect(page.locator("h1")).to_have_text("Khóa truy cập")
    shoot("passkeys-empty")
    page.get_by_label("Tên khóa truy cập").fill("Máy tính văn phòng")
    page.get_by_role("button", name="Thêm khóa truy cập").click()
    page.wait_for_url(re.compile(r"/account/passkeys\?done=passkey-added$"))
    expect(page.locator(".alert--success")).to_contain_text("Đã thêm khóa truy cập")
    expect(page.locator(".passkey__name")).to_have_text(["Máy tính văn phòng"])
    shoot("passkeys-one")
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    (credential,) = credentials["credentials"]
    assert credential["isResidentCredential"] is True

    # Sign out, then sign in with the passkey alone: no username, no password.
    page.context.clear_cookies()
    page.goto(f"{provider}/account")
    expect(page.get_by_role("button", name="Đăng nhập bằng khóa truy cập")).to_be_visible()
    shoot("login-with-passkey-button")
    page.get_by_role("button", name="Đăng nhập bằng khóa truy cập").click()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator("h1")).to_have_text(official.full_name)
    page.goto(f"{provider}/account/passkeys")
    expect(page.locator(".passkey")).not_to_contain_text("Chưa dùng")

    # Sign out, then password and the passkey as the second factor.
    page.context.clear_cookies()
    page.goto(f"{provider}/account")
    page.get_by_label("Tên đăng nhập").fill(official.username)
    page.get_by_label("Mật khẩu").fill(OFFICIAL_PASSWORD)
    page.get_by_role("button", name="Đăng nhập", exact=True).click()
    page.wait_for_url(re.compile(r"/login/passkey\?interaction="))
    expect(page.locator("h1")).to_have_text("Đăng nhập bằng khóa truy cập của bạn")
    shoot("second-factor")
    page.get_by_role("button", name="Dùng khóa truy cập của tôi").click()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator("h1")).to_have_text(official.full_name)
    after = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    assert after["credentials"][0]["signCount"] >= 2

    # Remove it, with the confirmation.
    page.goto(f"{provider}/account/passkeys")
    page.get_by_role("link", name="Gỡ khóa truy cập “Máy tính văn phòng”").click()
    expect(page.locator("h1")).to_contain_text("Máy tính văn phòng")
    shoot("remove-confirm")
    page.get_by_role("button", name="Gỡ", exact=True).click()
    page.wait_for_url(re.compile(r"/account/passkeys\?done=passkey-removed$"))
    expect(page.locator(".passkey")).to_have_count(0)


def test_a_cancelled_passkey_sign_in_says_so_and_leaves_the_password_form(
    page: Page, provider: str, official, shoot: Callable[[str], None]
):
    # No authenticator holds a credential: the browser's request fails as when cancelled.
    cdp, _ = virtual_authenticator(page)
    page.goto(f"{provider}/account")
    page.get_by_role("button", name="Đăng nhập bằng khóa truy cập").click()
    expect(page.locator("[data-passkey-error]")).to_contain_text("Chưa dùng khóa truy cập nào")
    expect(page.get_by_label("Mật khẩu")).to_be_visible()
    shoot("cancelled")
    cdp.detach()
