"""The approval card shows the whole request (issue 18, as EJBCA's RA does): who asked (username
and name, never the IdP's opaque sub), the official's verified data (citizen ID, unit, agency,
position), the subject DN and extensions the certificate will carry, its validity and the key."""

from __future__ import annotations

import html

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin.models import Authority
from ca_admin.runtime import CaRuntime
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import People, submit_for
from tests.ca_admin.pages_flow import sign_in
from tests.ca_admin.test_api import vi
from tests.ca_admin.test_pages import PAGES


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    runtime: CaRuntime = app.state.ca
    return runtime


def test_the_approver_sees_the_whole_request(
    web: TestClient,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    request_id = submit_for(ca_runtime, people.official)
    page = sign_in(web, runtime, people.unit_admin, f"{PAGES}/admin/requests")
    assert page.status_code == 200
    card = html.unescape(page.text.split(f'id="request-{request_id}"', 1)[1].split("</li>", 1)[0])

    assert "nguyen.van.an" in card and "Nguyễn Văn An" in card
    assert people.official.subject not in card  # no opaque hash
    requester = card.split(f'id="request-{request_id}-requester">', 1)[1].split("</dd>", 1)[0]
    assert "nguyen.van.an" in requester and "Nguyễn Văn An" in requester
    assert "001090012345" in card  # citizen ID
    assert "Phường Hoàn Kiếm" in card and "00070" in card
    assert "Ủy ban nhân dân phường Hoàn Kiếm" in card and "Chuyên viên" in card
    subject = card.split(f'id="request-{request_id}-subject">', 1)[1].split("</code>", 1)[0]
    assert "CN=Nguyễn Văn An" in subject and "title=Chuyên viên" in subject
    assert "UID=CCCD:001090012345" in subject and "Evil Corp" not in subject  # not the CSR's
    assert "nonRepudiation" in card and "documentSigning" in card and "emailProtection" in card
    assert "cRLDistributionPoints" in card and "/ca/crl/" in card
    assert vi("%(days)s days") % {"days": 730} in card  # the profile's default validity
    assert "EC secp256r1 (256 bits)" in card
    for label in ("Requested by", "Citizen ID", "The certificate that will be issued"):
        assert vi(label) in card, label
