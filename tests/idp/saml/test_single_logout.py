"""SAML Single Logout (Profiles §4.4) with pysaml2: an SP's LogoutRequest (Redirect and POST)
ends the session and is answered with a signed LogoutResponse; that logout reaches the CAS
services of the session through the shared delivery log; a logout elsewhere (``/cas/logout``)
sends the SP a signed LogoutRequest that pysaml2 accepts."""

from __future__ import annotations

import base64
import html
import re
import zlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.samlp import STATUS_SUCCESS
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from sqlalchemy import select
from starlette.testclient import TestClient

from core.db import transaction
from idp.cas import services as cas_services
from idp.models import LogoutDelivery
from idp.runtime import IdpRuntime
from tests.conftest import ISSUER
from tests.idp.cas.cas_flow import is_login_form, ticket_of
from tests.idp.saml.conftest import IDP_ENTITY_ID
from tests.idp.saml.pysaml2_sp import (
    SLO_URL,
    ServiceProvider,
    follow_to_sp,
    send_to_idp,
    sign_in,
)

CAS_SERVICE = "https://motcua.laocai.gov.vn/cas"
IFRAME = re.compile(r'<iframe class="frontchannel-logout" src="([^"]*)"')


def signed_in(web: TestClient, sp: ServiceProvider) -> Any:
    request_id, info = sp.authn_request()
    return sp.parse_response(sign_in(web, send_to_idp(web, info)), request_id)


def sp_logout(sp: ServiceProvider, name_id: Any, binding: str) -> dict[str, Any]:
    responses = sp.client.do_logout(
        name_id,
        [IDP_ENTITY_ID],
        reason="",
        expire=None,
        sign=True,
        expected_binding=binding,
        sign_alg=SIG_RSA_SHA256,
        digest_alg=DIGEST_SHA256,
    )
    used_binding, info = responses[IDP_ENTITY_ID]
    assert used_binding == binding
    return info


def session_is_over(web: TestClient, sp: ServiceProvider) -> bool:
    _, info = sp.authn_request()
    return is_login_form(follow_to_sp(web, send_to_idp(web, info)))


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_sp_initiated_logout(web: TestClient, sp: ServiceProvider, binding: str) -> None:
    response = signed_in(web, sp)
    answer = send_to_idp(web, sp_logout(sp, response.name_id, binding))
    # No other app in the session: straight back to the SP with the LogoutResponse.
    assert answer.status_code == 303, answer.text[:500]
    location = answer.headers["location"]
    assert location.startswith(SLO_URL + "?")
    saml_response = parse_qs(urlsplit(location).query)["SAMLResponse"][0]
    logout = sp.client.parse_logout_request_response(saml_response, BINDING_HTTP_REDIRECT)
    assert logout.response.status.status_code.value == STATUS_SUCCESS
    assert session_is_over(web, sp)


def test_unsigned_logout_request_from_an_sp_that_signs(
    web: TestClient, sp: ServiceProvider
) -> None:
    response = signed_in(web, sp)
    responses = sp.client.do_logout(
        response.name_id,
        [IDP_ENTITY_ID],
        "",
        None,
        sign=False,
        expected_binding=BINDING_HTTP_REDIRECT,
    )
    answer = send_to_idp(web, responses[IDP_ENTITY_ID][1])
    assert answer.status_code == 400
    assert not session_is_over(web, sp)


@pytest.fixture
def cas_service(runtime: IdpRuntime) -> str:
    with transaction(runtime.session_factory) as session:
        cas_services.register(
            session=session,
            clock=runtime.clock,
            actor="test",
            service_id="mot-cua",
            name="Một cửa điện tử",
            url=CAS_SERVICE,
        )
    return CAS_SERVICE


def test_saml_logout_reaches_the_cas_services_of_the_session(
    web: TestClient, sp: ServiceProvider, cas_service: str, runtime: IdpRuntime
) -> None:
    response = signed_in(web, sp)
    to_service = web.get("/cas/login", params={"service": cas_service})
    ticket = ticket_of(to_service.headers["location"])
    validated = web.get("/cas/serviceValidate", params={"service": cas_service, "ticket": ticket})
    assert "authenticationSuccess" in validated.text
    send_to_idp(web, sp_logout(sp, response.name_id, BINDING_HTTP_REDIRECT))
    with transaction(runtime.session_factory) as session:
        deliveries = session.scalars(select(LogoutDelivery)).all()
        assert [(d.protocol, d.client_id, d.uri) for d in deliveries] == [
            ("cas", "cas:mot-cua", cas_service)
        ]


def test_logout_elsewhere_sends_the_sp_a_logout_request(
    web: TestClient, sp: ServiceProvider
) -> None:
    response = signed_in(web, sp)
    page = web.get("/cas/logout")
    assert page.status_code == 200
    frames = [html.unescape(src) for src in IFRAME.findall(page.text)]
    assert len(frames) == 1 and frames[0].startswith(SLO_URL + "?")
    assert "https://vanban.laocai.gov.vn" in page.headers["content-security-policy"]
    query = {name: values[0] for name, values in parse_qs(urlsplit(frames[0]).query).items()}
    assert query["SigAlg"] == SIG_RSA_SHA256
    # pysaml2 checks the query signature against our metadata and logs its user out.
    reply = sp.client.handle_logout_request(
        query["SAMLRequest"],
        response.name_id,
        BINDING_HTTP_REDIRECT,
        sign=True,
        sign_alg=SIG_RSA_SHA256,
        sigalg=query["SigAlg"],
        signature=query["Signature"],
    )
    location = dict(reply["headers"])["Location"]
    assert location.startswith(f"{ISSUER}/saml/slo?")
    encoded = parse_qs(urlsplit(location).query)["SAMLResponse"][0]
    answer = zlib.decompress(base64.b64decode(encoded), -zlib.MAX_WBITS).decode()
    assert STATUS_SUCCESS in answer  # pysaml2 found its user and logged it out
    # The SP's answer, loaded in its iframe, lands on our SLO endpoint without harm, and may
    # be framed by our own logged-out page (whose frame-src allows our origin for it).
    answered = web.get(location)
    assert answered.status_code == 200
    assert "frame-ancestors 'self'" in answered.headers["content-security-policy"]
    assert (
        "frame-src 'self' https://vanban.laocai.gov.vn" in page.headers["content-security-policy"]
    )
    assert session_is_over(web, sp)
