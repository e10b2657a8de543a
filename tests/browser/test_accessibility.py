"""Every page, checked with axe-core (the npm package, pinned in tests/browser/axe/ and installed
by scripts/test into .cache/node/) in headless Chromium: in Vietnamese and English, at desktop
and 375 px phone width, with data in the pages. Any WCAG 2.0/2.1 A or AA violation of impact
"serious" or "critical" fails the test, named with its rule, page, language, width and the
offending nodes. A screenshot of every page, language and width is kept.

The pages are a table (``VISITS``): a new page is one row. One browser, one context per role
(signed in once), each page loaded once per language and checked at both widths."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from ca_admin import certificate_requests
from ca_admin.models import Authority
from ca_admin.runtime import CaRuntime
from core.db import transaction
from idp import mfa, totp
from idp.cas import services as cas_services
from idp.models import Account, Client, LogoutDelivery
from idp.runtime import IdpRuntime
from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS
from tests.browser.test_admin_browser import sign_in as add_session_cookie
from tests.ca_admin import signed_documents
from tests.ca_admin.conftest import BA_DINH, HOAN_KIEM, People, hierarchy, people, submit_for  # noqa: F401
from tests.ca_admin.pages_flow import set_password
from tests.ca_admin.signed_documents import sign_pdf
from tests.ca_admin.test_pages import issue_for
from tests.conftest import OFFICIAL_PASSWORD, register_client
from tests.idp.import_files import cccd, csv_bytes
from tests.idp.oidc_flow import authorize_params, pkce_pair

ROOT = Path(__file__).resolve().parents[2]
AXE_PIN = ROOT / "tests" / "browser" / "axe" / "package.json"
AXE_SCRIPT = ROOT / ".cache" / "node" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
FAILING_IMPACTS = ("serious", "critical")
LANGUAGES = ("vi", "en")
WIDTHS = (DESKTOP, PHONE)
PAGES = "/ca/pages"
THIRD_PARTY_APP = "Cổng dịch vụ công của tỉnh"
CAS_SERVICE = "van-ban"

# Runs in the page: axe over the whole document, the violations reduced to what a report needs
# (resultTypes: axe details the violations only, one node each for the rest: quicker).
RUN_AXE = """async ([tags, impacts]) => {
  const result = await axe.run(document, {
    runOnly: {type: 'tag', values: tags},
    resultTypes: ['violations'],
  });
  return result.violations
    .filter((violation) => impacts.includes(violation.impact))
    .map((violation) => ({
      rule: violation.id,
      impact: violation.impact,
      help: violation.help,
      nodes: violation.nodes.map((node) => node.target.join(' ')),
    }));
}"""


@dataclass(frozen=True)
class Pages:
    """What the pages show: the seeded people, certificates and jobs, and the running provider."""

    issuer: str
    runtime: IdpRuntime
    people: People
    renewable_serial: str
    collect_request_id: str
    import_job_path: str
    signed_pdf: bytes = b""


@dataclass(frozen=True)
class Visit:
    """One page to check. ``role`` is the browser context it is opened in ("anonymous",
    "official" or "admin"); ``path`` is the address, or ``open`` does what a person does to
    reach the page (a form submitted with an error, a link followed)."""

    name: str
    role: str
    path: Callable[[Pages], str] | str = ""
    open: Callable[[Page, Pages], None] | None = None


def _open_authorization_request(page: Page, pages: Pages) -> None:
    """What an app that is not the province's own does: send the browser to authorize."""
    _, challenge = pkce_pair()
    params = authorize_params(_third_party_client_id(pages), challenge)
    page.goto(f"{pages.issuer}/oauth2/authorize?{urlencode(params)}")


def _third_party_client_id(pages: Pages) -> str:
    with transaction(pages.runtime.session_factory) as session:
        client_id = session.scalar(select(Client.client_id).where(Client.name == THIRD_PARTY_APP))
    assert client_id is not None
    return client_id


def _login_with(page: Page, pages: Pages, username: str, password: str) -> None:
    _open_authorization_request(page, pages)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_load_state()


def open_login_form(page: Page, pages: Pages) -> None:
    _open_authorization_request(page, pages)
    expect(page.locator("input[name=password]")).to_be_visible()


def open_login_error(page: Page, pages: Pages) -> None:
    _login_with(page, pages, pages.people.colleague.username, "không phải mật khẩu này")
    expect(page.locator(".alert--error")).to_be_visible()


