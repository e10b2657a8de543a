"""Every AuthnRequest we must not answer gets an error page and no Response: unsigned or
wrongly signed requests from an SP that signs, an unknown SP, an unregistered ACS URL, a
replayed request ID, a stale IssueInstant, a wrong Destination, XML with a DTD or an entity
(billion laughs, XXE), and the signature-wrapping (XSW) variants on a signed request."""

from __future__ import annotations

import base64
import copy
import html
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from sqlalchemy import func, select
from starlette.testclient import TestClient

from core.db import transaction
from idp.models import SamlSessionParticipant
from idp.runtime import IdpRuntime
from idp.saml.xml_parsing import UnsafeXml, parse_untrusted
from tests.conftest import ISSUER
from tests.idp.saml.conftest import IDP_ENTITY_ID, register_sp
from tests.idp.saml.pysaml2_sp import (
    ACS_URL,
    SP_ENTITY_ID,
    ServiceProvider,
    send_to_idp,
    sign_in,
    sp_config,
    sp_metadata_xml,
    write_key_and_certificate,
)

SSO_URL = f"{ISSUER}/saml/sso"
PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
REFUSED = "không được chấp nhận"  # the Vietnamese refusal text
UNKNOWN = "Ứng dụng không xác định"


def assert_refused(response: Any, text: str = REFUSED) -> None:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "SAMLResponse" not in response.text
    assert text in response.text


def nothing_issued(runtime: IdpRuntime) -> bool:
    with transaction(runtime.session_factory) as session:
        return not session.scalar(select(func.count()).select_from(SamlSessionParticipant))


def other_sp(web: TestClient, tmp_path: Path, name: str, **options: Any) -> ServiceProvider:
    key_path, cert_path = write_key_and_certificate(tmp_path, name)
    config = sp_config(
        key_path=key_path,
        cert_path=cert_path,
        idp_metadata=web.get("/saml/metadata").text,
        **options,
    )
    return ServiceProvider(config, IDP_ENTITY_ID)


def post_request(web: TestClient, xml: bytes) -> Any:
    return web.post(
        "/saml/sso",
        data={"SAMLRequest": base64.b64encode(xml).decode(), "RelayState": "/van-ban"},
    )


def signed_post_xml(sp: ServiceProvider, **options: Any) -> bytes:
    """The signed AuthnRequest pysaml2 would post, as XML."""
    _, info = sp.authn_request(binding=BINDING_HTTP_POST, **options)
    value = re.findall(r'name="SAMLRequest" value="([^"]*)"', info["data"])[0]
    return base64.b64decode(html.unescape(value))


def unsigned_post_xml(sp: ServiceProvider) -> bytes:
    _, info = sp.authn_request(binding=BINDING_HTTP_POST, sign=False)
    value = re.findall(r'name="SAMLRequest" value="([^"]*)"', info["data"])[0]
    return base64.b64decode(html.unescape(value))


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_unsigned_request_from_an_sp_that_signs(
    web: TestClient, sp: ServiceProvider, runtime: IdpRuntime, binding: str
) -> None:
    _, info = sp.authn_request(binding=binding, sign=False)
    assert_refused(send_to_idp(web, info))
    assert nothing_issued(runtime)


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_request_signed_by_another_key(
    web: TestClient, sp: ServiceProvider, runtime: IdpRuntime, tmp_path: Path, binding: str
) -> None:
    impostor = other_sp(web, tmp_path, "impostor")  # same entity ID, its own key
    _, info = impostor.authn_request(binding=binding)
    assert_refused(send_to_idp(web, info))
    assert nothing_issued(runtime)


def test_unknown_sp(web: TestClient, sp: ServiceProvider, tmp_path: Path) -> None:
    stranger = other_sp(
        web,
        tmp_path,
        "stranger",
        entity_id="https://la.example.vn/saml/metadata",
        acs_url="https://la.example.vn/saml/acs",
    )
    _, info = stranger.authn_request()
    assert_refused(send_to_idp(web, info), UNKNOWN)


@pytest.mark.parametrize(
    "options",
    [
        {"assertion_consumer_service_url": "https://evil.example.vn/saml/acs"},
        {"assertion_consumer_service_url": ACS_URL + "/"},
        {"assertion_consumer_service_index": "7"},
    ],
)
def test_unregistered_acs(web: TestClient, sp: ServiceProvider, options: dict[str, str]) -> None:
    _, info = sp.authn_request(**options)
    assert_refused(send_to_idp(web, info))


