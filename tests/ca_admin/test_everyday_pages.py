"""The certificate pages of issue 19 through the ASGI app on both databases: serial numbers as
``openssl x509 -serial`` prints them (leading zero kept, uppercase) on the pages, in the API,
in file names and in searches, which accept both forms; units by name with their code; the
pages with tables use the width; a disabled button looks disabled."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial, parse_serial, serial_hex
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import HOAN_KIEM, People
from tests.ca_admin.pages_flow import sign_in
from tests.ca_admin.test_pages import PAGES, ca_runtime, issue_for

__all__ = ["ca_runtime"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parents[2]


def openssl_says(pem: bytes) -> str:
    """``serial=...`` from ``openssl x509 -serial -noout``, the value only."""
    printed = subprocess.run(
        ["openssl", "x509", "-serial", "-noout"],
        input=pem,
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode("ascii")
    assert printed.startswith("serial=")
    return printed.strip().removeprefix("serial=")


@pytest.mark.parametrize(
    ("number", "shown"),
    [(0x1ABC, "1ABC"), (0xABC, "0ABC"), (0x0102, "0102"), (0x80, "80"), (0x5, "05")],
)
def test_openssl_form_keeps_whole_octets(number: int, shown: str) -> None:
    assert openssl_serial(number) == shown
    assert openssl_serial(serial_hex(number)) == shown
    assert parse_serial(shown) == parse_serial(serial_hex(number)) == number
    assert parse_serial(":".join(shown[i : i + 2] for i in range(0, len(shown), 2))) == number


@pytest.mark.usefixtures("hierarchy")
def test_pages_show_the_serial_openssl_prints_and_accept_both_forms(
    web: TestClient, runtime: IdpRuntime, ca_runtime: CaRuntime, people: People
) -> None:
    certificate = issue_for(ca_runtime, people.official)
    # Every serial of ours starts with the octet 01: a leading zero nibble, which the stored
    # key (lowercase hex without leading zeros) drops and openssl prints.
    assert certificate.serial.startswith("1") and len(certificate.serial) % 2 == 1
    home = sign_in(web, runtime, people.official)
    shown = re.search(r'<code class="serial">([0-9A-F]+)</code>', home.text)
    assert shown is not None
    pem = web.get(f"{PAGES}/certificates/{shown.group(1)}/download?format=pem")
    assert pem.status_code == 200
    assert openssl_says(pem.content) == shown.group(1)
    assert shown.group(1).startswith("01")
    assert f'filename="{shown.group(1)}.pem"' in pem.headers["content-disposition"]
    # The stored form and lowercase with colons still find the certificate.
    with_colons = ":".join(shown.group(1)[i : i + 2] for i in range(0, len(shown.group(1)), 2))
    for typed in (certificate.serial, with_colons.lower()):
        again = web.get(f"{PAGES}/certificates/{typed}/download?format=pem")
        assert again.status_code == 200 and again.content == pem.content

    admin = sign_in(web, runtime, people.unit_admin, f"{PAGES}/admin/certificates")
    assert admin.status_code == 200
    detail = web.get(f"{PAGES}/admin/certificates/{shown.group(1)}")
    assert detail.status_code == 200
    assert f"<code>{shown.group(1)}</code>" in detail.text
    assert (
        f'href="{PAGES}/admin/certificates/{shown.group(1)}"'
        in web.get(f"{PAGES}/admin/certificates", params={"name": "nguyen van an"}).text
    )


@pytest.mark.usefixtures("hierarchy")
def test_units_are_shown_by_name_with_their_code(
    web: TestClient, runtime: IdpRuntime, ca_runtime: CaRuntime, people: People
) -> None:
    certificate = issue_for(ca_runtime, people.official)
    sign_in(web, runtime, people.unit_admin, f"{PAGES}/admin/certificates")
    found = web.get(f"{PAGES}/admin/certificates", params={"unit": HOAN_KIEM})
    assert f'Phường Hoàn Kiếm <code class="unit-code">{HOAN_KIEM}</code>' in found.text
    detail = web.get(f"{PAGES}/admin/certificates/{openssl_serial(certificate.serial)}")
    assert f'<dd>Phường Hoàn Kiếm <code class="unit-code">{HOAN_KIEM}</code></dd>' in detail.text
    # The label carries no date format: the picker shows the browser's own.
    assert '<label for="expiring_before">Hết hạn trước ngày</label>' in found.text
    css = (ROOT / "core/web/static/ca.css").read_text(encoding="utf-8")
    assert re.search(r"\.site-main:has\(\.ca-table, \.cert__facts\) \{\s*max-width: 64rem;", css)


def test_a_disabled_button_is_styled_as_disabled() -> None:
    css = (ROOT / "core/web/static/style.css").read_text(encoding="utf-8")
    rule = re.search(r"\.button:disabled,\n(?:[^{]*\n)*?[^{]*\{([^}]*)\}", css)
    assert rule is not None
    assert "cursor: not-allowed" in rule.group(1) and "background: #e4e1dd" in rule.group(1)
    # After the coloured kinds, so that it wins over .button--primary at equal specificity.
    assert css.index(".button:disabled") > css.index(".button--primary:active")
