"""Certificate signing requests and the key policy (Decree 68/2024/ND-CP, Circular 15/2025).

A CSR only proves possession of a key: its signature must verify, and its public key must be
RSA ≥ 2048 bits or ECDSA on P-256/P-384. Everything else in it (subject, extensions) is ignored;
the subject comes from the official's verified data (profiles.py).
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ca_admin.errors import BadCertificateRequest
from core.web.i18n import N_

MAX_CSR_BYTES = 16 * 1024  # an RSA-8192 CSR in PEM is about 3 KB; anything larger is not a CSR
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192  # larger keys only make verification slow for every relying party
ALLOWED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}

SubjectPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM or DER PKCS#10 request and check its self-signature (RFC 2986 §3)."""
    if not data or not data.strip():
        raise BadCertificateRequest(N_("The certificate request is empty."), field="csr")
    if len(data) > MAX_CSR_BYTES:
        raise BadCertificateRequest(
            N_("The certificate request is too large (%(size)s bytes; at most %(limit)s)."),
            field="csr",
            size=len(data),
            limit=MAX_CSR_BYTES,
        )
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(data.strip())
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError as error:
        raise BadCertificateRequest(
            N_("This is not a valid PKCS#10 certificate request (CSR)."), field="csr"
        ) from error
    try:
        public_key = csr.public_key()
    except (ValueError, TypeError) as error:  # unsupported algorithm (e.g. GOST) or bad key
        raise BadCertificateRequest(
            N_("The key in the certificate request is not supported."), field="csr"
        ) from error
    check_public_key(public_key)
    try:
        signature_ok = csr.is_signature_valid
    except Exception as error:  # cryptography raises on unsupported signature algorithms
        raise BadCertificateRequest(
            N_("The certificate request signature cannot be checked."), field="csr"
        ) from error
    if not signature_ok:
        raise BadCertificateRequest(
            N_("The certificate request signature is invalid: it was not signed by its key."),
            field="csr",
        )
    return csr


def check_public_key(public_key: object) -> SubjectPublicKey:
    """Refuse keys below the national minimum, with the reason named."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise BadCertificateRequest(
                N_("RSA keys must have at least %(minimum)s bits (this one has %(bits)s)."),
                field="csr",
                minimum=MIN_RSA_BITS,
                bits=public_key.key_size,
            )
        if public_key.key_size > MAX_RSA_BITS:
            raise BadCertificateRequest(
                N_("RSA keys may have at most %(maximum)s bits (this one has %(bits)s)."),
                field="csr",
                maximum=MAX_RSA_BITS,
                bits=public_key.key_size,
            )
        exponent = public_key.public_numbers().e
        if exponent < 65537 or exponent % 2 == 0:
            raise BadCertificateRequest(
                N_("The RSA public exponent must be odd and at least 65537."), field="csr"
            )
        return public_key
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ALLOWED_CURVES:
            raise BadCertificateRequest(
                N_("Elliptic-curve keys must use P-256 or P-384 (this one uses %(curve)s)."),
                field="csr",
                curve=public_key.curve.name,
            )
        return public_key
    # By the class's name, not isinstance(..., dsa.DSAPublicKey): cryptography warns that DSA is
    # deprecated whenever that name is touched, and a refusal must not print a warning.
    kind = (
        "Ed25519/Ed448"
        if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
        else type(public_key).__name__.removesuffix("PublicKey")
    )
    raise BadCertificateRequest(
        N_("%(kind)s keys are not accepted: use RSA (2048 bits or more) or ECDSA P-256/P-384."),
        field="csr",
        kind=kind,
    )


def spki_sha256(public_key: SubjectPublicKey) -> str:
    """SHA-256 of the SubjectPublicKeyInfo: the identity of a key across certificates."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()
