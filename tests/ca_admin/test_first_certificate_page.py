"""``/ca/pages/request`` (issue 19): an official with no valid certificate requests one on
their certificate pages, like a renewal without a certificate to renew; the request waits for
their unit's administrator. One open request at a time; a valid certificate is renewed
instead; the sign-in must be fresh."""

from __future__ import annotations

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import certificate_requests
from ca_admin.models import Authority, CertificateRequest
from ca_admin.runtime import CaRuntime
from core.audit import AuditEntry
from core.clock import FixedClock
from core.db import transaction
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import People, make_csr
from tests.ca_admin.pages_flow import FORM_TOKEN, csrf_of, sign_in
from tests.ca_admin.test_api import vi
from tests.ca_admin.test_pages import issue_for, request_count

PAGES = "/ca/pages"
REQUEST_BUTTON = 'id="request-certificate"'


def send_csr(web: TestClient) -> tuple[int, str]:
    """The request page's CSR form, filled and sent; the status and the redirect target."""
    page = web.get(f"{PAGES}/request")
    assert page.status_code == 200, page.text
    tokens = FORM_TOKEN.findall(page.text)
    assert len(tokens) == 3, page.text  # browser, CSR upload, server-made key
    sent = web.post(
        f"{PAGES}/request",
        data={
            "csrf_token": csrf_of(page),
            "method": "csr",
            "csr_text": make_csr()[0].decode(),
            "form_token": tokens[1],
        },
    )
    return sent.status_code, sent.headers.get("location", "")


def test_an_official_requests_a_first_certificate_for_their_admin_to_approve(
    web: TestClient,
    runtime: IdpRuntime,
    app: Starlette,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    ca_runtime: CaRuntime = app.state.ca
    home = sign_in(web, runtime, people.official)
    assert REQUEST_BUTTON in home.text and f'href="{PAGES}/request"' in home.text
    form = web.get(f"{PAGES}/request")
    assert vi("Request a certificate") in form.text
    assert "Nguyễn Văn An" in form.text  # the holder, and the name in the browser's CSR

    status, location = send_csr(web)
    assert (status, location) == (303, f"{PAGES}/?done=request")
    with transaction(ca_runtime.session_factory) as session:
        request = session.scalars(select(CertificateRequest)).one()
        assert request.subject_ref == people.official.subject
        assert request.requested_by == people.official.subject
        assert request.renewal_of_id is None and request.status == "pending"
        audited = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "ca.request.submitted")
        ).one()
        assert audited.actor == people.official.subject
    listed = web.get(location)
    assert (
        vi(
            "Your certificate request was sent. It is waiting for approval by your unit's "
            "administrator."
        )
        in listed.text
    )
    assert vi("Waiting for approval") in listed.text
    assert REQUEST_BUTTON not in listed.text

    # One open request at a time: the page says where it is, a second one is refused.
    again = web.get(f"{PAGES}/request")
    assert 'id="request-closed"' in again.text and 'name="form_token"' not in again.text
    refused = web.post(
        f"{PAGES}/request",
        data={"csrf_token": csrf_of(again), "method": "csr", "csr_text": make_csr()[0].decode()},
    )
    assert refused.status_code == 409
    assert request_count(ca_runtime) == 1

    # The unit's administrator approves it (nobody approves their own request).
    with transaction(ca_runtime.session_factory) as session:
        approved = certificate_requests.approve(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            request_id=request.request_id,
        )
        assert approved.status == "issued"
    mine = web.get(f"{PAGES}/")
    assert 'class="cert"' in mine.text and REQUEST_BUTTON not in mine.text


def test_a_valid_certificate_is_renewed_not_requested_again(
    web: TestClient,
    runtime: IdpRuntime,
    app: Starlette,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    ca_runtime: CaRuntime = app.state.ca
    issue_for(ca_runtime, people.official)
    home = sign_in(web, runtime, people.official)
    assert REQUEST_BUTTON not in home.text
    page = web.get(f"{PAGES}/request")
    assert 'id="request-closed"' in page.text
    assert (
        vi(
            "You have a valid signing certificate: renew it on the page of your certificates "
            "when its renewal opens."
        )
        in page.text
    )
    refused = web.post(
        f"{PAGES}/request",
        data={"csrf_token": csrf_of(page), "method": "server", "form_token": "b" * 32},
    )
    assert refused.status_code == 409
    assert request_count(ca_runtime) == 0


def test_a_request_needs_a_fresh_sign_in(
    web: TestClient,
    runtime: IdpRuntime,
    clock: FixedClock,
    app: Starlette,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    ca_runtime: CaRuntime = app.state.ca
    sign_in(web, runtime, people.official)
    clock.advance(minutes=6)
    page = web.get(f"{PAGES}/request")
    assert 'id="reauth-link"' in page.text and 'name="form_token"' not in page.text
    late = web.post(
        f"{PAGES}/request",
        data={"csrf_token": csrf_of(page), "method": "server", "form_token": "c" * 32},
    )
    assert late.status_code == 401
    assert request_count(ca_runtime) == 0
