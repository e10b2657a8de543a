"""Certificate renewal end to end in headless Chromium: the official signs in to the CA pages
through the IdP, renews with a key pair made in the browser (core/web/static/renew.js,
WebCrypto: only the CSR is sent), a unit admin approves on the admin page, the official
downloads the new certificate and its chain; the test checks that it chains to the CA root and
that its public key is the browser's key (the private key file the page let the official save).
Screenshots at desktop and phone width."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from ca_admin.models import Authority, IssuedCertificate
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from idp.models import Account
from idp.runtime import IdpRuntime
from tests.browser.conftest import DESKTOP, SCREENSHOTS, save_screenshots
from tests.ca_admin.conftest import People, hierarchy, people  # noqa: F401  (fixtures)
from tests.ca_admin.pages_flow import set_password
from tests.ca_admin.test_pages import issue_for
from tests.conftest import OFFICIAL_PASSWORD

PAGES = "/ca/pages"


@pytest.fixture
def admin_page(chromium: Browser) -> Iterator[Page]:
    """A second browser: the unit admin's."""
    context = chromium.new_context(viewport=DESKTOP, locale="vi-VN")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def sign_in(page: Page, issuer: str, account: Account, next_path: str = f"{PAGES}/") -> None:
    page.goto(f"{issuer}{PAGES}/login?next={next_path}")
    expect(page.locator("input[name=username]")).to_be_visible()
    page.fill("input[name=username]", account.username)
    page.fill("input[name=password]", OFFICIAL_PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"{issuer}{next_path}")


def spki(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def test_renewal_with_a_browser_made_key_approved_by_the_unit_admin(
    provider: str,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],  # noqa: F811
    people: People,  # noqa: F811
    page: Page,
    admin_page: Page,
    shoot: Callable[[str], None],
) -> None:
    old = issue_for(ca_runtime, people.official, days=20)  # inside the 30-day window
    set_password(runtime, people.official)
    set_password(runtime, people.unit_admin)

    sign_in(page, provider, people.official)
    expect(page.locator(f"#cert-{openssl_serial(old.serial)}")).to_contain_text("Còn hiệu lực")
    shoot("my-certificates")

    page.locator(f'a[href="{PAGES}/renew/{openssl_serial(old.serial)}"]').click()
    expect(page.locator("#browser-option")).to_be_visible()  # renew.js is running
    page.locator("#browser-generate").click()
    expect(page.locator("#browser-result")).to_be_visible()
    fingerprint = page.locator("#browser-fingerprint").inner_text()
    assert len(fingerprint) == 64
    expect(page.locator("#browser-submit")).to_be_disabled()  # save the key first
    # ... and it looks it: grey, no pointer (style.css .button:disabled), not the red primary.
    submit = page.locator("#browser-submit")
    assert submit.evaluate("b => getComputedStyle(b).cursor") == "not-allowed"
    assert submit.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(228, 225, 221)"
    with page.expect_download() as saved:
        page.locator("#browser-key-download").click()
    private_key = load_pem_private_key(saved.value.path().read_bytes(), password=None)
    expect(submit).to_be_enabled()
    assert submit.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(176, 26, 32)"
    shoot("renewal-key-made")
    page.locator("#browser-submit").click()
    page.wait_for_url(f"{provider}{PAGES}/?done=renewal")
    expect(page.locator(".alert--success")).to_be_visible()
    shoot("renewal-sent")

    sign_in(admin_page, provider, people.unit_admin, f"{PAGES}/admin/requests")
    expect(admin_page.locator(".request")).to_have_count(1)
    expect(admin_page.locator(".request")).to_contain_text("Nguyễn Văn An")
    save_screenshots(admin_page, SCREENSHOTS / "renewal-admin-queue")  # the admin's browser
    admin_page.locator(".request button", has_text="Phê duyệt").click()
    admin_page.wait_for_url(f"{provider}{PAGES}/admin/requests?done=approved")
    expect(admin_page.locator("#queue-empty")).to_be_visible()

    with ca_runtime.session_factory() as session:
        new = session.scalar(
            select(IssuedCertificate).where(IssuedCertificate.renewal_of_id == old.id)
        )
        assert new is not None
        root_der = session.scalar(select(Authority.certificate_der).where(Authority.role == "root"))
    page.goto(f"{provider}{PAGES}/")
    expect(page.locator(f"#cert-{openssl_serial(new.serial)}")).to_contain_text("Còn hiệu lực")
    shoot("new-certificate")
    with page.expect_download() as chain_download:
        page.locator(f'#cert-{openssl_serial(new.serial)} a[href$="format=chain"]').click()
    chain = x509.load_pem_x509_certificates(chain_download.value.path().read_bytes())
    certificate, issuing, root = chain
    assert certificate.serial_number == int(new.serial, 16)
    certificate.verify_directly_issued_by(issuing)
    issuing.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    assert root.public_bytes(Encoding.DER) == root_der  # the CA's own root, not the file's
    assert spki(certificate.public_key()) == spki(private_key.public_key())
    assert hashlib.sha256(spki(certificate.public_key())).hexdigest() == fingerprint
