"""``/saml/metadata``: our IdP metadata, signed by the active key, naming both bindings of
SSO and SLO, the NameID formats, and every published signing certificate, so a rotated key is
in it before it signs."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml import XMLVerifier
from starlette.testclient import TestClient

from idp.runtime import IdpRuntime
from tests.conftest import ISSUER

MD = {"md": "urn:oasis:names:tc:SAML:2.0:metadata", "ds": "http://www.w3.org/2000/09/xmldsig#"}


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """A key ring of this test's own: it rotates keys."""
    return tmp_path / "keys"


def signing_certificates(
    root: etree._Element, key_type: type = rsa.RSAPublicKey
) -> list[x509.Certificate]:
    """The signing certificates of the metadata whose keys are of ``key_type``."""
    certificates = [
        x509.load_der_x509_certificate(base64.b64decode(text.text))
        for text in root.findall(
            "md:IDPSSODescriptor/md:KeyDescriptor[@use='signing']/ds:KeyInfo/ds:X509Data/"
            "ds:X509Certificate",
            MD,
        )
    ]
    return [c for c in certificates if isinstance(c.public_key(), key_type)]


def test_metadata_is_signed_and_complete(web: TestClient) -> None:
    reply = web.get("/saml/metadata")
    assert reply.headers["content-type"] == "application/samlmetadata+xml"
    root = etree.fromstring(reply.content)
    assert root.get("entityID") == f"{ISSUER}/saml/metadata"
    (certificate,) = signing_certificates(root)
    # The P-256 key's certificate too, for SPs that declare ECDSA only.
    (ec_certificate,) = signing_certificates(root, ec.EllipticCurvePublicKey)
    assert isinstance(ec_certificate.public_key().curve, ec.SECP256R1)
    verified = XMLVerifier().verify(root, x509_cert=certificate, id_attribute="ID")
    assert verified.signed_xml.get("entityID") == root.get("entityID")
    descriptor = root.find("md:IDPSSODescriptor", MD)
    services = {
        (s.tag.split("}")[1], s.get("Binding").rsplit(":", 1)[1], s.get("Location"))
        for s in descriptor
        if s.get("Location")
    }
    assert services == {
        ("SingleSignOnService", "HTTP-Redirect", f"{ISSUER}/saml/sso"),
        ("SingleSignOnService", "HTTP-POST", f"{ISSUER}/saml/sso"),
        ("SingleLogoutService", "HTTP-Redirect", f"{ISSUER}/saml/slo"),
        ("SingleLogoutService", "HTTP-POST", f"{ISSUER}/saml/slo"),
    }
    assert [f.text.rsplit(":", 1)[1] for f in descriptor.findall("md:NameIDFormat", MD)] == [
        "persistent",
        "transient",
        "emailAddress",
    ]


def test_a_rotated_key_is_published_before_it_signs(web: TestClient, runtime: IdpRuntime) -> None:
    before = signing_certificates(etree.fromstring(web.get("/saml/metadata").content))
    runtime.keyring.rotate(
        now=runtime.clock.now(),
        publish_ahead=timedelta(days=1),
        keep_published=timedelta(days=1),
        algorithms=["RS256"],
    )
    during = etree.fromstring(web.get("/saml/metadata").content)
    certificates = signing_certificates(during)
    assert len(certificates) == 2 and certificates[1] == before[0]
    # Still signed by the old key until the new one becomes active.
    XMLVerifier().verify(during, x509_cert=before[0], id_attribute="ID")
