"""The official's pages of issue 19 through the real ASGI app, on SQLite and PostgreSQL:
recovery codes to download (a .txt naming the account, the portal and the date) and to print
(a script file the CSP allows, a print stylesheet), date inputs whose labels carry no format the
picker does not show. The apps of each session: test_account_pages, with the sessions list."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import unquote

from core.web.templating import CONTENT_SECURITY_POLICY
from tests.conftest import OFFICIAL_PASSWORD
from tests.idp.test_account_pages import enrol_totp, new_browser, signed_in

__all__ = ["new_browser", "signed_in"]  # fixtures, imported for pytest

ROOT = Path(__file__).resolve().parents[2]
DATA_LINK = re.compile(
    r'<a class="button button--secondary" id="recovery-codes-download" '
    r'href="data:text/plain;charset=utf-8,([^"]+)" download="([^"]+)">'
)


def test_recovery_codes_can_be_downloaded_as_a_text_file_with_a_header(signed_in, official, clock):
    _, codes = enrol_totp(signed_in, clock)
    confirmed = _confirmation_page(signed_in)
    link = DATA_LINK.search(confirmed)
    assert link is not None, confirmed
    text = unquote(html.unescape(link.group(1)))
    assert link.group(2) == "recovery-codes-nguyen.van.an.txt"
    lines = text.split("\r\n")
    assert lines[0] == "Mã khôi phục đăng nhập hai bước"
    assert lines[1] == "Tài khoản: nguyen.van.an (Nguyễn Văn An)"
    assert lines[2] == "Cổng: Cổng đăng nhập một lần – http://127.0.0.1:8000"
    assert re.fullmatch(r"Thời điểm tạo: \d\d/\d\d/\d{4} \d\d:\d\d", lines[3]), lines[3]
    shown = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", confirmed)
    assert [f"{n}. {code}" for n, code in enumerate(shown, start=1)] == [
        line for line in lines if re.match(r"\d+\. ", line)
    ]
    assert len(shown) == 10 and set(shown).isdisjoint(codes)  # a new set replaced the first


def _confirmation_page(web) -> str:
    """New recovery codes (the password is asked again): the page that shows them."""
    page = web.get("/account/security")
    token = re.findall(r'name="csrf_token" value="([^"]+)"', page.text)[0]
    answer = web.post(
        "/account/security/recovery-codes",
        data={"csrf_token": token, "password": OFFICIAL_PASSWORD},
    )
    assert answer.status_code == 200, answer.text
    return answer.text


def test_recovery_codes_can_be_printed_without_inline_script(signed_in, clock):
    enrol_totp(signed_in, clock)
    page = _confirmation_page(signed_in)
    assert '<script src="/static/print-button.js" defer></script>' in page
    assert (
        '<button type="button" class="button button--secondary" id="recovery-codes-print" '
        "data-print hidden>In</button>"
    ) in page
    assert "<script>" not in page and " onclick=" not in page
    # default-src 'self' covers the script file; no inline script is allowed or needed.
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    served = signed_in.get("/static/print-button.js")
    assert served.status_code == 200 and "window.print()" in served.text
    css = (ROOT / "core/web/static/account.css").read_text(encoding="utf-8")
    assert re.search(r"@media print \{.*?\.no-print", css, re.S)


def test_date_labels_name_no_format_and_pages_say_their_language(web):
    templates = [
        *(ROOT / "idp/templates").rglob("*.html"),
        *(ROOT / "ca_admin/templates").rglob("*.html"),
    ]
    with_dates = [t for t in templates if 'type="date"' in t.read_text(encoding="utf-8")]
    assert with_dates  # the audit filter, the certificate search and the revocation form
    for template in with_dates:
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"YYYY|yyyy|NNNN|dd/mm", text, re.I), template
    english = web.get("/activate?lang=en")
    assert english.status_code == 200 and '<html lang="en">' in english.text
    vietnamese = web.get("/activate?lang=vi")
    assert vietnamese.status_code == 200 and '<html lang="vi">' in vietnamese.text
