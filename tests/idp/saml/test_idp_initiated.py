"""IdP-initiated sign-in (SAML Profiles §4.1.5): a link on a portal page sends an unsolicited,
signed Response to the SP's registered default ACS; pysaml2, set to accept unsolicited
responses, takes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from saml2.response import UnsolicitedResponse
from starlette.testclient import TestClient

from tests.idp.cas.cas_flow import is_login_form, submit_password
from tests.idp.saml.conftest import IDP_ENTITY_ID
from tests.idp.saml.pysaml2_sp import (
    ACS_URL,
    SP_ENTITY_ID,
    ServiceProvider,
    follow_to_sp,
    posted_form,
    sp_config,
)


def test_idp_initiated_sign_in(
    web: TestClient, sp: ServiceProvider, sp_keys: tuple[Path, Path]
) -> None:
    config = sp_config(
        key_path=sp_keys[0],
        cert_path=sp_keys[1],
        idp_metadata=web.get("/saml/metadata").text,
        allow_unsolicited=True,
    )
    accepting = ServiceProvider(config, IDP_ENTITY_ID)
    page = web.get(
        "/saml/sso/initiate", params={"providerId": SP_ENTITY_ID, "RelayState": "/van-ban"}
    )
    assert is_login_form(page)
    form = posted_form(follow_to_sp(web, submit_password(web, page)))
    assert form.action == ACS_URL
    assert form.fields["RelayState"] == "/van-ban"
    response: Any = accepting.client.parse_authn_request_response(
        form.fields["SAMLResponse"], "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    )
    assert response.ava["name"] == ["Nguyễn Văn An"]
    assert response.in_response_to is None
    # The SP that expects only answers to its own requests refuses it, as it should.
    with pytest.raises(UnsolicitedResponse):
        sp.client.parse_authn_request_response(
            form.fields["SAMLResponse"], "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
        )


def test_idp_initiated_for_an_unknown_sp(web: TestClient, sp: ServiceProvider) -> None:
    page = web.get("/saml/sso/initiate", params={"providerId": "https://la.example.vn/saml"})
    assert page.status_code == 400
    assert "SAMLResponse" not in page.text
