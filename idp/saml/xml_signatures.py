"""Enveloped XML signatures (XML-DSig through ``signxml``; never our own canonicalisation) on
our messages and on the messages of service providers.

Ours: RSA-SHA256, or ECDSA-SHA256 (P-256) for an SP whose metadata declares it and not
RSA-SHA256 (:func:`signing_key_for`), SHA-256 digests, exclusive
canonicalisation, the certificate in KeyInfo, the Signature right after the Issuer (SAML Core
§5.4.1, where the schema wants it).

Theirs: the one Signature must be a direct child of the root and reference the root's ID, that
ID must be unique in the document, and what the caller reads next is the element signxml hands
back as signed — never the tree it was given. That is what defeats the signature-wrapping
(XSW) attacks, which all move the signed element and put an unsigned one where a reader looks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from cryptography import x509
from lxml import etree
from signxml import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)
from signxml.exceptions import InvalidInput, InvalidSignature

from idp.saml.vocabulary import DSIG_NS, ECDSA_SHA256, RSA_SHA256, qualified
from keys import CertifiedKey, KeyRing, NoSigningKey

log = logging.getLogger("commune_sso.saml")

PLACEHOLDER_ID = "placeholder"  # signxml replaces <ds:Signature Id="placeholder"/> in place
_ACCEPTED = SignatureConfiguration(
    location="./",
    expect_references=1,
    signature_methods=frozenset(
        {
            SignatureMethod.RSA_SHA256,
            SignatureMethod.RSA_SHA384,
            SignatureMethod.RSA_SHA512,
            SignatureMethod.ECDSA_SHA256,
            SignatureMethod.ECDSA_SHA384,
        }
    ),
    digest_algorithms=frozenset(
        {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
    ),
)


class SignatureRefused(ValueError):
    """Missing, malformed, wrapped, or not by a certificate the SP registered."""


def key_alg_for(signing_methods: Sequence[str] | None) -> str:
    """The key ring algorithm to sign for an SP: ES256 when its metadata's SigningMethods
    (Metadata Profile for Algorithm Support §2.3, the SP's accepted algorithms) include
    ECDSA-SHA256 but not RSA-SHA256; RS256 otherwise, which every SP verifies."""
    methods = signing_methods or ()
    if ECDSA_SHA256 in methods and RSA_SHA256 not in methods:
        return "ES256"
    return "RS256"


def signing_key_for(
    keyring: KeyRing, signing_methods: Sequence[str] | None, *, now: datetime
) -> CertifiedKey:
    """Our certified key for an SP's declared signing methods (:func:`key_alg_for`)."""
    alg = key_alg_for(signing_methods)
    try:
        return keyring.certified_signing_key(alg=alg, now=now)
    except NoSigningKey:
        if alg == "RS256":
            raise
        # A ring without an EC key signs with RSA rather than not at all; the SP will say.
        log.warning("no %s key to sign for an SP that declares it; RS256 used", alg)
        return keyring.certified_signing_key(alg="RS256", now=now)


def signature_placeholder() -> etree._Element:
    """Put this right after the Issuer of an element to be signed."""
    return etree.Element(
        etree.QName(DSIG_NS, "Signature"), Id=PLACEHOLDER_ID, nsmap={"ds": DSIG_NS}
    )


def sign(element: etree._Element, key: CertifiedKey) -> etree._Element:
    """``element`` (with its ``ID`` and a placeholder) signed; use the returned element."""
    signer = XMLSigner(
        signature_algorithm=ECDSA_SHA256 if key.alg == "ES256" else RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signer.namespaces = {"ds": DSIG_NS}
    signed: etree._Element = signer.sign(
        element, key=key.private_key, cert=[key.certificate], id_attribute="ID"
    )
    return signed


def has_signature(root: etree._Element) -> bool:
    return root.find(qualified("ds", "Signature")) is not None


def verified_element(
    root: etree._Element, certificates: Sequence[x509.Certificate]
) -> etree._Element:
    """The element the one enveloped Signature of ``root`` covers, which must be ``root``
    itself, verified against one of ``certificates``."""
    signatures = root.findall(f".//{qualified('ds', 'Signature')}")
    if len(signatures) != 1 or signatures[0].getparent() is not root:
        raise SignatureRefused("exactly one Signature, a child of the root, is expected")
    root_id = root.get("ID")
    if not root_id or len(root.xpath("//*[@ID=$id]", id=root_id)) != 1:
        raise SignatureRefused("the root's ID is missing or not unique")
    for certificate in certificates:
        # Trust comes from the registered metadata, not the certificate's dates (SAML V2.0
        # Metadata Interoperability Profile §2.5.1): check it as of its first valid day.
        config = replace(_ACCEPTED, verification_time=certificate.not_valid_before_utc)
        try:
            result = XMLVerifier().verify(
                root, x509_cert=certificate, id_attribute="ID", expect_config=config
            )
        except (InvalidSignature, InvalidInput):
            continue
        signed = getattr(result, "signed_xml", None)
        if (
            isinstance(signed, etree._Element)
            and signed.tag == root.tag
            and signed.get("ID") == root_id
        ):
            return signed
        raise SignatureRefused("the signature does not cover the message itself")
    raise SignatureRefused("no registered certificate verifies the signature")
