"""The CAS demo app's single-logout receiver (examples/shared_app/cas_app.py): it reads the
provider's own ``logoutRequest`` and refuses anything else — DTDs and entities included, since
whoever reaches the service URL can POST to it. (Sign-in and single logout end to end are in
tests/browser/test_cas_app_browser.py.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from examples.shared_app.cas_app import (
    CasSettings,
    InvalidLogoutRequest,
    create_cas_app,
    session_index_of,
)
from idp.cas.single_logout import logout_request

TICKET = "ST-" + "a" * 43
SETTINGS = CasSettings(
    cas_url="http://127.0.0.1:9/cas", service_url="http://127.0.0.1:8002/cas/callback"
)


def test_reads_the_ticket_of_the_providers_logout_request() -> None:
    request = logout_request(session_index=TICKET, issued_at=datetime(2026, 1, 2, tzinfo=UTC))
    assert session_index_of(request) == TICKET


@pytest.mark.parametrize(
    "body",
    [
        "not xml",
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY t "ST-x">]>'
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">'
        "<samlp:SessionIndex>&t;</samlp:SessionIndex></samlp:LogoutRequest>",
        '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"<samlp:SessionIndex>{TICKET}</samlp:SessionIndex></samlp:AuthnRequest>",
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>',
        "<LogoutRequest><SessionIndex>ST-x</SessionIndex></LogoutRequest>",
        "<x>" + "a" * 9000 + "</x>",
    ],
    ids=["not-xml", "dtd-entity", "other-message", "no-index", "no-namespace", "too-long"],
)
def test_refuses_what_is_no_logout_request(body: str) -> None:
    with pytest.raises(InvalidLogoutRequest):
        session_index_of(body)


def test_the_service_url_answers_400_to_a_bad_logout_request() -> None:
    app = create_cas_app(SETTINGS)
    with TestClient(app) as client:
        assert client.post("/cas/callback", data={}).status_code == 400
        refused = client.post("/cas/callback", data={"logoutRequest": "<!DOCTYPE x><x/>"})
        assert refused.status_code == 400
        request = logout_request(session_index=TICKET, issued_at=datetime.now(UTC))
        accepted = client.post("/cas/callback", data={"logoutRequest": request})
        assert accepted.status_code == 200
        # Back from /cas/logout (no ticket): the signed-out page.
        back = client.get("/cas/callback", follow_redirects=False)
        assert back.status_code == 303 and back.headers["location"] == "/logged-out"


def test_the_cas_prefix_keeps_its_slash_for_python_cas() -> None:
    assert SETTINGS.cas_url == "http://127.0.0.1:9/cas/"
    assert SETTINGS.port == 8002 and SETTINGS.base_url == "http://127.0.0.1:8002"
