"""The official's first steps, in headless Chromium: an imported official activates the account
with the one-time code, turns on two-step sign-in by reading the secret off the page, then
signs in again with password and a TOTP code computed here from that secret. Screenshots at
desktop and phone width for every step."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable

from playwright.sync_api import Page, expect

from core.db import transaction
from idp import accounts, totp
from idp.bulk_import.activation import code_row, new_code
from idp.models import ActivationCode
from idp.runtime import IdpRuntime

USERNAME = "tran.thi.binh"
FULL_NAME = "Trần Thị Bình"
PASSWORD = "hoa sen nở trên hồ Tây 2026"


def import_official(runtime: IdpRuntime) -> str:
    """The official as an import leaves them: no password, one activation code."""
    with transaction(runtime.session_factory) as session:
        account = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="import",
            username=USERNAME,
            full_name=FULL_NAME,
            email="binh.tt@laocai.gov.vn",
        )
        code, code_digest = new_code(account_id=account.id)
        session.add(
            ActivationCode(
                **code_row(account_id=account.id, code_digest=code_digest, now=runtime.clock.now())
            )
        )
    return code


def key_of(secret_text: str) -> bytes:
    compact = secret_text.replace(" ", "")
    return base64.b32decode(compact + "=" * (-len(compact) % 8))


def test_activation_then_totp_enrolment_then_login_with_totp(
    page: Page, provider: str, runtime: IdpRuntime, shoot: Callable[[str], None]
):
    code = import_official(runtime)

    # Activation: a wrong code first (generic error, what was typed is kept), then the right one.
    page.goto(f"{provider}/activate")
    expect(page.locator("h1")).to_have_text("Kích hoạt tài khoản")
    shoot("activate-form")
    page.get_by_label("Tên đăng nhập").fill(USERNAME)
    page.get_by_label("Mã kích hoạt").fill("ma-sai-" + code[:6])
    page.get_by_label("Mật khẩu mới", exact=True).fill(PASSWORD)
    page.get_by_label("Nhập lại mật khẩu mới").fill(PASSWORD)
    page.get_by_role("button", name="Kích hoạt và đăng nhập").click()
    expect(page.locator(".alert--error")).to_contain_text("mã kích hoạt không đúng")
    expect(page.get_by_label("Tên đăng nhập")).to_have_value(USERNAME)
    shoot("activate-error")
    page.get_by_label("Mã kích hoạt").fill(code)
    page.get_by_label("Mật khẩu mới", exact=True).fill(PASSWORD)
    page.get_by_label("Nhập lại mật khẩu mới").fill(PASSWORD)
    page.get_by_role("button", name="Kích hoạt và đăng nhập").click()
    page.wait_for_url(re.compile(r"/account\?done=activated$"))
    expect(page.locator("h1")).to_have_text(FULL_NAME)
    expect(page.locator(".alert--success")).to_contain_text("đã được kích hoạt")
    shoot("profile")

    # Two-step sign-in: set up, read the key off the page, confirm with a code.
    page.get_by_role("navigation", name="Tài khoản của tôi").get_by_role(
        "link", name="Đăng nhập hai bước"
    ).click()
    page.get_by_role("button", name="Thiết lập đăng nhập hai bước").click()
    expect(page.locator("svg.qr")).to_be_visible()
    key = key_of(page.locator("#totp-secret").inner_text())
    shoot("totp-setup")
    enrolment_code = totp.totp(key, time.time())
    page.get_by_label("Mã 6 chữ số").fill(enrolment_code)
    page.get_by_role("button", name="Bật đăng nhập hai bước").click()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    shoot("recovery-codes")

    # A fresh sign-in: password, then a TOTP code. The enrolment used the current time step,
    # which may not be used again: the next step's code is within the ±1 step window.
    page.context.clear_cookies()
    page.goto(f"{provider}/account")
    expect(page.get_by_label("Tên đăng nhập")).to_be_visible()
    page.get_by_label("Tên đăng nhập").fill(USERNAME)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(re.compile(r"/login/otp\?interaction="))
    expect(page.locator("h1")).to_have_text("Đăng nhập hai bước")
    shoot("login-totp")
    page.get_by_label("Mã", exact=True).fill(totp.totp(key, time.time() + totp.STEP_SECONDS))
    page.get_by_role("button", name="Xác nhận").click()
    page.wait_for_url(re.compile(r"/account$"))
    expect(page.locator("h1")).to_have_text(FULL_NAME)

    page.goto(f"{provider}/account/sessions")
    expect(page.locator(".session--current")).to_contain_text("Mật khẩu và mã")
    shoot("sessions")
    page.goto(f"{provider}/account/sessions?lang=en")
    expect(page.locator(".session--current")).to_contain_text("This device")
    shoot("sessions-en")
