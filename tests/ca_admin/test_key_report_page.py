"""An official reports a lost or compromised key on their certificate pages (issue 18):
revoked as keyCompromise with the optional invalidity date, only after a fresh sign-in and with
the CSRF token, audited in the same transaction, the CRL re-signed, the holder told by e-mail."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin.models import Authority, IssuedCertificate
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from core import audit
from core.clock import FixedClock
from core.db import transaction
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import People
from tests.ca_admin.interop_support import crl_named_by
from tests.ca_admin.pages_flow import csrf_of, reauthenticate, sign_in
from tests.ca_admin.test_api import vi
from tests.ca_admin.test_pages import PAGES, issue_for
from tests.ca_admin.test_reminders import messages


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    runtime: CaRuntime = app.state.ca
    return runtime


def stored(ca_runtime: CaRuntime, certificate: IssuedCertificate) -> IssuedCertificate:
    with transaction(ca_runtime.session_factory) as session:
        row = session.get(IssuedCertificate, certificate.id)
        assert row is not None
        session.expunge(row)
        return row


def test_an_official_reports_a_lost_key_and_is_told_by_mail(
    web: TestClient,
    runtime: IdpRuntime,
    clock: FixedClock,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    certificate = issue_for(ca_runtime, people.official)
    serial = openssl_serial(certificate.serial)
    page_url = f"{PAGES}/certificates/{serial}/report-lost"

    # A colleague cannot report someone else's key.
    sign_in(web, runtime, people.colleague)
    assert web.get(page_url).status_code == 403

    home = sign_in(web, runtime, people.official)
    assert f'href="{page_url}"' in home.text and vi("Report key lost or compromised") in home.text
    form = web.get(page_url)
    assert form.status_code == 200 and 'name="invalidity_date"' in form.text
    csrf = csrf_of(form)

    # Without the CSRF token: refused, nothing revoked.
    forged = web.post(page_url, data={"invalidity_date": ""})
    assert forged.status_code == 403
    # Six minutes later the sign-in is too old: confirm the password first.
    clock.advance(minutes=6)
    stale = web.post(page_url, data={"csrf_token": csrf, "invalidity_date": ""})
    assert stale.status_code == 401
    assert 'id="reauth-link"' in stale.text
    assert stored(ca_runtime, certificate).status == "good"
    link = stale.text.split('id="reauth-link" href="', 1)[1].split('"', 1)[0]
    fresh = reauthenticate(web, link, people.official.username)
    assert 'name="invalidity_date"' in fresh.text

    future = web.post(
        page_url, data={"csrf_token": csrf_of(fresh), "invalidity_date": "2099-01-01"}
    )
    assert future.status_code == 400
    assert vi("The invalidity date cannot be in the future.") in future.text
    reported = web.post(
        page_url, data={"csrf_token": csrf_of(fresh), "invalidity_date": "2026-01-02"}
    )
    assert reported.status_code == 303, reported.text
    shown = web.get(reported.headers["location"])
    assert (
        vi(
            "The certificate was revoked because its key is lost or compromised. A message was "
            "sent to your e-mail address."
        )
        in shown.text
    )

    row = stored(ca_runtime, certificate)
    assert (row.status, row.revocation_reason) == ("revoked", "keyCompromise")
    assert row.invalidity_date is not None
    assert row.invalidity_date.date().isoformat() == "2026-01-02"
    with transaction(ca_runtime.session_factory) as session:
        entry = audit.tail(session, limit=1, action_prefix="ca.certificate.revoked")[0]
        assert entry.actor == people.official.subject
        assert json.loads(entry.details)["reason"] == "keyCompromise"
    crl = crl_named_by(ca_runtime, x509.load_der_x509_certificate(certificate.der))
    revoked_entry = crl.get_revoked_certificate_by_serial_number(int(certificate.serial, 16))
    assert revoked_entry is not None
    assert (
        revoked_entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        == x509.ReasonFlags.key_compromise
    )

    sent = messages(ca_runtime)
    assert len(sent) == 1 and sent[0]["To"] == "nguyen.van.an@hanoi.gov.vn"
    assert str(sent[0]["Subject"]) == (
        f"Chứng thư số ký {serial} của bạn đã bị thu hồi: khóa bị mất hoặc bị lộ"
    )
    body = sent[0].get_content()
    assert "Kính gửi Nguyễn Văn An" in body and "báo ngay cho quản trị viên" in body

    # Reported once: the page says so and a second report changes nothing.
    again = web.get(page_url)
    assert 'id="report-closed"' in again.text
    twice = web.post(page_url, data={"csrf_token": csrf_of(again), "invalidity_date": ""})
    assert twice.status_code == 409
    assert len(messages(ca_runtime)) == 1
