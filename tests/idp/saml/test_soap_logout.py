"""Back-channel SAML single logout (SAML Bindings §3.2, SOAP): an SP that registered a SOAP
SingleLogoutService is told through the shared delivery outbox, also when no browser is there
("sign out everywhere"): a signed LogoutRequest in a SOAP envelope that pysaml2 reads and
verifies against our metadata, with the NameID and SessionIndex it was given."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from saml2 import BINDING_HTTP_POST
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from core.db import transaction
from idp.logout import backchannel, sign_out
from idp.models import Account, LogoutDelivery
from idp.runtime import IdpRuntime
from tests.idp.live_server import bind_loopback, issuer_for, serve
from tests.idp.saml.conftest import IDP_ENTITY_ID, register_sp
from tests.idp.saml.pysaml2_sp import (
    ServiceProvider,
    send_to_idp,
    sign_in,
    sp_config,
    sp_metadata_xml,
)


class SoapReceiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []

        async def record(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            return Response("<ok/>", media_type="text/xml")

        self.app = Starlette(routes=[Route("/saml/soap", record, methods=["POST"])])


@pytest.fixture
def soap_url() -> Iterator[tuple[str, SoapReceiver]]:
    receiver = SoapReceiver()
    sock = bind_loopback()
    try:
        with serve(receiver.app, sock):
            yield f"{issuer_for(sock)}/saml/soap", receiver
    finally:
        sock.close()


@pytest.fixture
def soap_sp(
    runtime: IdpRuntime,
    web: TestClient,
    sp_keys: tuple[Path, Path],
    official_at_work: Any,
    soap_url: tuple[str, SoapReceiver],
) -> ServiceProvider:
    options = {"key_path": sp_keys[0], "cert_path": sp_keys[1], "soap_slo_url": soap_url[0]}
    register_sp(runtime, sp_metadata_xml(sp_config(idp_metadata=None, **options)))
    config = sp_config(idp_metadata=web.get("/saml/metadata").text, **options)
    return ServiceProvider(config, IDP_ENTITY_ID)


def deliver(runtime: IdpRuntime, receiver: SoapReceiver) -> list[tuple[dict[str, str], bytes]]:
    """A delivery round, then what the SP received: the app's own worker (started by the test
    client's lifespan) may have sent the notice first, which is as good."""

    async def round_() -> None:
        async with httpx.AsyncClient() as http:
            await backchannel.deliver_due(runtime, http)

    asyncio.run(round_())
    deadline = time.monotonic() + 10
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    return receiver.received


def statuses(runtime: IdpRuntime) -> list[tuple[str, str, str]]:
    """The delivery log once nothing is pending (the worker records just after sending)."""
    deadline = time.monotonic() + 10
    while True:
        with transaction(runtime.session_factory) as session:
            rows = [(r.protocol, r.uri, r.status) for r in session.scalars(select(LogoutDelivery))]
        if all(status != "pending" for *_, status in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_sign_out_everywhere_reaches_the_sp_by_soap(
    web: TestClient,
    runtime: IdpRuntime,
    soap_sp: ServiceProvider,
    soap_url: tuple[str, SoapReceiver],
) -> None:
    request_id, info = soap_sp.authn_request()
    response = soap_sp.parse_response(sign_in(web, send_to_idp(web, info)), request_id)
    with transaction(runtime.session_factory) as session:
        account = session.scalar(select(Account).where(Account.username == "nguyen.van.an"))
        assert account is not None
        sign_out.sign_out_everywhere(
            session=session, clock=runtime.clock, actor="admin:test", account=account
        )
    ((headers, body),) = deliver(runtime, soap_url[1])
    assert headers["content-type"].startswith("text/xml")
    assert headers["soapaction"] == "http://www.oasis-open.org/committees/security"
    # pysaml2 (xmlsec1) verifies our signature with the certificate in our metadata. Its own
    # SOAP reader is not used: it re-serialises the message with ElementTree's ns0/ns1
    # prefixes, which changes what exclusive canonicalisation signs (any signer's prefixes
    # but its own fail there), so the LogoutRequest is taken out of the envelope as it is.
    inner = etree.tostring(etree.fromstring(body)[0][0])
    logout = soap_sp.client.parse_logout_request(
        base64.b64encode(inner).decode(), BINDING_HTTP_POST
    )
    assert logout.message.name_id.text == response.name_id.text
    assert (
        logout.message.session_index[0].text == response.assertion.authn_statement[0].session_index
    )
    assert statuses(runtime) == [("saml", soap_url[0], "delivered")]


def test_no_logout_iframe_for_an_sp_told_by_soap(
    web: TestClient,
    soap_sp: ServiceProvider,
    runtime: IdpRuntime,
    soap_url: tuple[str, SoapReceiver],
) -> None:
    request_id, info = soap_sp.authn_request()
    soap_sp.parse_response(sign_in(web, send_to_idp(web, info)), request_id)
    page = web.get("/cas/logout")
    assert "frontchannel-logout" not in page.text
    assert len(deliver(runtime, soap_url[1])) == 1
