"""The first hour of a new installation, end to end in headless Chromium (issue 19), once in
Vietnamese and once in English (chosen with the language switch, then kept by the ``lang``
cookie):

fresh database, first start (the embedded quick start: units loaded and the CA made by the
app's lifespan; the first admin's one-time setup address and code read from what ``serve``
prints) -> the admin sets a password and signs in -> the admin dashboard's setup checklist ->
an import from a file (dry run, apply, the activation codes downloaded) -> the checklist's
import item done -> an app registered on the apps page (the demo shared app, examples/
shared_app, then started with the client id and secret the page showed once) -> the checklist's
app item done -> the official activates with the code from the hand-out file -> signs in to
the demo app, which shows their name -> requests a first signing certificate on their
certificate pages, with a key made in the browser -> the admin approves it -> the official
sees the certificate, valid.

Every page is checked for its language (``<html lang>``, and no catalogue text of the other
language in what a person reads) and saved at desktop and phone width under
test-artifacts/screenshots/first-hour/<lang>/NN-<step>-<width>.png.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from playwright.sync_api import Browser, Page, expect
from rich.console import Console
from sqlalchemy import select

from ca_admin.models import Authority
from commune_sso import bootstrap
from core.db import transaction
from core.settings import Settings
from idp.runtime import IdpRuntime
from tests.browser.conftest import DESKTOP, SCREENSHOTS, save_screenshots
from tests.browser_support import bind_loopback, run_shared_app
from tests.conftest import OFFICIAL_PASSWORD
from tests.idp.import_files import cccd, csv_bytes
from tests.idp.test_pages_in_vietnamese import ENGLISH_MSGIDS, catalogue_texts, visible_text

LANGUAGES = ("vi", "en")
ALBUM = SCREENSHOTS / "first-hour"
WARD = "00070"  # Phường Hoàn Kiếm, Hà Nội: in the packaged list the first start loads
OFFICIAL_USERNAME = "le.thi.hoa"
OFFICIAL_NAME = "Lê Thị Hoa"
ADMIN_PASSWORD = "quản-trị-viên-của-tỉnh-2026"
APP_NAME = "Hệ thống quản lý văn bản"
CA_PAGES = "/ca/pages"
# Slow steps: an import job, a page that signs in through the IdP.
JOB_TIMEOUT = 20_000


# What must not be read on a page of each language: the other language's catalogue texts.
FOREIGN_TEXTS = {"vi": ENGLISH_MSGIDS, "en": catalogue_texts("vi")}


@dataclass
class Album:
    """The walk's screenshots, numbered in the order taken, and the language check of every
    page photographed."""

    lang: str
    directory: Path
    taken: list[str] = field(default_factory=list)

    def shoot(self, page: Page, step: str, *, ours: bool = True) -> None:
        """Check the page's language (``ours=False``: a shared app's page, not ours to
        translate), then save it at both widths."""
        if ours:
            assert page.locator("html").get_attribute("lang") == self.lang, (step, page.url)
            text = visible_text(page.content())
            foreign = sorted(t for t in FOREIGN_TEXTS[self.lang] if t in text)
            assert not foreign, f"{step} ({page.url}) in {self.lang} shows {foreign}"
        self.taken.append(step)
        save_screenshots(page, self.directory / f"{len(self.taken):02d}-{step}")


@dataclass(frozen=True)
class FirstStart:
    """What the operator reads on the console at the first start."""

    admin_setup_url: str
    admin_code: str


@pytest.fixture
def settings(settings: Settings, sqlite_template: Path) -> Settings:
    """The embedded quick start: no database URL (SQLite under the var directory), the
    development environment, units loaded at start. Its database is fresh, at the head
    revision (what ``serve`` upgrades an empty file to)."""
    quick = settings.model_copy(update={"database_url": None, "units_load_on_start": True})
    assert bootstrap.is_quick_start(quick)
    quick.var_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sqlite_template, quick.var_dir / "commune-sso.db")
    assert quick.resolved_database_url.endswith(str(quick.var_dir / "commune-sso.db"))
    return quick


@pytest.fixture
def first_start(settings: Settings, runtime: IdpRuntime) -> FirstStart:
    """``serve``'s first start on the empty database, and what it prints."""
    created = bootstrap.first_start(
        settings,
        runtime.session_factory,
        clock=runtime.clock,
        demo=bootstrap.demo_by_default(settings),
    )
    assert created is not None and created.admin_setup is not None
    console = Console(record=True, width=200)
    bootstrap.print_first_start(console, settings, created)
    printed = console.export_text()
    url = re.search(r"admin setup page:\s+(\S+)", printed)
    code = re.search(r"activation code:\s+(\S+)", printed)
    assert url is not None and code is not None, printed
    return FirstStart(url.group(1), code.group(1))


