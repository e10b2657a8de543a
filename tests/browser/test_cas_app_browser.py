"""The demo shared app's CAS variant (examples/shared_app/cas_app.py) in headless Chromium:
sign-in through /cas/login with the ticket validated by python-cas, the released attributes
shown in Vietnamese, sign-out through /cas/logout; and single logout across a CAS app and an
OIDC app in one browser, both ways (a CAS ``logoutRequest`` POST ends the CAS app's session,
a back-channel logout token the OIDC app's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from playwright.sync_api import Page, expect

from core.db import transaction
from idp.cas import services
from idp.runtime import IdpRuntime
from tests.browser.conftest import StartApp
from tests.browser.test_single_logout import (
    NOT_SIGNED_IN,
    SIGNED_IN,
    expect_signed_out,
    logged_out_page,
    sign_in_with_password,
    sign_in_without_password,
    watch_login_pages,
)
from tests.browser_support import SharedApp, bind_loopback, run_shared_cas_app
from tests.idp.cas.cas_flow import place_at_work

SERVICE_PATH = "/cas/callback"
ALL_ATTRIBUTES = ["name", "email", "unit", "province", "agency", "position"]


@pytest.fixture
def cas_app(runtime: IdpRuntime, provider: str, official) -> Iterator[SharedApp]:
    """The CAS demo app, registered by its exact service URL with every attribute group, and
    the official placed in a ward so that every group has a value."""
    place_at_work(runtime, official)
    with ExitStack() as stack:
        sock = bind_loopback()
        stack.callback(sock.close)
        service_url = f"http://127.0.0.1:{sock.getsockname()[1]}{SERVICE_PATH}"
        with transaction(runtime.session_factory) as session:
            services.register(
                session=session,
                clock=runtime.clock,
                actor="test",
                service_id="demo-cas",
                name="Quản lý văn bản (CAS)",
                url=service_url,
                attributes=ALL_ATTRIBUTES,
            )
        yield stack.enter_context(
            run_shared_cas_app(
                cas_url=f"{provider}/cas/",
                service_path=SERVICE_PATH,
                sock=sock,
                name="Quản lý văn bản (CAS)",
            )
        )


def sign_out_at(page: Page, app: SharedApp) -> None:
    page.goto(app.url("/"))
    page.locator("#logout").click()
    page.wait_for_url(logged_out_page(app))
    expect(page.locator("#status")).to_contain_text(NOT_SIGNED_IN)


def test_cas_app_signs_in_shows_attributes_in_vietnamese_and_signs_out(
    page: Page, cas_app: SharedApp, provider: str, shoot: Callable[[str], None]
):
    logins = watch_login_pages(page, provider)
    sign_in_with_password(page, cas_app, shoot)
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
    # CAS 3.0's own attributes (authenticationDate, ...) are about the sign-in, not shown.
    expect(page.locator('[data-attribute="isFromNewLogin"]')).to_have_count(0)
    shoot("cas-signed-in")
    assert len(logins) == 1, logins

    sign_out_at(page, cas_app)
    shoot("cas-signed-out")
    # The provider's session ended too: signing in again asks for the password.
    page.locator("#login").click()
    expect(page.locator("input[name=password]")).to_be_visible()


def test_logout_at_the_oidc_app_ends_the_cas_app_session(
    page: Page, cas_app: SharedApp, start_oidc_app: StartApp, provider: str, shoot
):
    oidc_app = start_oidc_app("OIDC")
    logins = watch_login_pages(page, provider)
    sign_in_with_password(page, cas_app, shoot)
    sign_in_without_password(page, oidc_app)  # single sign-on across the protocols
    assert len(logins) == 1, logins
    page.goto(cas_app.url("/"))
    expect(page.locator("#status")).to_contain_text(SIGNED_IN)

    sign_out_at(page, oidc_app)

    # The provider's worker POSTs a logoutRequest to the CAS app's service URL.
    expect_signed_out(page, cas_app)
    shoot("cas-signed-out-by-oidc")


def test_logout_at_the_cas_app_ends_the_oidc_app_session(
    page: Page, cas_app: SharedApp, start_oidc_app: StartApp, provider: str, shoot
):
    oidc_app = start_oidc_app("OIDC")
    logins = watch_login_pages(page, provider)
    sign_in_with_password(page, oidc_app, shoot)
    sign_in_without_password(page, cas_app)  # the CAS login finds the SSO session
    assert len(logins) == 1, logins

    sign_out_at(page, cas_app)

    # /cas/logout ended the SSO session: a back-channel logout token reached the OIDC app.
    expect_signed_out(page, oidc_app)
    shoot("oidc-signed-out-by-cas")
