"""Self-signed certificates for tests that need any certificate at all (a TLS listener, an
OCSP request about a CA nobody serves, a SAML service provider's keys), not one our CA
issued."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def _self_signed(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    common_name: str,
    *,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def self_signed_p256(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A P-256 certificate valid for a day, signed by its own key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    return _self_signed(
        key, common_name, not_before=now, not_after=now + datetime.timedelta(days=1)
    ), key


def self_signed_rsa(common_name: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """An RSA-2048 certificate valid from yesterday for a year, signed by its own key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    return _self_signed(
        key,
        common_name,
        not_before=now - datetime.timedelta(days=1),
        not_after=now + datetime.timedelta(days=365),
    ), key
