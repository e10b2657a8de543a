"""SP-initiated Web Browser SSO (SAML Profiles §4.1) with pysaml2 as the service provider:
both request bindings, the signed Response and Assertion verified by pysaml2, attributes in
Vietnamese, NameID formats, ForceAuthn and IsPassive, the audit trail."""

from __future__ import annotations

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from starlette.testclient import TestClient

from tests.idp.saml.pysaml2_sp import ServiceProvider, send_to_idp, sign_in


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_sp_initiated_sign_in(web: TestClient, sp: ServiceProvider, binding: str) -> None:
    request_id, info = sp.authn_request(binding=binding)
    form = sign_in(web, send_to_idp(web, info))
    assert form.action == "https://vanban.laocai.gov.vn/saml/acs"
    assert form.fields["RelayState"] == "/van-ban/den"
    response = sp.parse_response(form, request_id)
    assert response.in_response_to == request_id
    ava = response.ava
    assert ava["name"] == ["Nguyễn Văn An"]
    assert ava["email"] == ["an.nv@laocai.gov.vn"]
    assert ava["unit_name"] == ["Phường Cam Đường"]
    assert ava["position"] == ["Phó Chủ tịch"]
