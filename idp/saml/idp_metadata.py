"""Our IdP metadata (SAML Metadata §2.4.3 IDPSSODescriptor) at a stable URL, which is also our
entity ID: SSO and SLO endpoints for both bindings, the NameID formats, and one signing
KeyDescriptor per published RSA and EC (P-256) key, so a rotated key is announced before it
signs (the key ring publishes a new key ahead of use, as for the JWKS). The document is signed
by the active RSA key."""

from __future__ import annotations

import base64
from datetime import datetime

from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from idp.saml import xml_signatures
from idp.saml.responses import saml_id
from idp.saml.vocabulary import (
    DSIG_NS,
    HTTP_POST,
    HTTP_REDIRECT,
    METADATA_NS,
    NAME_ID_FORMATS,
    PROTOCOL_NS,
)
from keys import KeyRing

METADATA_PATH = "/saml/metadata"
SSO_PATH = "/saml/sso"
SLO_PATH = "/saml/slo"
SIGNING_ALG = "RS256"
PUBLISHED_ALGS = ("RS256", "ES256")
# SPs refetch at least this often, so a rotation published ahead (keys rotate
# --publish-ahead) reaches them before the new key signs.
CACHE_DURATION = "PT1H"


def entity_id(issuer: str) -> str:
    return f"{issuer}{METADATA_PATH}"


def document(*, issuer: str, keyring: KeyRing, now: datetime) -> bytes:
    def md(parent: etree._Element, local: str, **attributes: str) -> etree._Element:
        return etree.SubElement(parent, etree.QName(METADATA_NS, local), attributes)

    root = etree.Element(
        etree.QName(METADATA_NS, "EntityDescriptor"),
        {"ID": saml_id(), "entityID": entity_id(issuer), "cacheDuration": CACHE_DURATION},
        nsmap={"md": METADATA_NS, "ds": DSIG_NS},
    )
    root.append(xml_signatures.signature_placeholder())
    descriptor = md(
        root,
        "IDPSSODescriptor",
        protocolSupportEnumeration=PROTOCOL_NS,
        WantAuthnRequestsSigned="false",
    )
    # ES256 too: SPs that declare ECDSA only are signed for with it (xml_signatures).
    certificates = [
        certificate
        for alg in PUBLISHED_ALGS
        for certificate in keyring.published_certificates(alg=alg, now=now)
    ]
    for certificate in certificates:
        key_info = etree.SubElement(
            md(descriptor, "KeyDescriptor", use="signing"), etree.QName(DSIG_NS, "KeyInfo")
        )
        x509_data = etree.SubElement(key_info, etree.QName(DSIG_NS, "X509Data"))
        etree.SubElement(
            x509_data, etree.QName(DSIG_NS, "X509Certificate")
        ).text = base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii")
    for binding in (HTTP_REDIRECT, HTTP_POST):
        md(descriptor, "SingleLogoutService", Binding=binding, Location=f"{issuer}{SLO_PATH}")
    for name_id_format in NAME_ID_FORMATS:
        md(descriptor, "NameIDFormat").text = name_id_format
    for binding in (HTTP_REDIRECT, HTTP_POST):
        md(descriptor, "SingleSignOnService", Binding=binding, Location=f"{issuer}{SSO_PATH}")
    signed = xml_signatures.sign(root, keyring.certified_signing_key(alg=SIGNING_ALG, now=now))
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