@pytest.fixture
def browsers(chromium: Browser) -> Iterator[tuple[Page, Page]]:
    """The admin's browser and the official's: two people, two browsers."""
    contexts = []
    for _ in range(2):
        context = chromium.new_context(viewport=DESKTOP, locale="vi-VN")
        context.set_default_timeout(10_000)
        contexts.append(context)
    yield contexts[0].new_page(), contexts[1].new_page()
    for context in contexts:
        context.close()


def choose_language(page: Page, lang: str) -> None:
    """The header's language switch; the choice then stays in the ``lang`` cookie."""
    page.locator(f".lang-switch a[hreflang={lang}]").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == lang
    assert any(c["name"] == "lang" and c["value"] == lang for c in page.context.cookies())


def activate(page: Page, *, code: str, password: str) -> None:
    """The activation form, opened at the address handed out (username filled in)."""
    expect(page.locator("#username")).not_to_have_value("")
    page.fill("#code", code)
    page.fill("#new_password", password)
    page.fill("#new_password_confirm", password)


def wait_for_job(page: Page) -> None:
    """An import job's page refreshes itself until the job is done."""
    expect(page.locator("#job-status")).to_have_class(
        re.compile(r"badge--done"), timeout=JOB_TIMEOUT
    )


def checklist_item(page: Page, key: str) -> str:
    """``done`` or ``todo``: the state of one item of the dashboard's setup checklist."""
    classes = page.locator(f"#setup-{key}").get_attribute("class") or ""
    state = re.search(r"checklist__item--(done|todo)", classes)
    assert state is not None, classes
    return state.group(1)