@pytest.mark.parametrize("binding", [BINDING_HTTP_REDIRECT, BINDING_HTTP_POST])
def test_replayed_request_id(web: TestClient, sp: ServiceProvider, binding: str) -> None:
    _, info = sp.authn_request(binding=binding)
    first = send_to_idp(web, info)
    assert first.status_code in (200, 303)
    assert_refused(send_to_idp(web, info))


def test_stale_issue_instant(web: TestClient, sp: ServiceProvider, runtime: IdpRuntime) -> None:
    _, info = sp.authn_request()
    runtime.clock.advance(minutes=10)
    assert_refused(send_to_idp(web, info))


@pytest.fixture
def unsigned_sp(
    web: TestClient, runtime: IdpRuntime, tmp_path: Path, official_at_work: Any
) -> ServiceProvider:
    """A one-stop-shop app that does not sign its requests (AuthnRequestsSigned false)."""
    options = {
        "entity_id": "https://motcua.laocai.gov.vn/saml/metadata",
        "acs_url": "https://motcua.laocai.gov.vn/saml/acs",
        "slo_url": "https://motcua.laocai.gov.vn/saml/slo",
        "sign_requests": False,
    }
    key_path, cert_path = write_key_and_certificate(tmp_path, "motcua")
    register_sp(
        runtime,
        sp_metadata_xml(
            sp_config(key_path=key_path, cert_path=cert_path, idp_metadata=None, **options)
        ),
    )
    return other_sp(web, tmp_path, "motcua-2", **options)


def test_an_sp_that_does_not_sign_is_answered(
    web: TestClient, unsigned_sp: ServiceProvider
) -> None:
    request_id, info = unsigned_sp.authn_request(sign=False)
    form = sign_in(web, send_to_idp(web, info))
    assert unsigned_sp.parse_response(form, request_id).in_response_to == request_id


def test_wrong_destination(web: TestClient, unsigned_sp: ServiceProvider) -> None:
    xml = unsigned_post_xml(unsigned_sp)
    assert etree.fromstring(xml).get("Destination") == SSO_URL
    assert_refused(post_request(web, xml.replace(SSO_URL.encode(), b"https://idp.example.vn/sso")))
    assert post_request(web, unsigned_post_xml(unsigned_sp)).status_code == 303


BILLION_LAUGHS = f"""<?xml version="1.0"?>
<!DOCTYPE samlp:AuthnRequest [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<samlp:AuthnRequest xmlns:samlp="{PROTOCOL}" xmlns:saml="{ASSERTION}" ID="_a1" Version="2.0"
 IssueInstant="{{now}}"><saml:Issuer>&lol2;</saml:Issuer></samlp:AuthnRequest>"""
XXE = f"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<samlp:AuthnRequest xmlns:samlp="{PROTOCOL}" xmlns:saml="{ASSERTION}" ID="_a2" Version="2.0"
 IssueInstant="{{now}}"><saml:Issuer>{SP_ENTITY_ID}&xxe;</saml:Issuer></samlp:AuthnRequest>"""
EXTERNAL_DTD = f"""<?xml version="1.0"?>
<!DOCTYPE samlp:AuthnRequest SYSTEM "http://127.0.0.1:9/evil.dtd">
<samlp:AuthnRequest xmlns:samlp="{PROTOCOL}" xmlns:saml="{ASSERTION}" ID="_a3" Version="2.0"
 IssueInstant="{{now}}"><saml:Issuer>{SP_ENTITY_ID}</saml:Issuer></samlp:AuthnRequest>"""


@pytest.mark.parametrize("template", [BILLION_LAUGHS, XXE, EXTERNAL_DTD])
def test_dtds_and_entities_are_refused(web: TestClient, sp: ServiceProvider, template: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = template.replace("{now}", now).encode()
    assert_refused(post_request(web, document), UNKNOWN)
    with pytest.raises(UnsafeXml):
        parse_untrusted(document)
    # Also when the DTD hides behind another encoding than the byte scan reads.
    with pytest.raises(UnsafeXml):
        parse_untrusted(
            document.decode()
            .replace('version="1.0"?>', 'version="1.0" encoding="UTF-16"?>', 1)
            .encode("utf-16")
        )


# --- Signature wrapping -----------------------------------------------------------------------


def _evil_copy(original: etree._Element, new_id: str) -> etree._Element:
    """The attacker's request: the signed one with a fresh ID (a replay that the cache would
    not catch) and ForceAuthn dropped, no signature of its own."""
    evil = copy.deepcopy(original)
    evil.set("ID", new_id)
    evil.attrib.pop("ForceAuthn", None)
    for signature in evil.findall(f"{{{DSIG}}}Signature"):
        evil.remove(signature)
    return evil


def _with_original_in_extensions(evil: etree._Element, original: etree._Element) -> etree._Element:
    """The original request, without its signature, hidden in the evil one's Extensions."""
    wrapped = copy.deepcopy(original)
    wrapped.remove(wrapped.find(f"{{{DSIG}}}Signature"))
    etree.SubElement(evil, f"{{{PROTOCOL}}}Extensions").append(wrapped)
    return evil


