"""The CA pages through the ASGI app on both databases: sign-in through the real IdP (code flow
with PKCE, the real login form), the official's certificates and downloads, renewal (window,
fresh authentication, CSR errors next to the field in Vietnamese, double submit), the admin
pages scoped by the delegated roles, and stale forms."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import certificate_requests, issuance
from ca_admin.certificate_requests import Submission
from ca_admin.issuance import IssueOrder
from ca_admin.models import Authority, CertificateRequest, IssuedCertificate
from ca_admin.profiles import get_profile
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from commune_sso.ca_bridge import CA_PAGES_CLIENT_ID
from core.clock import FixedClock
from core.db import transaction
from core.web.csrf import FORM_EXPIRED
from idp import clients
from idp.models import Account
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import People, make_csr
from tests.ca_admin.pages_flow import FORM_TOKEN, csrf_of, reauthenticate, sign_in
from tests.ca_admin.test_api import vi

PAGES = "/ca/pages"


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    runtime: CaRuntime = app.state.ca
    return runtime


def issue_for(
    ca_runtime: CaRuntime,
    account: Account,
    *,
    days: int = 365,
    profile: str = "official-document-signing",
    device_name: str | None = None,
) -> IssuedCertificate:
    with transaction(ca_runtime.session_factory) as session:
        identity = ca_runtime.directory.find(session, subject_ref=account.subject)
        assert identity is not None
        key = ec.generate_private_key(ec.SECP256R1())
        return issuance.issue(
            session=session,
            runtime=ca_runtime,
            actor="test",
            order=IssueOrder(
                profile=get_profile(profile),
                identity=identity,
                public_key=key.public_key(),
                validity_days=days,
                device_name=device_name,
            ),
        )


def request_count(ca_runtime: CaRuntime) -> int:
    with transaction(ca_runtime.session_factory) as session:
        return session.scalar(select(func.count()).select_from(CertificateRequest)) or 0


def renewal_form(web: TestClient, serial: str) -> tuple[str, str]:
    page = web.get(f"{PAGES}/renew/{serial}")
    assert page.status_code == 200, page.text
    tokens = FORM_TOKEN.findall(page.text)
    assert tokens, page.text
    return csrf_of(page), tokens[1]  # [browser, csr, server]: the CSR upload form's token


def test_sign_in_through_the_idp_and_sign_out(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    landing = web.get(f"{PAGES}/")
    assert landing.status_code == 200
    assert f'href="{PAGES}/login"' in landing.text
    assert vi("Signing certificates") in landing.text
    assert web.get(f"{PAGES}/renew/01").headers["location"].startswith(f"{PAGES}/login?next=")

    started = web.get(f"{PAGES}/login")
    query = parse_qs(urlsplit(started.headers["location"]).query)
    assert query["client_id"] == [CA_PAGES_CLIENT_ID]
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    with transaction(runtime.session_factory) as session:
        registered = clients.get_active(session, CA_PAGES_CLIENT_ID)
        assert registered.redirect_uris == [f"{runtime.settings.issuer}/ca/pages/callback"]

    home = sign_in(web, runtime, people.official)
    assert home.status_code == 200
    assert vi("My certificates") in home.text
    assert "Nguyễn Văn An" in home.text
    cookie = next(c for c in web.cookies.jar if c.name == "ca_session")
    assert cookie.path == "/ca/pages/"
    assert cookie.has_nonstandard_attr("HttpOnly")

    # A tampered cookie is no session at all.
    assert cookie.value is not None
    web.cookies.set("ca_session", cookie.value[:-2] + "xx", domain=cookie.domain, path=cookie.path)
    assert web.get(f"{PAGES}/renew/01").status_code == 303
    web.cookies.set("ca_session", cookie.value, domain=cookie.domain, path=cookie.path)

    out = web.post(f"{PAGES}/logout", data={"csrf_token": csrf_of(home)})
    assert out.status_code == 303
    target = urlsplit(out.headers["location"])
    assert target.path == "/oauth2/logout"
    params = parse_qs(target.query)
    assert params["post_logout_redirect_uri"] == [f"{runtime.settings.issuer}/ca/pages/"]
    assert params["id_token_hint"]
    assert 'ca_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]


def test_a_forged_state_is_refused(
    web: TestClient, runtime: IdpRuntime, ca_runtime: CaRuntime, people: People
) -> None:
    web.get(f"{PAGES}/login")
    refused = web.get(f"{PAGES}/callback", params={"code": "x", "state": "not-the-state"})
    assert refused.status_code == 400
    assert vi("Signing in did not complete. Please try again.") in refused.text
    assert "ca_session" not in refused.headers.get("set-cookie", "")


def test_officials_see_and_download_only_their_own_certificates(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    own = issue_for(ca_runtime, people.official)
    other = issue_for(ca_runtime, people.colleague)
    home = sign_in(web, runtime, people.official)
    assert openssl_serial(own.serial) in home.text
    assert openssl_serial(other.serial) not in home.text
    assert vi("Valid") in home.text

    pem = web.get(f"{PAGES}/certificates/{own.serial}/download?format=pem")
    assert x509.load_pem_x509_certificate(pem.content).serial_number == int(own.serial, 16)
    der = web.get(f"{PAGES}/certificates/{own.serial}/download?format=der")
    assert x509.load_der_x509_certificate(der.content).serial_number == int(own.serial, 16)
    chain = x509.load_pem_x509_certificates(
        web.get(f"{PAGES}/certificates/{own.serial}/download?format=chain").content
    )
    assert len(chain) == 3
    chain[0].verify_directly_issued_by(chain[1])
    chain[1].verify_directly_issued_by(chain[2])

    refused = web.get(f"{PAGES}/certificates/{other.serial}/download?format=pem")
    assert refused.status_code == 403
    assert b"BEGIN CERTIFICATE" not in refused.content
    assert web.get(f"{PAGES}/renew/{other.serial}").status_code == 403


def test_renewal_needs_the_window_and_a_fresh_authentication(
    web: TestClient,
    runtime: IdpRuntime,
    clock: FixedClock,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    certificate = issue_for(ca_runtime, people.official, days=365)
    sign_in(web, runtime, people.official)
    closed = web.get(f"{PAGES}/renew/{certificate.serial}")
    assert closed.status_code == 200
    assert 'id="renewal-closed"' in closed.text and 'name="form_token"' not in closed.text
    refused = web.post(
        f"{PAGES}/renew/{certificate.serial}",
        data={
            "csrf_token": csrf_of(closed),
            "method": "csr",
            "csr_text": make_csr()[0].decode(),
            "form_token": "a" * 32,
        },
    )
    assert refused.status_code == 409
    assert request_count(ca_runtime) == 0

    # 340 days later the window is open, but the sign-in is old: confirm the password first.
    clock.advance(days=340)
    home = sign_in(web, runtime, people.official)
    assert f'href="{PAGES}/renew/{openssl_serial(certificate.serial)}"' in home.text
    csrf, token = renewal_form(web, certificate.serial)
    clock.advance(minutes=6)
    stale = web.get(f"{PAGES}/renew/{certificate.serial}")
    link = re.search(r'id="reauth-link" href="([^"]+)"', stale.text)
    assert link is not None and "reauth=1" in link.group(1)
    late = web.post(
        f"{PAGES}/renew/{certificate.serial}",
        data={
            "csrf_token": csrf,
            "method": "csr",
            "csr_text": make_csr()[0].decode(),
            "form_token": token,
        },
    )
    assert late.status_code == 401
    assert request_count(ca_runtime) == 0

    # The link asks the IdP for max_age=300: the password form comes back, then the form.
    started = web.get(link.group(1).replace("&amp;", "&"))
    assert "max_age=300" in started.headers["location"]
    page = reauthenticate(web, link.group(1), people.official.username)
    assert 'name="form_token"' in page.text
    csr_pem = make_csr()[0].decode()
    sent = web.post(
        f"{PAGES}/renew/{certificate.serial}",
        data={
            "csrf_token": csrf_of(page),
            "method": "csr",
            "csr_text": csr_pem,
            "form_token": FORM_TOKEN.findall(page.text)[1],
        },
    )
    assert sent.status_code == 303, sent.text
    assert request_count(ca_runtime) == 1
    home = web.get(sent.headers["location"])
    assert vi("Waiting for approval") in home.text


def test_csr_errors_are_shown_next_to_the_field_in_vietnamese_and_double_submit_is_one_request(
    web: TestClient,
    runtime: IdpRuntime,
    clock: FixedClock,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    certificate = issue_for(ca_runtime, people.official, days=20)  # already inside the window
    sign_in(web, runtime, people.official)
    csrf, token = renewal_form(web, certificate.serial)
    garbage = "-----BEGIN CERTIFICATE REQUEST-----\nđây không phải CSR\n"
    bad = web.post(
        f"{PAGES}/renew/{certificate.serial}",
        data={"csrf_token": csrf, "method": "csr", "csr_text": garbage, "form_token": token},
    )
    assert bad.status_code == 400
    error = re.search(r'<p class="field-error" id="csr-error">([^<]+)</p>', bad.text)
    assert error is not None
    assert error.group(1).strip() != "" and "CSR" in bad.text
    assert 'aria-describedby="csr-error"' in bad.text
    assert "đây không phải CSR" in bad.text  # what was typed is kept
    assert "Upload a certificate request" not in bad.text  # Vietnamese page
    empty = web.post(
        f"{PAGES}/renew/{certificate.serial}",
        data={"csrf_token": csrf, "method": "csr", "csr_text": "", "form_token": token},
    )
    assert vi("Choose a CSR file or paste the CSR (PEM) into the box.") in empty.text
    assert request_count(ca_runtime) == 0

    # An uploaded file, sent twice with the same form token: one request.
    csr_pem = make_csr()[0]
    for _ in range(2):
        sent = web.post(
            f"{PAGES}/renew/{certificate.serial}",
            data={"csrf_token": csrf, "method": "csr", "form_token": token},
            files={"csr_file": ("request.csr", csr_pem, "application/pkcs10")},
        )
        assert sent.status_code == 303, sent.text
    assert request_count(ca_runtime) == 1


def test_a_stale_form_gives_a_friendly_page(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    certificate = issue_for(ca_runtime, people.official, days=20)
    sign_in(web, runtime, people.official)
    stale = web.post(
        f"{PAGES}/renew/{certificate.serial}",
        data={"csrf_token": "stale", "method": "csr", "csr_text": "x"},
        headers={"accept": "text/html"},
    )
    assert stale.status_code == 403
    assert vi(FORM_EXPIRED) in stale.text
    # Back to the address the form was sent to, in the form it was typed (both are accepted).
    assert f'href="{PAGES}/renew/{certificate.serial}"' in stale.text
    assert request_count(ca_runtime) == 0


def _pending_renewal(
    web: TestClient, runtime: IdpRuntime, ca_runtime: CaRuntime, people: People, method: str
) -> tuple[IssuedCertificate, str]:
    certificate = issue_for(ca_runtime, people.official, days=20)
    sign_in(web, runtime, people.official)
    csrf, token = renewal_form(web, certificate.serial)
    sent = web.post(
        f"{PAGES}/renew/{certificate.serial}",
        data={
            "csrf_token": csrf,
            "method": method,
            "form_token": token,
            "csr_text": make_csr()[0].decode() if method == "csr" else "",
        },
    )
    assert sent.status_code == 303, sent.text
    with transaction(ca_runtime.session_factory) as session:
        request_id = session.scalar(select(CertificateRequest.request_id))
    assert request_id is not None
    return certificate, request_id


def test_unit_admin_approves_and_others_see_nothing(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    certificate, request_id = _pending_renewal(web, runtime, ca_runtime, people, "csr")

    # The official administers nothing.
    assert web.get(f"{PAGES}/admin/requests").status_code == 403

    # An admin of another ward sees an empty queue and cannot approve.
    queue = sign_in(web, runtime, people.other_unit_admin, f"{PAGES}/admin/requests")
    assert queue.status_code == 200
    assert request_id not in queue.text and 'id="queue-empty"' in queue.text
    refused = web.post(
        f"{PAGES}/admin/requests/{request_id}/approve", data={"csrf_token": csrf_of(queue)}
    )
    assert refused.status_code == 403
    assert vi("You do not administer this official's unit.") in refused.text
    found = web.get(f"{PAGES}/admin/certificates", params={"name": "nguyen van an"})
    assert openssl_serial(certificate.serial) not in found.text

    # The unit admin sees it; a rejection needs a reason (shown next to the field).
    queue = sign_in(web, runtime, people.unit_admin, f"{PAGES}/admin/requests")
    assert request_id in queue.text and "Nguyễn Văn An" in queue.text
    no_reason = web.post(
        f"{PAGES}/admin/requests/{request_id}/reject",
        data={"csrf_token": csrf_of(queue), "reason": " "},
    )
    assert no_reason.status_code == 400
    assert f'id="request-{request_id}-reason-error"' in no_reason.text
    approved = web.post(
        f"{PAGES}/admin/requests/{request_id}/approve", data={"csrf_token": csrf_of(queue)}
    )
    assert approved.status_code == 303
    again = web.post(
        f"{PAGES}/admin/requests/{request_id}/approve", data={"csrf_token": csrf_of(queue)}
    )
    assert again.status_code == 409  # a double click issues nothing twice
    with transaction(ca_runtime.session_factory) as session:
        issued = session.scalars(
            select(IssuedCertificate).where(IssuedCertificate.renewal_of_id == certificate.id)
        ).all()
    assert len(issued) == 1

    home = sign_in(web, runtime, people.official)
    assert openssl_serial(issued[0].serial) in home.text


def test_an_admin_cannot_approve_their_own_request(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    with transaction(ca_runtime.session_factory) as session:
        own = certificate_requests.submit(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            submission=Submission(
                subject_ref=people.unit_admin.subject,
                profile="device",
                csr=make_csr()[0],
                device_name="Máy tính bộ phận một cửa",
            ),
        )
        request_id = own.request_id
    queue = sign_in(web, runtime, people.unit_admin, f"{PAGES}/admin/requests")
    refused = web.post(
        f"{PAGES}/admin/requests/{request_id}/approve", data={"csrf_token": csrf_of(queue)}
    )
    assert refused.status_code == 403
    assert vi("You cannot approve your own request or a request for your own certificate.") in (
        refused.text
    )


def test_admin_searches_ignoring_diacritics_and_revokes_with_a_reason(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    certificate = issue_for(ca_runtime, people.official)
    page = sign_in(web, runtime, people.unit_admin, f"{PAGES}/admin/certificates")
    assert page.status_code == 200
    for query in ({"name": "nguyen van AN"}, {"citizen_id": "001090012345"}, {"unit": "00070"}):
        found = web.get(f"{PAGES}/admin/certificates", params=query)
        assert openssl_serial(certificate.serial) in found.text, query
    bad = web.get(f"{PAGES}/admin/certificates", params={"expiring_before": "21/11/2026"})
    assert bad.status_code == 400
    assert vi("Choose a valid date in the date picker.") in bad.text
    assert 'value="21/11/2026"' in bad.text

    detail = web.get(f"{PAGES}/admin/certificates/{certificate.serial}")
    missing = web.post(
        f"{PAGES}/admin/certificates/{certificate.serial}/revoke",
        data={"csrf_token": csrf_of(detail), "reason": "", "invalidity_date": ""},
    )
    assert missing.status_code == 400
    assert 'id="reason-error"' in missing.text
    held = web.post(
        f"{PAGES}/admin/certificates/{certificate.serial}/hold",
        data={"csrf_token": csrf_of(detail)},
    )
    assert held.status_code == 303
    released = web.post(
        f"{PAGES}/admin/certificates/{certificate.serial}/release",
        data={"csrf_token": csrf_of(detail)},
    )
    assert released.status_code == 303
    revoked = web.post(
        f"{PAGES}/admin/certificates/{certificate.serial}/revoke",
        data={"csrf_token": csrf_of(detail), "reason": "keyCompromise", "invalidity_date": ""},
    )
    assert revoked.status_code == 303
    with transaction(ca_runtime.session_factory) as session:
        row = session.get(IssuedCertificate, certificate.id)
        assert row is not None
        assert (row.status, row.revocation_reason) == ("revoked", "keyCompromise")
    shown = web.get(revoked.headers["location"])
    assert vi("The certificate was revoked.") in shown.text

    # Another ward's admin cannot even open it.
    sign_in(web, runtime, people.other_unit_admin)
    assert web.get(f"{PAGES}/admin/certificates/{certificate.serial}").status_code == 403


def test_server_generated_key_file_after_approval(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    _, request_id = _pending_renewal(web, runtime, ca_runtime, people, "server")
    with transaction(ca_runtime.session_factory) as session:
        certificate_requests.approve(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            request_id=request_id,
        )
    home = sign_in(web, runtime, people.official)
    assert f"{PAGES}/requests/{request_id}/collect" in home.text
    form = web.get(f"{PAGES}/requests/{request_id}/collect")
    short = web.post(
        f"{PAGES}/requests/{request_id}/collect",
        data={"csrf_token": csrf_of(form), "password": "ngắn", "password_confirm": "ngắn"},
    )
    assert short.status_code == 400 and 'id="password-error"' in short.text
    password = "mật khẩu tệp khóa 2026"
    collected = web.post(
        f"{PAGES}/requests/{request_id}/collect",
        data={"csrf_token": csrf_of(form), "password": password, "password_confirm": password},
    )
    assert collected.status_code == 200
    assert collected.headers["content-type"] == "application/x-pkcs12"
    key, certificate, _ = pkcs12.load_key_and_certificates(collected.content, password.encode())
    assert key is not None and certificate is not None
    again = web.post(
        f"{PAGES}/requests/{request_id}/collect",
        data={"csrf_token": csrf_of(form), "password": password, "password_confirm": password},
    )
    assert again.status_code == 409


def test_merger_preview_lists_the_certificates_of_the_old_unit(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    certificate = issue_for(ca_runtime, people.official)
    sign_in(web, runtime, people.province_admin)
    page = web.get(f"{PAGES}/admin/merger", params={"old_unit": "00070", "new_unit": "00004"})
    assert page.status_code == 200
    assert openssl_serial(certificate.serial) in page.text
    planned = web.post(
        f"{PAGES}/admin/merger/plan",
        data={"csrf_token": csrf_of(page), "old_unit": "00070", "new_unit": "00004"},
    )
    assert planned.status_code == 303
    assert (
        vi("The merger job was planned. Another administrator must approve it.")
        in web.get(planned.headers["location"]).text
    )
    sign_in(web, runtime, people.unit_admin)
    refused = web.get(f"{PAGES}/admin/merger", params={"old_unit": "00070", "new_unit": "00004"})
    assert openssl_serial(certificate.serial) not in refused.text  # Ba Đình is not theirs
