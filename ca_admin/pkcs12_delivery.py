"""Server-side key generation delivered as a password-protected PKCS#12 (RFC 7292).

PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA256, HMAC-SHA256 MAC: what OpenSSL 3 and Windows 10+
open, never RC2 or 3DES. The private key exists only while the file is built; it is neither
stored nor logged.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

from ca_admin.errors import PolicyViolation
from core.web.i18n import N_

KDF_ROUNDS = 100_000  # PBKDF2 iterations: ~40 ms to open on a laptop, costly to brute-force
MIN_PASSWORD_LENGTH = 8

ServerKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def generate_key(algorithm: str) -> ServerKey:
    if algorithm == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if algorithm == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise PolicyViolation(N_("Unsupported key algorithm %(name)s."), name=algorithm)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PolicyViolation(
            N_("The file password must have at least %(minimum)s characters."),
            field="password",
            minimum=MIN_PASSWORD_LENGTH,
        )


def build(
    *,
    key: ServerKey,
    certificate: x509.Certificate,
    chain: list[x509.Certificate],
    password: str,
    friendly_name: str,
) -> bytes:
    check_password(password)
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode(), key, certificate, chain, encryption
    )