def _with_original_signature(evil: etree._Element, original: etree._Element) -> etree._Element:
    """The original's Signature where a verifier looks: a child of the root, after Issuer."""
    evil.insert(1, copy.deepcopy(original.find(f"{{{DSIG}}}Signature")))
    return evil


def xsw_signed_request_inside_evil_root(original: etree._Element) -> etree._Element:
    evil = _evil_copy(original, "_evil1")
    etree.SubElement(evil, f"{{{PROTOCOL}}}Extensions").append(copy.deepcopy(original))
    return evil


def xsw_signature_moved_to_evil_root_original_in_object(original: etree._Element) -> etree._Element:
    evil = _evil_copy(original, "_evil2")
    signature = copy.deepcopy(original.find(f"{{{DSIG}}}Signature"))
    wrapped = copy.deepcopy(original)
    wrapped.remove(wrapped.find(f"{{{DSIG}}}Signature"))
    etree.SubElement(signature, f"{{{DSIG}}}Object").append(wrapped)
    evil.insert(1, signature)
    return evil


def xsw_same_id_twice(original: etree._Element) -> etree._Element:
    evil = _with_original_signature(_evil_copy(original, original.get("ID")), original)
    return _with_original_in_extensions(evil, original)


def xsw_signature_at_root_references_wrapped_original(original: etree._Element) -> etree._Element:
    """The signature where a verifier looks (a child of the root) but its reference points at
    the original, kept intact further down; the root itself is the evil request."""
    evil = _with_original_signature(_evil_copy(original, "_evil4"), original)
    return _with_original_in_extensions(evil, original)


def xsw_content_changed_under_signature(original: etree._Element) -> etree._Element:
    changed = copy.deepcopy(original)
    changed.attrib.pop("ForceAuthn", None)
    changed.set("IsPassive", "false")
    return changed


def xsw_issuer_swapped_after_signing(original: etree._Element) -> etree._Element:
    changed = copy.deepcopy(original)
    changed.find(f"{{{ASSERTION}}}Issuer").text = "https://la.example.vn/saml/metadata"
    return changed


@pytest.mark.parametrize(
    "wrap",
    [
        xsw_signed_request_inside_evil_root,
        xsw_signature_moved_to_evil_root_original_in_object,
        xsw_same_id_twice,
        xsw_signature_at_root_references_wrapped_original,
        xsw_content_changed_under_signature,
        xsw_issuer_swapped_after_signing,
    ],
)
def test_signature_wrapping_is_refused(
    web: TestClient,
    sp: ServiceProvider,
    runtime: IdpRuntime,
    wrap: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    original = etree.fromstring(signed_post_xml(sp, force_authn="true"))
    with caplog.at_level(logging.INFO, logger="commune_sso.saml"):
        response = post_request(web, etree.tostring(wrap(original)))
    assert response.status_code == 400
    assert "SAMLResponse" not in response.text
    assert nothing_issued(runtime)
    reasons = " ".join(record.getMessage() for record in caplog.records)
    assert any(
        word in reasons for word in ("signature", "Signature", "ID", "AuthnRequest", "unknown")
    ), reasons


def test_the_unwrapped_signed_request_is_accepted(web: TestClient, sp: ServiceProvider) -> None:
    """The control for the XSW tests: the very request they start from goes through."""
    response = post_request(web, signed_post_xml(sp, force_authn="true"))
    assert response.status_code == 303
    assert response.headers["location"].startswith("/saml/sso/continue?")


def test_sha1_signatures_are_refused(web: TestClient, sp: ServiceProvider) -> None:
    from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

    _, info = sp.client.prepare_for_authenticate(
        entityid=IDP_ENTITY_ID,
        binding=BINDING_HTTP_REDIRECT,
        sign=True,
        sigalg=SIG_RSA_SHA1,
        digest_alg=DIGEST_SHA1,
    )
    assert_refused(send_to_idp(web, info))