def open_second_factor(page: Page, pages: Pages) -> None:
    """The official has two-step sign-in: after the password comes the code form."""
    page.context.clear_cookies(name=pages.runtime.session_cookie_name)
    _login_with(page, pages, pages.people.official.username, OFFICIAL_PASSWORD)
    page.wait_for_url(re.compile(r"/login/otp"))


def open_consent(page: Page, pages: Pages) -> None:
    """A signed-in official opens an app that is not the province's own: the consent page."""
    _open_authorization_request(page, pages)
    page.wait_for_url(re.compile(r"/consent"))


def open_logout_confirm(page: Page, pages: Pages) -> None:
    add_session_cookie(page, pages.runtime, pages.issuer, pages.people.colleague.username)
    page.goto(f"{pages.issuer}/oauth2/logout")
    expect(page.locator("button[value=logout]")).to_be_visible()


def open_logged_out(page: Page, pages: Pages) -> None:
    open_logout_confirm(page, pages)
    page.locator("button[value=logout]").click()
    page.wait_for_load_state()


def open_recovery_codes(page: Page, pages: Pages) -> None:
    page.goto(f"{pages.issuer}/account/security")
    page.fill("#password", OFFICIAL_PASSWORD)
    page.locator("button[formaction='/account/security/recovery-codes']").click()
    page.wait_for_load_state()


def open_first_client(page: Page, pages: Pages) -> None:
    page.goto(f"{pages.issuer}/admin/clients")
    page.get_by_role("link", name=THIRD_PARTY_APP).click()
    page.wait_for_load_state()


def open_cas_service_error(page: Page, pages: Pages) -> None:
    """The CAS service form sent back with a problem next to a field."""
    page.goto(f"{pages.issuer}/admin/cas-services/new")
    page.fill("#name", "Một cửa điện tử")
    page.fill("#service_id", "mot-cua")
    page.fill("#address", "http://motcua.example.gov.vn/cas")
    page.locator("form[action='/admin/cas-services/new'] button[type=submit]").click()
    expect(page.locator("#address-error")).to_be_visible()


def open_app_registered(page: Page, pages: Pages) -> None:
    """The page that shows a new app's secret once, after the register form."""
    page.goto(f"{pages.issuer}/admin/clients/new")
    page.fill("#name", "Ứng dụng một cửa")
    page.fill("#redirect_uris", "https://motcua.example.gov.vn/cb")
    page.locator("form[action='/admin/clients/new'] button[type=submit]").click()
    expect(page.locator("#client-secret")).to_be_visible()


def open_signature_check_result(page: Page, pages: Pages) -> None:
    """The signature check page after a signed PDF was dropped on it: the report."""
    page.goto(f"{pages.issuer}{PAGES}/validate")
    page.locator("#document").set_input_files(
        files=[
            {"name": "quyet-dinh.pdf", "mimeType": "application/pdf", "buffer": pages.signed_pdf}
        ]
    )
    page.locator("form[action$='/validate'] button[type=submit]").click()
    expect(page.locator("#validation-result")).to_be_visible()


