"""The demo shared app's SAML variant (examples/shared_app/saml_app.py, pysaml2 as the service
provider) in headless Chromium: SP-initiated sign-in by HTTP-Redirect with the signed Response
and Assertion verified by pysaml2, an encrypted assertion decrypted by it, IdP-initiated
sign-in, the released attributes in Vietnamese, ForceAuthn and IsPassive, sign-out through
SAML single logout; and single logout across a SAML app, a CAS app and an OIDC app in one
browser."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, Request, expect

from idp.saml.vocabulary import PASSWORD_PROTECTED_TRANSPORT
from tests.browser.conftest import StartApp
from tests.browser.test_single_logout import (
    NOT_SIGNED_IN,
    SIGNED_IN,
    USERNAME,
    expect_attributes_in_vietnamese,
    expect_signed_out,
    sign_in_with_password,
    sign_in_without_password,
    sign_out_at,
    watch_login_pages,
)
from tests.browser_support import SharedApp
from tests.conftest import OFFICIAL_PASSWORD

Shoot = Callable[[str], None]


def watch_saml_requests(page: Page, provider: str) -> list[str]:
    """The URLs of the AuthnRequests and LogoutRequests the browser carries to the provider."""
    seen: list[str] = []

    def note(request: Request) -> None:
        if request.url.startswith((f"{provider}/saml/sso?", f"{provider}/saml/slo?")):
            seen.append(request.url)

    page.on("request", note)
    return seen


def type_password(page: Page) -> None:
    expect(page.locator("input[name=password]")).to_be_visible()
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", OFFICIAL_PASSWORD)
    page.locator("form button[type=submit]").click()


def test_saml_app_signs_in_shows_attributes_in_vietnamese_and_signs_out(
    page: Page, saml_app: SharedApp, provider: str, shoot: Shoot
):
    logins = watch_login_pages(page, provider)
    saml_requests = watch_saml_requests(page, provider)
    sign_in_with_password(page, saml_app, shoot)
    # SP-initiated, HTTP-Redirect binding, signed in the query.
    assert saml_requests and saml_requests[0].startswith(f"{provider}/saml/sso?SAMLRequest=")
    assert "Signature=" in saml_requests[0] and "SigAlg=" in saml_requests[0]
    expect_attributes_in_vietnamese(page)
    expect(page.locator('[data-attribute="province_code"]')).to_have_text("15")
    # pysaml2 wants both the Response and the Assertion signed, and verified them.
    expect(page.locator("#assertion")).to_have_attribute("data-signed", "true")
    expect(page.locator("#assertion")).to_have_attribute("data-encrypted", "false")
    expect(page.locator("#authn-context")).to_have_attribute(
        "data-class-ref", PASSWORD_PROTECTED_TRANSPORT
    )
    shoot("saml-signed-in")
    assert len(logins) == 1, logins

    sign_out_at(page, saml_app)  # LogoutRequest → provider → LogoutResponse → /logged-out
    assert any(url.startswith(f"{provider}/saml/slo?SAMLRequest=") for url in saml_requests)
    shoot("saml-signed-out")
    # The provider's session ended too: signing in again asks for the password.
    page.locator("#login").click()
    expect(page.locator("input[name=password]")).to_be_visible()


def test_an_encrypted_assertion_is_accepted(
    page: Page, start_saml_app: StartApp, provider: str, shoot: Shoot
):
    saml_app = start_saml_app(encrypt_assertions=True)
    sign_in_with_password(page, saml_app, shoot)
    # pysaml2 decrypted the EncryptedAssertion with the app's key and verified its signature.
    expect(page.locator("#assertion")).to_have_attribute("data-encrypted", "true")
    expect(page.locator("#assertion")).to_have_attribute("data-signed", "true")
    expect(page.locator('[data-attribute="name"]')).to_have_text("Nguyễn Văn An")
    shoot("saml-encrypted")


def test_idp_initiated_sign_in(page: Page, saml_app: SharedApp, provider: str, shoot: Shoot):
    # A portal link: the provider sends the app an unsolicited Response.
    query = urlencode({"providerId": saml_app.client_id, "RelayState": "/"})
    page.goto(f"{provider}/saml/sso/initiate?{query}")
    type_password(page)
    page.wait_for_url(saml_app.url("/"))
    expect(page.locator("#status")).to_contain_text(SIGNED_IN)
    expect(page.locator('[data-attribute="position"]')).to_have_text("Phó Chủ tịch")
    shoot("saml-idp-initiated")


def test_force_authn_asks_for_the_password_again(
    page: Page, saml_app: SharedApp, provider: str, shoot: Shoot
):
    logins = watch_login_pages(page, provider)
    sign_in_with_password(page, saml_app, shoot)
    page.goto(saml_app.url("/login?force_authn=true"))
    shoot("saml-force-authn")
    type_password(page)
    page.wait_for_url(saml_app.url("/"))
    expect(page.locator("#status")).to_contain_text(SIGNED_IN)
    assert len(logins) == 2, logins
    # Without ForceAuthn the live session answers at once.
    page.goto(saml_app.url("/login"))
    page.wait_for_url(saml_app.url("/"))
    expect(page.locator("#status")).to_contain_text(SIGNED_IN)
    assert len(logins) == 2, logins


def test_is_passive_without_a_session_comes_back_with_no_passive(
    page: Page, saml_app: SharedApp, provider: str, shoot: Shoot
):
    logins = watch_login_pages(page, provider)
    page.goto(saml_app.url("/login?is_passive=true"))
    page.wait_for_url(saml_app.url("/saml/acs"))
    expect(page.locator("#no-passive")).to_have_attribute("data-status", "NoPassive")
    expect(page.locator("#status")).to_contain_text(NOT_SIGNED_IN)
    shoot("saml-no-passive")
    assert logins == []
    # With a session, IsPassive signs in without a page.
    sign_in_with_password(page, saml_app, shoot)
    page.goto(saml_app.url("/login?is_passive=true"))
    page.wait_for_url(saml_app.url("/"))
    expect(page.locator("#status")).to_contain_text(SIGNED_IN)


def sign_in_to_all_three(
    page: Page, provider: str, shoot: Shoot, saml_app: SharedApp, *others: SharedApp
) -> None:
    logins = watch_login_pages(page, provider)
    sign_in_with_password(page, saml_app, shoot)
    for app in others:
        sign_in_without_password(page, app)  # single sign-on across the protocols
    for app in (saml_app, *others):
        page.goto(app.url("/"))
        expect(page.locator("#status")).to_contain_text(SIGNED_IN)
    assert len(logins) == 1, logins


@pytest.fixture
def three_apps(
    page: Page,
    saml_app: SharedApp,
    cas_app: SharedApp,
    start_oidc_app: StartApp,
    provider: str,
    shoot: Shoot,
) -> tuple[SharedApp, SharedApp, SharedApp]:
    """A SAML, a CAS and an OIDC demo app, the official signed in to all three (SAML first,
    with the password; the other two by single sign-on)."""
    oidc_app = start_oidc_app("OIDC")
    sign_in_to_all_three(page, provider, shoot, saml_app, cas_app, oidc_app)
    return saml_app, cas_app, oidc_app


def test_logout_at_the_saml_app_ends_the_cas_and_oidc_sessions(
    page: Page, three_apps: tuple[SharedApp, SharedApp, SharedApp], shoot: Shoot
):
    saml_app, cas_app, oidc_app = three_apps

    sign_out_at(page, saml_app)

    # The provider's worker POSTs a logoutRequest to the CAS app and a logout token to the
    # OIDC app.
    expect_signed_out(page, cas_app)
    shoot("cas-signed-out-by-saml")
    expect_signed_out(page, oidc_app)
    shoot("oidc-signed-out-by-saml")
    page.locator("#login").click()
    expect(page.locator("input[name=password]")).to_be_visible()


def test_logout_at_the_oidc_app_ends_the_saml_and_cas_sessions(
    page: Page, three_apps: tuple[SharedApp, SharedApp, SharedApp], provider: str, shoot: Shoot
):
    saml_app, cas_app, oidc_app = three_apps
    saml_requests = watch_saml_requests(page, provider)
    slo_frames: list[str] = []
    page.on(
        "request",
        lambda request: (
            slo_frames.append(request.url)
            if request.url.startswith(saml_app.url("/saml/slo?SAMLRequest="))
            else None
        ),
    )

    sign_out_at(page, oidc_app)

    # The provider's signed-out page loaded the SAML app's SLO endpoint in a hidden iframe
    # with a signed LogoutRequest; the app ended the session its SessionIndex names.
    assert len(slo_frames) == 1 and "Signature=" in slo_frames[0], slo_frames
    expect_signed_out(page, saml_app)
    shoot("saml-signed-out-by-oidc")
    expect_signed_out(page, cas_app)
    # The app answered with a LogoutResponse to the provider, in the iframe.
    assert any(url.startswith(f"{provider}/saml/slo?SAMLResponse=") for url in saml_requests)
