"""SP-initiated Web Browser SSO (SAML Profiles §4.1) with pysaml2 as the service provider:
both request bindings, the signed Response and Assertion verified by pysaml2, attributes in
Vietnamese, NameID formats, ForceAuthn and IsPassive, AuthnContextClassRef, the audit trail."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.response import StatusNoPassive
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT
from starlette.testclient import TestClient

from core import audit
from core.db import transaction
from idp.runtime import IdpRuntime
from idp.saml.vocabulary import PASSWORD_PROTECTED_TRANSPORT, TIME_SYNC_TOKEN
from tests.idp.cas.cas_flow import is_login_form, submit_password
from tests.idp.saml.conftest import enrol_totp, submit_code
from tests.idp.saml.pysaml2_sp import (
    ACS_URL,
    PostedForm,
    ServiceProvider,
    follow_to_sp,
    posted_form,
    send_to_idp,
    sign_in,
)

SAML = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}


def response_xml(form: PostedForm) -> etree._Element:
    return etree.fromstring(base64.b64decode(form.fields["SAMLResponse"]))


def sign_in_once(web: TestClient, sp: ServiceProvider, **options: Any) -> Any:
    request_id, info = sp.authn_request(**options)
    return sp.parse_response(sign_in(web, send_to_idp(web, info)), request_id)


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_sp_initiated_sign_in(web: TestClient, sp: ServiceProvider, binding: str) -> None:
    request_id, info = sp.authn_request(binding=binding)
    form = sign_in(web, send_to_idp(web, info))
    assert form.action == ACS_URL
    assert form.fields["RelayState"] == "/van-ban/den"
    # pysaml2 (xmlsec1) verified the Response's and the Assertion's signatures: its SP
    # configuration wants both signed and refuses unsigned ones.
    response = sp.parse_response(form, request_id)
    assert response.in_response_to == request_id
    assert response.response.signature is not None
    assert response.assertion.signature is not None
    assert response.name_id.format == NAMEID_FORMAT_PERSISTENT
    assert response.ava == {
        "name": ["Nguyễn Văn An"],
        "email": ["an.nv@laocai.gov.vn"],
        "unit_code": ["02647"],
        "unit_name": ["Phường Cam Đường"],
        "province_code": ["15"],
        "province_name": ["Tỉnh Lào Cai"],
        "agency": ["UBND phường Cam Đường"],
        "position": ["Phó Chủ tịch"],
    }
    assert response.authn_info()[0][0] == PASSWORD_PROTECTED_TRANSPORT


def test_signatures_are_rsa_sha256_with_exclusive_c14n(
    web: TestClient, sp: ServiceProvider
) -> None:
    _, info = sp.authn_request()
    root = response_xml(sign_in(web, send_to_idp(web, info)))
    for signature in root.iter("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        assert signature.find("ds:SignedInfo/ds:SignatureMethod", SAML).get("Algorithm") == (
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
        )
        assert signature.find("ds:SignedInfo/ds:CanonicalizationMethod", SAML).get("Algorithm") == (
            "http://www.w3.org/2001/10/xml-exc-c14n#"
        )
    signed_parents = [
        s.getparent().tag for s in root.iter("{http://www.w3.org/2000/09/xmldsig#}Signature")
    ]
    assert signed_parents == [f"{{{SAML['samlp']}}}Response", f"{{{SAML['saml']}}}Assertion"]
    assertion = root.find("saml:Assertion", SAML)
    confirmation = assertion.find(
        "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", SAML
    )
    assert confirmation.get("Recipient") == ACS_URL
    assert assertion.find("saml:Conditions/saml:AudienceRestriction/saml:Audience", SAML).text == (
        "https://vanban.laocai.gov.vn/saml/metadata"
    )


def test_a_live_session_answers_without_the_form(web: TestClient, sp: ServiceProvider) -> None:
    first = sign_in_once(web, sp)
    request_id, info = sp.authn_request()
    second = sp.parse_response(posted_form(follow_to_sp(web, send_to_idp(web, info))), request_id)
    # Persistent: the same pairwise identifier every time.
    assert second.name_id.text == first.name_id.text
    assert len(first.name_id.text) >= 32


def test_transient_and_email_name_ids(web: TestClient, sp: ServiceProvider) -> None:
    first = sign_in_once(web, sp, nameid_format=NAMEID_FORMAT_TRANSIENT)
    request_id, info = sp.authn_request(nameid_format=NAMEID_FORMAT_TRANSIENT)
    second = sp.parse_response(posted_form(follow_to_sp(web, send_to_idp(web, info))), request_id)
    assert first.name_id.format == NAMEID_FORMAT_TRANSIENT
    assert first.name_id.text != second.name_id.text
    request_id, info = sp.authn_request(nameid_format=NAMEID_FORMAT_EMAILADDRESS)
    email = sp.parse_response(posted_form(follow_to_sp(web, send_to_idp(web, info))), request_id)
    assert email.name_id.text == "an.nv@laocai.gov.vn"


def test_force_authn_asks_for_the_password_again(web: TestClient, sp: ServiceProvider) -> None:
    sign_in_once(web, sp)
    request_id, info = sp.authn_request(force_authn="true")
    page = follow_to_sp(web, send_to_idp(web, info))
    assert is_login_form(page)
    form = posted_form(follow_to_sp(web, submit_password(web, page)))
    assert sp.parse_response(form, request_id).in_response_to == request_id


def test_is_passive_without_a_session_answers_no_passive(
    web: TestClient, sp: ServiceProvider
) -> None:
    request_id, info = sp.authn_request(is_passive="true")
    form = posted_form(follow_to_sp(web, send_to_idp(web, info)))
    with pytest.raises(StatusNoPassive):
        sp.parse_response(form, request_id)
    status = response_xml(form).find("samlp:Status/samlp:StatusCode", SAML)
    assert status.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Responder"


def test_is_passive_with_a_session_signs_in_without_the_form(
    web: TestClient, sp: ServiceProvider
) -> None:
    sign_in_once(web, sp)
    request_id, info = sp.authn_request(is_passive="true", binding=BINDING_HTTP_POST)
    form = posted_form(follow_to_sp(web, send_to_idp(web, info)))
    assert sp.parse_response(form, request_id).in_response_to == request_id


def test_totp_sign_in_is_a_time_sync_token(
    web: TestClient, sp: ServiceProvider, runtime: IdpRuntime, official_at_work: Any
) -> None:
    secret = enrol_totp(runtime, official_at_work)
    request_id, info = sp.authn_request()
    page = follow_to_sp(web, send_to_idp(web, info))
    otp_page = follow_to_sp(web, submit_password(web, page))
    answer = submit_code(web, runtime, otp_page, secret)
    response = sp.parse_response(posted_form(follow_to_sp(web, answer)), request_id)
    assert response.authn_info()[0][0] == TIME_SYNC_TOKEN


def test_sign_ins_are_audited(web: TestClient, sp: ServiceProvider, runtime: IdpRuntime) -> None:
    sign_in_once(web, sp)
    with transaction(runtime.session_factory) as session:
        entries = [audit.entry_as_dict(e) for e in audit.tail(session, action_prefix="saml.")]
    assert [(e["action"], e["actor"], e["target"]) for e in entries] == [
        ("saml.sp_registered", "test", "saml_sp:https://vanban.laocai.gov.vn/saml/metadata"),
        (
            "saml.assertion_issued",
            "user:nguyen.van.an",
            "saml_sp:https://vanban.laocai.gov.vn/saml/metadata",
        ),
    ]
    assert entries[1]["details"]["acs_url"] == ACS_URL