VISITS: list[Visit] = [
    # Signing in and out.
    Visit("login", "anonymous", open=open_login_form),
    Visit("login-error", "anonymous", open=open_login_error),
    Visit("login-second-factor", "anonymous", open=open_second_factor),
    Visit("logout-confirm", "anonymous", open=open_logout_confirm),
    Visit("logged-out", "anonymous", open=open_logged_out),
    Visit("activate", "anonymous", "/activate"),
    Visit("consent", "official", open=open_consent),
    # The official's own account.
    Visit("account-profile", "official", "/account"),
    Visit("account-password", "official", "/account/password"),
    Visit("account-security", "official", "/account/security"),
    Visit("account-sessions", "official", "/account/sessions"),
    Visit("account-recovery-codes", "official", open=open_recovery_codes),
    # Administration.
    Visit("admin-home", "admin", "/admin"),
    Visit("admin-officials", "admin", "/admin/officials"),
    Visit("admin-official", "admin", lambda p: f"/admin/officials/{p.people.official.username}"),
    Visit(
        "admin-official-confirm",
        "admin",
        lambda p: f"/admin/officials/{p.people.official.username}/disable",
    ),
    Visit("admin-units", "admin", "/admin/units"),
    Visit("admin-unit", "admin", f"/admin/units/{HOAN_KIEM}"),
    Visit("admin-clients", "admin", "/admin/clients"),
    Visit("admin-client", "admin", open=open_first_client),
    Visit("admin-client-new", "admin", "/admin/clients/new"),
    Visit("admin-client-registered", "admin", open=open_app_registered),
    Visit("admin-cas-services", "admin", "/admin/cas-services"),
    Visit("admin-cas-service", "admin", f"/admin/cas-services/{CAS_SERVICE}"),
    Visit("admin-cas-service-new", "admin", "/admin/cas-services/new"),
    Visit("admin-cas-service-error", "admin", open=open_cas_service_error),
    Visit("admin-cas-service-remove", "admin", f"/admin/cas-services/{CAS_SERVICE}?action=remove"),
    Visit("admin-imports", "admin", "/admin/imports"),
    Visit("admin-import-job", "admin", lambda p: p.import_job_path),
    Visit("admin-deliveries", "admin", "/admin/logout-deliveries"),
    Visit("admin-saml", "admin", "/admin/saml"),
    Visit("admin-audit", "admin", "/admin/audit"),
    # Certificates.
    Visit("ca-welcome", "anonymous", f"{PAGES}/"),
    Visit("ca-my-certificates", "official", f"{PAGES}/"),
    Visit("ca-request", "official", f"{PAGES}/request"),
    Visit("ca-renewal", "official", lambda p: f"{PAGES}/renew/{p.renewable_serial}"),
    Visit(
        "ca-collect-key", "official", lambda p: f"{PAGES}/requests/{p.collect_request_id}/collect"
    ),
    Visit("ca-admin-requests", "admin", f"{PAGES}/admin/requests"),
    Visit("ca-admin-certificates", "admin", f"{PAGES}/admin/certificates"),
    Visit(
        "ca-admin-certificate",
        "admin",
        lambda p: f"{PAGES}/admin/certificates/{p.renewable_serial}",
    ),
    Visit(
        "ca-admin-merger", "admin", f"{PAGES}/admin/merger?old_unit={HOAN_KIEM}&new_unit={BA_DINH}"
    ),
    Visit("ca-signature-check", "official", f"{PAGES}/validate"),
    Visit("ca-signature-check-result", "official", open=open_signature_check_result),
]


def axe_source() -> str:
    """The pinned axe-core, or a clear failure in CI (a skip with the reason elsewhere)."""
    if not AXE_SCRIPT.is_file():
        reason = (
            f"axe-core is not installed ({AXE_SCRIPT.relative_to(ROOT)} is missing): run "
            "./scripts/test, or npm ci in a copy of tests/browser/axe/ at .cache/node/"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return AXE_SCRIPT.read_text(encoding="utf-8")


def pinned_axe_version() -> str:
    version: str = json.loads(AXE_PIN.read_text(encoding="utf-8"))["dependencies"]["axe-core"]
    return version


def seed(runtime: IdpRuntime, ca_runtime: CaRuntime, people: People) -> tuple[str, str]:  # noqa: F811
    """Data on every page: certificates (one due for renewal), a request waiting for approval,
    an approved request whose server-made key waits to be collected, a third-party app, a
    logout delivery, and two-step sign-in for the official. Returns the renewable serial and
    the collectable request id."""
    for account in (people.official, people.colleague, people.system_admin):
        set_password(runtime, account)
    renewable = issue_for(ca_runtime, people.official, days=20)
    issue_for(ca_runtime, people.colleague)
    submit_for(ca_runtime, people.colleague)  # waits for approval
    collect_request_id = submit_for(ca_runtime, people.official, server_keygen=True)
    with transaction(ca_runtime.session_factory) as session:
        certificate_requests.approve(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            request_id=collect_request_id,
        )
    client, _ = register_client(
        runtime,
        name=THIRD_PARTY_APP,
        first_party=False,
        scope="openid profile email offline_access",
    )
    now = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        cas_services.register(
            session=session,
            clock=runtime.clock,
            actor="test",
            service_id=CAS_SERVICE,
            name="Quản lý văn bản điều hành",
            pattern=r"^https://vanban\.example\.gov\.vn/.*$",
            attributes=["name", "unit", "position"],
        )
        session.add(
            LogoutDelivery(
                client_pk=client.id,
                client_id=client.client_id,
                uri="http://127.0.0.1:9/bcl",
                subject=people.official.subject,
                sid=None,
                reason="rp_logout",
                status="failed",
                attempts=1,
                created_at=now,
                last_attempt_at=now,
                last_status_code=500,
                log=[{"at": now.isoformat(), "status_code": 500}],
            )
        )
        official = session.get(Account, people.official.id)
        assert official is not None
        mfa.start_enrolment(
            session=session,
            clock=runtime.clock,
            server_secret=runtime.server_secret,
            account=official,
        )
        pending = mfa.pending_enrolment(
            session=session,
            server_secret=runtime.server_secret,
            account=official,
            issuer_name="test",
        )
        assert pending is not None
        assert mfa.confirm_enrolment(
            session=session,
            clock=runtime.clock,
            server_secret=runtime.server_secret,
            account=official,
            code=totp.totp(pending.secret, runtime.clock.now()),
        )
    return renewable.serial, collect_request_id


def import_job(page: Page, issuer: str) -> str:
    """An import dry run with an accepted and a refused row; returns the job page's path."""
    data = csv_bytes(
        [
            [cccd(301), "Phạm Văn Dũng", "pham.van.dung", "", "", HOAN_KIEM, "", "Chuyên viên"],
            ["12345", "Sai Số", "sai.so", "", "", HOAN_KIEM, "", ""],
        ]
    )
    page.goto(f"{issuer}/admin/imports")
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "can-bo.csv", "mimeType": "text/csv", "buffer": data}]
    )
    page.locator("form[enctype='multipart/form-data'] button[type=submit]").first.click()
    expect(page.locator("#job-status")).to_have_text(re.compile("Hoàn tất|Done"), timeout=15_000)
    return page.url.removeprefix(issuer)