def handed_out_code(zip_bytes: bytes, username: str) -> tuple[str, str]:
    """The activation code and address of ``username`` in the downloaded hand-out files."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        for name in archive.namelist():
            text = archive.read(name).decode("utf-8-sig")
            for row in list(csv.reader(io.StringIO(text)))[1:]:
                if row and row[0] == username:
                    return row[3], row[5]
    raise AssertionError(f"no activation code for {username} in {archive.namelist()}")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_first_hour(
    lang: str,
    first_start: FirstStart,
    provider: str,
    runtime: IdpRuntime,
    browsers: tuple[Page, Page],
) -> None:
    started = time.monotonic()
    admin, official = browsers
    album = Album(lang, ALBUM / lang)
    shutil.rmtree(album.directory, ignore_errors=True)

    # --- The admin: the setup address printed at the first start.
    admin.goto(first_start.admin_setup_url)
    choose_language(admin, lang)
    expect(admin.locator("#username")).to_have_value(bootstrap.FIRST_ADMIN)
    activate(admin, code=first_start.admin_code, password=ADMIN_PASSWORD)
    album.shoot(admin, "admin-setup")
    admin.locator("form[action='/activate'] button[type=submit]").click()
    admin.wait_for_url(f"{provider}/account?done=activated")
    expect(admin.locator(".alert--success")).to_be_visible()
    album.shoot(admin, "admin-signed-in")

    # The dashboard: units loaded and the CA made at start; import and app still to do.
    admin.locator(".site-nav a[href='/admin']").click()
    expect(admin.locator("#setup-checklist")).to_be_visible()
    assert checklist_item(admin, "units") == "done"
    assert checklist_item(admin, "ca") == "done"
    assert checklist_item(admin, "import") == "todo"
    assert checklist_item(admin, "app") == "todo"
    album.shoot(admin, "dashboard")

    # --- Import: the checklist's link, a dry run, then apply.
    admin.locator("#setup-import a").click()
    admin.wait_for_url(f"{provider}/admin/imports")
    album.shoot(admin, "import-form")
    data = csv_bytes(
        [[cccd(501, female=True), OFFICIAL_NAME, OFFICIAL_USERNAME, "", "", WARD, "", "Văn thư"]]
    )
    admin.locator("input[type=file]").set_input_files(
        files=[{"name": "can-bo.csv", "mimeType": "text/csv", "buffer": data}]
    )
    admin.locator("form[enctype='multipart/form-data'] button[type=submit]").first.click()
    wait_for_job(admin)
    expect(admin.locator("#job-counts li").first).to_contain_text("1")
    expect(admin.locator("tr.row--error")).to_have_count(0)
    album.shoot(admin, "import-dry-run")
    admin.locator("#apply").click()
    wait_for_job(admin)
    expect(admin.locator("#job-counts li").first).to_contain_text("1")
    expect(admin.locator("#job-progress")).to_have_attribute("value", "100")
    album.shoot(admin, "import-applied")
    with admin.expect_download() as download:
        admin.locator("form[action$='/activation-codes'] button").click()
    code, activation_address = handed_out_code(
        download.value.path().read_bytes(), OFFICIAL_USERNAME
    )
    assert activation_address.startswith(f"{provider}/activate?username=")

    admin.locator(".site-nav a[href='/admin']").click()
    assert checklist_item(admin, "import") == "done"
    assert checklist_item(admin, "app") == "todo"
    album.shoot(admin, "dashboard-after-import")

    # --- Register the demo shared app: the checklist's link, the form, the secret once.
    app_socket = bind_loopback()
    app_base = f"http://127.0.0.1:{app_socket.getsockname()[1]}"
    admin.locator("#setup-app a").click()
    admin.wait_for_url(f"{provider}/admin/clients/new")
    admin.fill("#name", APP_NAME)
    admin.fill("#redirect_uris", f"{app_base}/auth/callback")
    admin.fill("#post_logout_redirect_uris", f"{app_base}/logged-out")
    admin.fill("#backchannel_logout_uri", f"{app_base}/backchannel-logout")
    admin.check("#first_party")
    album.shoot(admin, "app-form")
    admin.locator("form[action='/admin/clients/new'] button[type=submit]").click()
    expect(admin.locator("#client-secret")).to_be_visible()
    client_id = admin.locator("#client-id").inner_text()
    client_secret = admin.locator("#client-secret").inner_text()
    album.shoot(admin, "app-registered")
    admin.goto(f"{provider}/admin/clients")
    expect(admin.locator("main")).to_contain_text(APP_NAME)
    album.shoot(admin, "apps")
    admin.locator(".site-nav a[href='/admin']").click()
    assert checklist_item(admin, "app") == "done"
    album.shoot(admin, "dashboard-after-app")

    # --- The official: the activation address and code from the hand-out file.
    official.goto(activation_address)
    choose_language(official, lang)
    expect(official.locator("#username")).to_have_value(OFFICIAL_USERNAME)
    activate(official, code=code, password=OFFICIAL_PASSWORD)
    album.shoot(official, "official-activation")
    official.locator("form[action='/activate'] button[type=submit]").click()
    official.wait_for_url(f"{provider}/account?done=activated")
    expect(official.locator(".alert--success")).to_be_visible()
    expect(official.locator("main")).to_contain_text(OFFICIAL_NAME)
    expect(official.locator(".site-nav a[href='/admin']")).to_have_count(0)
    album.shoot(official, "official-activated")

    # --- The demo app, with what the apps page showed: single sign-on, the official's name.
    with run_shared_app(
        issuer=provider,
        client_id=client_id,
        client_secret=client_secret,
        sock=app_socket,
        name=APP_NAME,
    ) as shared_app:
        official.goto(shared_app.url("/"))
        official.locator("#login").click()
        official.wait_for_url(shared_app.url("/"))
        expect(official.locator("#status")).to_contain_text(OFFICIAL_NAME)
        album.shoot(official, "demo-app-signed-in", ours=False)
    app_socket.close()

    # --- A first signing certificate: the official asks on their certificate pages...
    official.goto(f"{provider}/account")
    official.locator(f".site-nav a[href='{CA_PAGES}/']").click()
    album.shoot(official, "certificates-welcome")  # the CA pages have a session of their own
    official.locator(f"main a[href^='{CA_PAGES}/login']").click()
    official.wait_for_url(f"{provider}{CA_PAGES}/")
    expect(official.locator("#no-certificates")).to_be_visible()
    album.shoot(official, "my-certificates-empty")
    official.locator("#request-certificate").click()
    official.wait_for_url(f"{provider}{CA_PAGES}/request")
    expect(official.locator("#browser-option")).to_be_visible()
    official.locator("#browser-generate").click()
    expect(official.locator("#browser-result")).to_be_visible()
    with official.expect_download() as saved:
        official.locator("#browser-key-download").click()
    private_key = load_pem_private_key(saved.value.path().read_bytes(), password=None)
    album.shoot(official, "certificate-request")
    official.locator("#browser-submit").click()
    official.wait_for_url(f"{provider}{CA_PAGES}/?done=request")
    expect(official.locator(".alert--success")).to_be_visible()
    expect(official.locator(".request-status--pending")).to_have_count(1)
    album.shoot(official, "certificate-requested")

    # ... the admin approves it...
    admin.goto(f"{provider}/admin")
    admin.locator(f".site-nav a[href='{CA_PAGES}/']").click()
    admin.locator(f"main a[href^='{CA_PAGES}/login']").click()
    admin.wait_for_url(f"{provider}{CA_PAGES}/")
    admin.locator(f"nav a[href='{CA_PAGES}/admin/requests']").click()
    expect(admin.locator(".request")).to_have_count(1)
    expect(admin.locator(".request")).to_contain_text(OFFICIAL_NAME)
    album.shoot(admin, "certificate-approval")
    admin.locator(".request form[action$='/approve'] button").click()
    expect(admin.locator("#queue-empty")).to_be_visible()

    # ... and it is the official's, valid, for the key their browser made.
    official.goto(f"{provider}{CA_PAGES}/")
    certificate_item = official.locator(".cert")
    expect(certificate_item).to_have_count(1)
    expect(certificate_item.locator(".cert__name")).to_have_text(OFFICIAL_NAME)
    album.shoot(official, "certificate-issued")
    with official.expect_download() as chain_download:
        certificate_item.locator("a[href$='format=chain']").click()
    certificate, issuing, root = x509.load_pem_x509_certificates(
        chain_download.value.path().read_bytes()
    )
    assert certificate.public_key().public_numbers() == private_key.public_key().public_numbers()  # type: ignore[union-attr]
    certificate.verify_directly_issued_by(issuing)
    with transaction(runtime.session_factory) as session:
        roots = session.scalars(select(Authority.certificate_der).where(Authority.role == "root"))
        assert list(roots) == [root.public_bytes(Encoding.DER)]  # the quick start's own CA

    elapsed = time.monotonic() - started
    print(f"first hour in {lang}: {len(album.taken)} pages in {elapsed:.1f} s")
    assert len(list(album.directory.glob("*.png"))) == 2 * len(album.taken)
