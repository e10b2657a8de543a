"""The certificate pages' place in the shared header (a way back to the other areas, signing
out), and the province's name (COMMUNE_SSO_ORGANISATION_NAME) in certificate subjects and
reminder e-mails, through the real app and a real CA hierarchy on both databases."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import reminders
from ca_admin.mail import Mailer
from ca_admin.models import Authority
from ca_admin.runtime import CaRuntime
from core.clock import FixedClock
from idp.models import Account
from idp.runtime import IdpRuntime
from tests.ca_admin.conftest import People
from tests.ca_admin.pages_flow import sign_in
from tests.ca_admin.test_pages import issue_for
from tests.ca_admin.test_reminders import messages
from tests.idp.test_home_and_header import header_areas

PROVINCE = "Sở Khoa học và Công nghệ tỉnh Lào Cai"
PROVINCE_EN = "Lao Cai Department of Science and Technology"


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    runtime: CaRuntime = app.state.ca
    return runtime


@pytest.mark.parametrize(
    ("who", "areas"),
    [
        ("official", ["/account", "/ca/pages/"]),
        ("unit_admin", ["/account", "/ca/pages/", "/admin"]),
    ],
)
def test_certificate_pages_lead_back_to_the_other_areas_and_sign_out(
    web: TestClient,
    runtime: IdpRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
    who: str,
    areas: list[str],
) -> None:
    account: Account = getattr(people, who)
    page = sign_in(web, runtime, account)
    assert page.status_code == 200
    assert header_areas(page) == areas
    assert 'href="/ca/pages/" aria-current="true"' in page.text
    assert account.full_name in page.text
    # The CA pages' own session ends first (their POST form), then the SSO session.
    assert '<form class="site-nav__sign-out-form" action="/ca/pages/logout" method="post">' in (
        page.text
    )
    assert "Đăng xuất" in page.text
    assert 'href="/oauth2/logout"' not in page.text


def _device_certificate(ca_runtime: CaRuntime, account: Account) -> x509.Certificate:
    """A device certificate: its profile needs only the unit, so an official without an agency
    can have one."""
    issued = issue_for(ca_runtime, account, profile="device", device_name="may-tinh-01.laocai")
    return x509.load_der_x509_certificate(issued.der)


def organisations(certificate: x509.Certificate) -> list[str]:
    return [
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    ]


def test_the_province_is_the_organisation_of_a_subject_without_agency(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], people: People
) -> None:
    # Unset (the default): no O= for an official without an agency, as before.
    assert organisations(_device_certificate(ca_runtime, people.no_citizen_id)) == []
    named = dataclasses.replace(ca_runtime, organisation_name=PROVINCE)
    assert organisations(_device_certificate(named, people.no_citizen_id)) == [PROVINCE]
    # An official's own agency still comes first.
    assert organisations(_device_certificate(named, people.official)) == [
        "Ủy ban nhân dân phường Hoàn Kiếm"
    ]


def test_reminders_are_signed_with_the_province_name_in_each_language(
    ca_runtime: CaRuntime,
    clock: FixedClock,
    hierarchy: tuple[Authority, Authority],
    people: People,
) -> None:
    assert ca_runtime.mailer is not None
    signed = dataclasses.replace(
        ca_runtime.mailer.settings, organisation_names={"vi": PROVINCE, "en": PROVINCE_EN}
    )
    ca_runtime.mailer = Mailer(signed)
    issue_for(ca_runtime, people.official, days=20)
    assert reminders.send_due(ca_runtime) == {"sent": 1}
    (message,) = messages(ca_runtime)
    body = message.get_content()
    vietnamese, english = body.split("-- English --")
    assert PROVINCE in vietnamese and PROVINCE_EN not in vietnamese
    assert PROVINCE_EN in english and PROVINCE not in english