@pytest.fixture
def contexts(chromium: Browser) -> Iterator[dict[str, BrowserContext]]:
    """One context per role, axe in every page it opens. An init script is not subject to the
    pages' CSP (script-src 'self'), so the pages are checked as they are served."""
    script = axe_source()
    opened = {}
    for role in ("anonymous", "official", "admin"):
        context = chromium.new_context(viewport=DESKTOP, locale="vi-VN")
        context.set_default_timeout(10_000)
        context.add_init_script(script=script)
        opened[role] = context
    yield opened
    for context in opened.values():
        context.close()


def check(page: Page, *, name: str, lang: str) -> list[str]:
    """axe at both widths on the loaded page; screenshots; the failures as report lines."""
    failures = []
    for size in WIDTHS:
        page.set_viewport_size(size)
        width = size["width"]
        page.screenshot(path=str(SCREENSHOTS / f"a11y-{name}-{lang}-{width}.png"), full_page=True)
        for violation in page.evaluate(RUN_AXE, [WCAG_TAGS, list(FAILING_IMPACTS)]):
            failures.append(
                f"{violation['rule']} ({violation['impact']}: {violation['help']}) on {name} "
                f"[{lang}, {width} px] at {page.url}: " + " | ".join(violation["nodes"])
            )
    page.set_viewport_size(DESKTOP)
    return failures


# One test per language: each is half a minute of browser work, and two can run on two workers.
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_page_passes_axe_at_both_widths(
    lang: str,
    provider: str,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],  # noqa: F811
    people: People,  # noqa: F811
    contexts: dict[str, BrowserContext],
) -> None:
    started = time.monotonic()
    renewable_serial, collect_request_id = seed(runtime, ca_runtime, people)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    tabs = {role: context.new_page() for role, context in contexts.items()}
    add_session_cookie(tabs["official"], runtime, provider, people.official.username)
    add_session_cookie(tabs["admin"], runtime, provider, people.system_admin.username)
    for role in ("official", "admin"):  # the CA pages have their own session, from the IdP
        tabs[role].goto(f"{provider}{PAGES}/login?next={PAGES}/")
        tabs[role].wait_for_url(f"{provider}{PAGES}/")
    pages = Pages(
        issuer=provider,
        runtime=runtime,
        people=people,
        renewable_serial=renewable_serial,
        collect_request_id=collect_request_id,
        import_job_path=import_job(tabs["admin"], provider),
        # pyHanko signs with asyncio.run: not on this thread, where Playwright's loop runs.
        signed_pdf=ThreadPoolExecutor(1)
        .submit(lambda: sign_pdf(signed_documents.issue_for(ca_runtime, people)))
        .result(),
    )

    assert tabs["admin"].evaluate("axe.version") == pinned_axe_version()

    failures: list[str] = []
    for context in contexts.values():
        context.add_cookies([{"name": "lang", "value": lang, "url": provider}])
    for visit in VISITS:
        page = tabs[visit.role]
        if visit.open is not None:
            visit.open(page, pages)
        else:
            path = visit.path(pages) if callable(visit.path) else visit.path
            response = page.goto(f"{provider}{path}")
            assert response is not None and response.ok, (visit.name, page.url)
        assert page.locator("html").get_attribute("lang") == lang, (visit.name, page.url)
        failures.extend(check(page, name=visit.name, lang=lang))

    elapsed = time.monotonic() - started
    print(f"axe: {len(VISITS)} pages in {lang} x 2 widths in {elapsed:.1f} s")
    assert not failures, f"{len(failures)} serious or critical violations:\n" + "\n".join(failures)
