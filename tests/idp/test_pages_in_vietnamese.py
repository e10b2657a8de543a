"""Every page a person can reach, in Vietnamese, shows neither a raw code nor an English msgid.

A system administrator walks the IdP admin pages, their account pages and the CA pages by
following the links on them, with data in every table: units with history (sync, rename,
merge), officials (one created by an import), an app, an import job with refused rows, an
audit entry for every action the code writes (by every kind of actor), a logout delivery, and
certificates valid, on hold and revoked. Then the error pages: each refused sign-out, a
missing page, an expired form. The visible text (tags stripped; ``<code>``, ``<pre>`` and
elements marked ``lang="en"`` left out: identifiers and an app's own error text) must not
contain a code that has a label (core.web.code_labels), an actor prefix, ``source:``, or an
English msgid of any catalogue.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import revocation
from ca_admin.models import Authority
from ca_admin.runtime import CaRuntime
from commune_sso.page_labels import page_labels
from core import audit
from core.db import transaction
from core.web.code_labels import ACTOR_KIND
from idp import units
from idp.logout import backchannel
from idp.models import Client, LogoutDelivery, Unit
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import (  # noqa: F401 (hierarchy and people are fixtures)
    BA_DINH,
    HANOI,
    HOAN_KIEM,
    People,
    hierarchy,
    people,
)
from tests.ca_admin.pages_flow import sign_in as sign_in_to_ca_pages
from tests.ca_admin.test_pages import issue_for
from tests.idp.import_files import cccd, csv_bytes
from tests.idp.test_admin_pages import csrf_of, post, wait_done

ROOT = Path(__file__).resolve().parents[2]
CATALOGUES = [
    ROOT / "core" / "web" / "locale",
    ROOT / "idp" / "locale",
    ROOT / "ca_admin" / "locale",
]
LABELS = page_labels()
ACTORS = ("user:root.admin", "client:demo-app", "system", "anonymous", "cli", "ca-scheduler")
AREAS = ("/admin", "/account", "/ca/pages")
# Links that leave the page walk: files, the language switch, signing out.
NOT_PAGES = re.compile(r"\.(csv|zip|pem|crt|cer|der|p12)$|/download|/logout$|/collect$")
MAX_PAGES = 150
# One official created by the import, one row refused for its citizen ID, one for its unit.
IMPORT_FILE = csv_bytes(
    [
        [cccd(101), "Phạm Văn Dũng", "pham.van.dung", "", "", HOAN_KIEM, "", "Chuyên viên"],
        ["12345", "Sai Số", "sai.so", "", "", HOAN_KIEM, "", ""],
        [cccd(103), "Không Có Đơn Vị", "khong.co", "", "", "77777", "", ""],
    ]
)


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    runtime: CaRuntime = app.state.ca
    return runtime


# ---------------------------------------------------------------- visible text


class _VisibleText(HTMLParser):
    """The text a person reads, without identifiers (<code>, <pre>) and declared-English text."""

    SKIPPED = frozenset({"code", "pre", "script", "style", "textarea"})
    VOID = frozenset(
        {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._open: list[bool] = []  # per open element: is its content skipped?

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        skipped = tag in self.SKIPPED or dict(attrs).get("lang") == "en"
        self._open.append(skipped or (bool(self._open) and self._open[-1]))

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if not (self._open and self._open[-1]):
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def catalogue_texts(language: str) -> set[str]:
    """The texts of several words in ``language`` ("en": the msgids, "vi": their translations)
    of every catalogue entry whose Vietnamese differs from its English: seen on a page of the
    other language, they are that language leaking in. Only the constant part before a
    placeholder, which is what a page shows."""
    found: set[str] = set()
    for directory in CATALOGUES:
        with (directory / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
            for message in read_po(fh, locale="vi"):
                msgid = message.id[0] if isinstance(message.id, tuple) else message.id
                text = message.string[0] if isinstance(message.string, tuple) else message.string
                if msgid and text and text != msgid:
                    head = re.split(r"%\(\w+\)[a-z]", msgid if language == "en" else text)[0]
                    if len(head.split()) >= 2:
                        found.add(head.strip())
    return found


ENGLISH_MSGIDS = catalogue_texts("en")
RAW_CODES = re.compile(
    r"(?<![\w.@-])(?:"
    + "|".join(
        re.escape(code)
        for code in sorted(
            {
                code
                for kind, codes in LABELS.items()
                if kind != ACTOR_KIND
                for code in codes
                if "_" in code or "." in code or code[:1].islower()
            },
            key=len,
            reverse=True,
        )
    )
    + r")(?![\w@-]|\.\w)"
    + r"|\b(?:user|client):\S|\bsource: "
)


def problems_in(path: str, html: str) -> list[str]:
    text = visible_text(html)
    found = [f"{path}: raw code {m.group(0)!r}" for m in RAW_CODES.finditer(text)]
    found += [f"{path}: English {msgid!r}" for msgid in ENGLISH_MSGIDS if msgid in text]
    return found


def test_the_checks_see_raw_codes_and_english_but_not_identifiers() -> None:
    page = (
        "<p>Trạng thái: active, login.success bởi user:admin (source: sync)</p>"
        "<p>Hash chain broken: Something went wrong</p>"
        "<p><code>login.success</code> <span lang='en'>connection refused</span></p>"
        "<p>nguyen.van.an@hanoi.gov.vn</p>"
    )
    found = problems_in("/x", page)
    assert "/x: raw code 'active'" in found
    assert "/x: raw code 'login.success'" in found
    assert any("user:a" in f for f in found) and any("source" in f for f in found)
    assert "/x: English 'Something went wrong'" in found
    assert len([f for f in found if "login.success" in f]) == 1
    assert not [f for f in found if "nguyen" in f or "connection" in f]
    assert visible_text("<p>A<br>B<code>x</code>C</p>") == "A B C"


# ---------------------------------------------------------------- data in every table


def _units_with_history(runtime: IdpRuntime) -> None:
    with transaction(runtime.session_factory) as session:
        units.sync_from_package(
            session=session,
            clock=runtime.clock,
            actor="cli",
            source=[units.PackageUnit("99999", "ward", "Xã Mới Lập", "xã", HANOI)],
        )
    with transaction(runtime.session_factory) as session:
        ward_a = session.scalars(select(Unit).where(Unit.code == HOAN_KIEM)).one()
        ward_b = session.scalars(select(Unit).where(Unit.code == BA_DINH)).one()
        units.rename(
            session=session,
            clock=runtime.clock,
            actor="user:root.admin",
            unit=ward_a,
            new_name="Phường Hoàn Kiếm Mới",
            reason="Nghị quyết 1669/NQ-UBTVQH15",
        )
        new_unit = session.scalars(select(Unit).where(Unit.code == "99999")).one()
        units.merge(
            session=session,
            clock=runtime.clock,
            actor="user:root.admin",
            source=new_unit,
            target=ward_b,
            reason="Nghị quyết 1669/NQ-UBTVQH15",
        )


def _every_audit_action(runtime: IdpRuntime) -> None:
    with transaction(runtime.session_factory) as session:
        for number, action in enumerate(LABELS["audit_action"]):
            audit.record(
                session,
                clock=runtime.clock,
                actor=ACTORS[number % len(ACTORS)],
                action=action,
                target="account:nguyen.van.an",
            )


def _a_delivery_of_every_reason(runtime: IdpRuntime, client: Client) -> None:
    now = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        for number, reason in enumerate(LABELS["logout_reason"]):
            session.add(
                LogoutDelivery(
                    client_pk=client.id,
                    client_id=client.client_id,
                    uri="https://app.example.vn/bcl",
                    subject="s",
                    sid=None,
                    reason=reason,
                    status=backchannel.STATUSES[number % len(backchannel.STATUSES)],
                    attempts=1,
                    created_at=now,
                    last_attempt_at=now,
                    next_attempt_at=now + timedelta(minutes=5),
                    last_status_code=500,
                    log=[{"at": now.isoformat(), "status_code": 500}],
                )
            )


def _an_import_with_refused_rows(web: TestClient) -> None:
    uploaded = web.post(
        "/admin/imports",
        data={"csrf_token": csrf_of(web, "/admin/imports")},
        files={"file": ("can-bo.csv", IMPORT_FILE, "text/csv")},
    )
    assert uploaded.status_code == 303, uploaded.text
    job_page = uploaded.headers["location"]
    wait_done(web, job_page)
    applied = post(web, f"{job_page}/apply", form_page=job_page)
    assert applied.status_code == 303
    wait_done(web, applied.headers["location"])


def _certificates_in_every_status(ca_runtime: CaRuntime, people: People) -> None:  # noqa: F811
    good = issue_for(ca_runtime, people.official)
    held = issue_for(ca_runtime, people.colleague)
    revoked = issue_for(ca_runtime, people.official)
    with transaction(ca_runtime.session_factory) as session:
        for certificate, reason in ((held, "certificateHold"), (revoked, "keyCompromise")):
            revocation.revoke(
                session=session,
                runtime=ca_runtime,
                actor="test",
                serial=certificate.serial,
                reason=reason,
            )
    assert good.status == "good"


# ---------------------------------------------------------------- the walk


def walk(web: TestClient, seeds: list[str]) -> dict[str, str]:
    """GET every same-site page reachable from ``seeds`` inside the areas; path -> HTML."""
    pages: dict[str, str] = {}
    queue = deque(seeds)
    while queue and len(pages) < MAX_PAGES:
        url = queue.popleft()
        if url in pages:
            continue
        response = web.get(url)
        if response.status_code != 200 or "text/html" not in response.headers["content-type"]:
            pages[url] = ""
            continue
        pages[url] = response.text
        for href in re.findall(r'href="(/[^"#]*)"', response.text):
            href = href.replace("&amp;", "&")
            parts = urlsplit(href)
            if (
                parts.path.startswith(AREAS)
                and "lang=" not in parts.query
                and not NOT_PAGES.search(parts.path)
                and href not in pages
            ):
                queue.append(href)
    return {path: html for path, html in pages.items() if html}


def test_every_page_of_a_system_admin_is_vietnamese(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],  # noqa: F811
    people: People,  # noqa: F811
    rp: tuple[Client, str | None],
) -> None:
    _units_with_history(runtime)
    _every_audit_action(runtime)
    _a_delivery_of_every_reason(runtime, rp[0])
    _certificates_in_every_status(ca_runtime, people)
    # The CA pages sign in through the IdP: afterwards the IdP pages know the same person.
    landed = sign_in_to_ca_pages(web, runtime, people.system_admin)
    assert landed.status_code == 200
    _an_import_with_refused_rows(web)

    pages = walk(
        web,
        [
            "/admin",
            "/account",
            "/ca/pages/",
            "/ca/pages/validate",
            "/ca/pages/admin/certificates",
            "/ca/pages/admin/requests",
            "/ca/pages/admin/merger?old_unit=00070&new_unit=00004",
            *(f"/admin/audit?action={action}" for action in LABELS["audit_action"]),
        ],
    )
    visited = set(pages)
    for expected in ("/admin/units", "/admin/imports", "/admin/logout-deliveries", "/account"):
        assert any(urlsplit(p).path == expected for p in visited), (expected, sorted(visited))
    assert any(p.startswith("/admin/units/") for p in visited)
    assert any(p.startswith("/admin/officials/") for p in visited)
    assert any(p.startswith("/admin/imports/") for p in visited)
    assert any(p.startswith("/ca/pages/admin/certificates/") for p in visited)
    assert "/ca/pages/validate" in visited
    found = [problem for path, html in sorted(pages.items()) for problem in problems_in(path, html)]
    assert found == [], "\n".join(found)


def test_error_pages_are_vietnamese(web: TestClient, rp: tuple[Client, str | None]) -> None:
    client, _ = rp
    refused_sign_outs = {
        "unknown app": {"client_id": "no-such-app"},
        "unregistered return address": {
            "client_id": client.client_id,
            "post_logout_redirect_uri": "https://evil.example/",
        },
        "damaged ID token": {"id_token_hint": "a.b.c"},
    }
    for name, params in refused_sign_outs.items():
        page = web.get("/oauth2/logout", params=params)
        assert page.status_code == 400, name
        # The heading and the alert, not the portal's name ("Cổng đăng nhập một lần").
        said = re.search(r"<h1[^>]*>(.*?)</h1>.*?role=\"alert\">(.*?)</div>", page.text, re.S)
        assert said is not None, page.text
        text = visible_text(said.group(1) + " " + said.group(2))
        assert "đăng xuất" in text and "đăng nhập" not in text, (name, text)
        assert problems_in(name, page.text) == []
    missing = web.get("/admin/no-such-page", headers={"accept": "text/html"})
    assert missing.status_code == 404 and problems_in("404", missing.text) == []
    expired = web.post("/account/password", data={"csrf_token": "stale"})
    assert expired.status_code in (400, 403) and problems_in("csrf", expired.text) == []


# ---------------------------------------------------------------- every code has a label

LOGOUT_CALLS = {"enqueue_for_sessions", "enqueue_for_account", "end_browser_sessions"}


def _written_codes() -> tuple[dict[str, str], dict[str, str]]:
    """(audit actions, logout reasons) the code writes -> where, read from the source with
    ``ast``: ``action="..."`` (also both branches of a conditional, f-strings over the
    ``operation="..."`` values, and module constants named ``*_ACTION``), and the ``reason``
    of the calls that queue back-channel logout notices."""
    actions: dict[str, str] = {}
    reasons: dict[str, str] = {}
    operations: set[str] = set()
    templates: list[tuple[str, str]] = []
    for package in ("core", "idp", "ca_admin", "commune_sso"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            where = path.relative_to(ROOT).as_posix()
            constants = {
                target.id: node.value.value
                for node in tree.body
                if isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                for target in node.targets
                if isinstance(target, ast.Name) and target.id.endswith("_ACTION")
            }
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                for keyword in node.keywords:
                    value = keyword.value
                    at = f"{where}:{node.lineno}"
                    if keyword.arg == "operation" and isinstance(value, ast.Constant):
                        operations.add(str(value.value))
                    if (
                        keyword.arg == "reason"
                        and name in LOGOUT_CALLS
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                    ):
                        reasons[value.value] = at
                    if keyword.arg != "action":
                        continue
                    options = (
                        [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
                    )
                    for option in options:
                        if isinstance(option, ast.Constant) and isinstance(option.value, str):
                            actions[option.value] = at
                        elif isinstance(option, ast.Name) and option.id in constants:
                            actions[constants[option.id]] = at
                        elif isinstance(option, ast.JoinedStr):
                            head = option.values[0]
                            if isinstance(head, ast.Constant):
                                templates.append((str(head.value), at))
    for head, at in templates:
        for operation in operations:
            actions[f"{head}{operation}"] = at
    return actions, reasons


def test_every_audit_action_and_logout_reason_the_code_writes_has_a_label() -> None:
    actions, reasons = _written_codes()
    # The scan itself works: actions of each package, the f-string ones, the conditional ones.
    assert {"login.success", "ca.certificate.held", "ca.certificate.revoked", "key.rotate"} <= set(
        actions
    )
    assert {"scim.user.patch", "scim.group.replace", "audit.verify"} <= set(actions)
    assert {"logout", "account_disabled", "ended_by_official"} <= set(reasons)
    unlabelled = [
        f"{where}: {code!r}"
        for kind, found in (("audit_action", actions), ("logout_reason", reasons))
        for code, where in sorted(found.items())
        if code not in LABELS[kind]
    ]
    assert unlabelled == [], "codes without a label (add them to the package's labels.py):\n" + (
        "\n".join(unlabelled)
    )
