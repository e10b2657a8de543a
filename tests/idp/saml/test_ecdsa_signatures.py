"""ECDSA where the SP declares it (SAML V2.0 Metadata Profile for Algorithm Support): an SP
whose metadata lists ECDSA-SHA256 and not RSA-SHA256 among its alg:SigningMethods gets its
Response, Assertion and LogoutRequests signed with our P-256 key, whose certificate our
metadata publishes; pysaml2 (xmlsec1) verifies them. An SP that lists both, or none, stays on
RSA-SHA256."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree
from saml2 import BINDING_HTTP_REDIRECT
from starlette.testclient import TestClient

from core.db import transaction
from idp.runtime import IdpRuntime
from idp.saml import service_providers
from idp.saml.vocabulary import ALG_NS, ECDSA_SHA256, RSA_SHA256
from idp.saml.xml_signatures import key_alg_for
from tests.idp.saml.conftest import ALL_ATTRIBUTES, IDP_ENTITY_ID, register_sp
from tests.idp.saml.pysaml2_sp import (
    SP_ENTITY_ID,
    ServiceProvider,
    send_to_idp,
    sign_in,
    sp_config,
    sp_metadata_xml,
)
from tests.idp.saml.test_single_logout import IFRAME

DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
SIGNING_METHOD = f"{{{ALG_NS}}}SigningMethod"


def declaring_only(metadata: bytes, algorithms: set[str]) -> bytes:
    """pysaml2's metadata lists every algorithm its xmlsec1 supports: keep ``algorithms``."""
    root = etree.fromstring(metadata)
    methods = list(root.iter(SIGNING_METHOD))
    assert {m.get("Algorithm") for m in methods} >= {RSA_SHA256, ECDSA_SHA256}
    for method in methods:
        if method.get("Algorithm") not in algorithms:
            method.getparent().remove(method)
    return etree.tostring(root)


@pytest.fixture
def ecdsa_sp(
    runtime: IdpRuntime, web: TestClient, sp_keys: tuple[Path, Path], official_at_work: Any
) -> ServiceProvider:
    key_path, cert_path = sp_keys
    metadata = sp_metadata_xml(sp_config(key_path=key_path, cert_path=cert_path, idp_metadata=None))
    register_sp(runtime, declaring_only(metadata, {ECDSA_SHA256}), attributes=ALL_ATTRIBUTES)
    config = sp_config(
        key_path=key_path, cert_path=cert_path, idp_metadata=web.get("/saml/metadata").text
    )
    return ServiceProvider(config, IDP_ENTITY_ID)


def signature_methods(saml_response: str) -> list[str]:
    root = etree.fromstring(base64.b64decode(saml_response))
    return [
        method.get("Algorithm")
        for method in root.iter(f"{DSIG}SignatureMethod")  # Response's, then Assertion's
    ]


def test_an_sp_declaring_ecdsa_only_gets_ecdsa_signatures(
    web: TestClient, ecdsa_sp: ServiceProvider, runtime: IdpRuntime
) -> None:
    with transaction(runtime.session_factory) as session:
        registered = service_providers.as_dict(
            service_providers.REGISTRY.get_active(session, SP_ENTITY_ID)
        )
    assert registered["signing_methods"] == [ECDSA_SHA256]
    assert registered["signs_with"] == "ES256"
    request_id, info = ecdsa_sp.authn_request()
    form = sign_in(web, send_to_idp(web, info))
    assert signature_methods(form.fields["SAMLResponse"]) == [ECDSA_SHA256, ECDSA_SHA256]
    # pysaml2 (xmlsec1) verifies both ECDSA signatures with the EC certificate of our metadata.
    response = ecdsa_sp.parse_response(form, request_id)
    assert response.response.signature is not None
    assert response.assertion.signature is not None
    assert response.ava["name"] == ["Nguyễn Văn An"]


def test_its_logout_request_is_signed_with_ecdsa(
    web: TestClient, ecdsa_sp: ServiceProvider
) -> None:
    request_id, info = ecdsa_sp.authn_request()
    response = ecdsa_sp.parse_response(sign_in(web, send_to_idp(web, info)), request_id)
    page = web.get("/cas/logout")  # a logout elsewhere: the SP's LogoutRequest in an iframe
    (frame,) = IFRAME.findall(page.text)
    query = {k: v[0] for k, v in parse_qs(urlsplit(frame.replace("&amp;", "&")).query).items()}
    assert query["SigAlg"] == ECDSA_SHA256
    # pysaml2 verifies the query signature against our metadata and logs its user out.
    reply = ecdsa_sp.client.handle_logout_request(
        query["SAMLRequest"],
        response.name_id,
        BINDING_HTTP_REDIRECT,
        sign=False,
        sigalg=query["SigAlg"],
        signature=query["Signature"],
    )
    assert "Location" in dict(reply["headers"])


def test_an_sp_declaring_both_stays_on_rsa(web: TestClient, sp: ServiceProvider) -> None:
    # The conftest SP's metadata (pysaml2's own) lists RSA-SHA256 and ECDSA-SHA256.
    request_id, info = sp.authn_request()
    form = sign_in(web, send_to_idp(web, info))
    assert signature_methods(form.fields["SAMLResponse"]) == [RSA_SHA256, RSA_SHA256]
    assert sp.parse_response(form, request_id).in_response_to == request_id


@pytest.mark.parametrize(
    ("declared", "alg"),
    [
        (None, "RS256"),
        ([], "RS256"),
        ([ECDSA_SHA256], "ES256"),
        ([ECDSA_SHA256, RSA_SHA256], "RS256"),
        ([RSA_SHA256], "RS256"),
        (["http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"], "RS256"),
    ],
)
def test_key_alg_for_declared_methods(declared: list[str] | None, alg: str) -> None:
    assert key_alg_for(declared) == alg
