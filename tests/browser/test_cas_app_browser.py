"""The demo shared app's CAS variant (examples/shared_app/cas_app.py) in headless Chromium:
sign-in through /cas/login with the ticket validated by python-cas, the released attributes
shown in Vietnamese, sign-out through /cas/logout; and single logout across a CAS app and an
OIDC app in one browser, both ways (a CAS ``logoutRequest`` POST ends the CAS app's session,
a back-channel logout token the OIDC app's)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import StartApp
from tests.browser.test_single_logout import (
    SIGNED_IN,
    expect_attributes_in_vietnamese,
    expect_signed_out,
    sign_in_with_password,
    sign_in_without_password,
    sign_out_at,
    watch_login_pages,
)
from tests.browser_support import SharedApp


def test_cas_app_signs_in_shows_attributes_in_vietnamese_and_signs_out(
    page: Page, cas_app: SharedApp, provider: str, shoot: Callable[[str], None]
):
    logins = watch_login_pages(page, provider)
    sign_in_with_password(page, cas_app, shoot)
    expect_attributes_in_vietnamese(page)
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
