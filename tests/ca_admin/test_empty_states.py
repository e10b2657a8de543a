"""The CA pages say what to do next when there is nothing to show (issue 19): an official
without a certificate, an admin whose units have none yet."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import certificate_requests
from ca_admin.certificate_requests import Submission
from ca_admin.models import Authority
from ca_admin.runtime import CaRuntime
from core.db import transaction
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import People, make_csr
from tests.ca_admin.pages_flow import sign_in
from tests.ca_admin.test_api import vi

PAGES = "/ca/pages"
FIRST_CERTIFICATE = (
    "Request your first signing certificate here. Once your unit's administrator approves it, "
    "it appears on this page, and from then on you renew it yourself here."
)
REQUEST_LISTED = "Your request is listed below: once it is approved, the certificate appears here."


def test_an_official_without_a_certificate_learns_how_to_get_one(
    web: TestClient,
    runtime: IdpRuntime,
    app: Starlette,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    page = sign_in(web, runtime, people.official)
    assert page.status_code == 200, page.text
    assert 'id="no-certificates"' in page.text
    assert vi("You have no certificate yet.") in page.text
    assert vi(FIRST_CERTIFICATE) in page.text

    ca_runtime: CaRuntime = app.state.ca
    with transaction(ca_runtime.session_factory) as session:
        certificate_requests.submit(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            submission=Submission(
                subject_ref=people.official.subject,
                profile="official-document-signing",
                csr=make_csr()[0],
            ),
        )
    waiting = web.get(f"{PAGES}/")
    assert vi(REQUEST_LISTED) in waiting.text
    assert vi(FIRST_CERTIFICATE) not in waiting.text

    english = web.get(f"{PAGES}/", params={"lang": "en"})
    assert REQUEST_LISTED in english.text


def test_an_admin_with_no_certificate_yet_is_sent_to_the_queue(
    web: TestClient, runtime: IdpRuntime, hierarchy: tuple[Authority, Authority], people: People
) -> None:
    page = sign_in(web, runtime, people.unit_admin, f"{PAGES}/admin/certificates")
    assert page.status_code == 200, page.text
    assert 'id="no-certificates"' in page.text
    assert vi("No certificate has been issued yet.") in page.text
    assert "commune-sso ca issue USERNAME --csr FILE --as ADMIN" in page.text
    assert f'href="{PAGES}/admin/requests"' in page.text
    searched = web.get(f"{PAGES}/admin/certificates", params={"name": "không ai"})
    assert 'id="no-certificates"' not in searched.text
    assert vi("No certificate matches.") in searched.text
