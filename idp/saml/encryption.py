"""Encrypted assertions (SAML Core §2.3.4 EncryptedAssertion; XML Encryption 1.1): the signed
Assertion, serialised, encrypted with a fresh AES-256-GCM key, the key encrypted to the SP's
registered encryption certificate with RSA-OAEP. The Response around it is signed after
encryption, so it covers the ciphertext.

No canonicalisation is involved: XML Encryption encrypts the element's serialisation as it
is, and the SP parses it back after decrypting."""

from __future__ import annotations

import base64
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from idp.saml.vocabulary import ASSERTION_NS, DSIG_NS, XENC_NS

AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
# MGF1 with SHA-1 is what this identifier fixes; with OAEP that is no weakness (the mask
# function needs no collision resistance), and every SAML stack (xmlsec1 too) reads it.
RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
SHA1_DIGEST = "http://www.w3.org/2000/09/xmldsig#sha1"
ELEMENT_TYPE = "http://www.w3.org/2001/04/xmlenc#Element"
GCM_NONCE_BYTES = 12  # XML Encryption 1.1 §5.2.4: the 96-bit IV precedes the ciphertext


class CannotEncrypt(ValueError):
    """The SP's encryption certificate holds no RSA key."""


def _sub(parent: etree._Element, namespace: str, local: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, etree.QName(namespace, local), attributes)


def _cipher_value(parent: etree._Element, data: bytes) -> None:
    cipher_data = _sub(parent, XENC_NS, "CipherData")
    _sub(cipher_data, XENC_NS, "CipherValue").text = base64.b64encode(data).decode("ascii")


def encrypted_assertion(assertion: etree._Element, certificate: x509.Certificate) -> etree._Element:
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CannotEncrypt("only RSA encryption certificates are supported")
    content_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(GCM_NONCE_BYTES)
    plaintext = etree.tostring(assertion, encoding="UTF-8")
    ciphertext = nonce + AESGCM(content_key).encrypt(nonce, plaintext, None)
    wrapped_key = public_key.encrypt(
        content_key,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303 - see RSA_OAEP_MGF1P
    )

    element = etree.Element(
        etree.QName(ASSERTION_NS, "EncryptedAssertion"),
        nsmap={"saml": ASSERTION_NS, "xenc": XENC_NS, "ds": DSIG_NS},
    )
    data = _sub(element, XENC_NS, "EncryptedData", Type=ELEMENT_TYPE)
    _sub(data, XENC_NS, "EncryptionMethod", Algorithm=AES256_GCM)
    key_info = _sub(data, DSIG_NS, "KeyInfo")
    encrypted_key = _sub(key_info, XENC_NS, "EncryptedKey")
    method = _sub(encrypted_key, XENC_NS, "EncryptionMethod", Algorithm=RSA_OAEP_MGF1P)
    _sub(method, DSIG_NS, "DigestMethod", Algorithm=SHA1_DIGEST)
    recipient = _sub(_sub(encrypted_key, DSIG_NS, "KeyInfo"), DSIG_NS, "X509Data")
    _sub(recipient, DSIG_NS, "X509Certificate").text = base64.b64encode(
        certificate.public_bytes(Encoding.DER)
    ).decode("ascii")
    _cipher_value(encrypted_key, wrapped_key)
    _cipher_value(data, ciphertext)
    return element
