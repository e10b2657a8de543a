"""The TSA unit that signs time-stamp tokens, loaded once and kept for a few seconds.

Everything about the unit that is the same in every token is computed here once: the
certificate as asn1crypto reads it, the signer identifier, the ESSCertIDv2 signed attribute
(RFC 5816 §2.2.1) and the signature algorithm, so a token costs one TSTInfo, one digest and one
signature.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from ca_admin.models import TimeStampingUnit
from keys.signing_keys import SigningKey

# A new unit made by another process (the CLI) is used by every worker within this time.
SIGNER_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class SignatureScheme:
    """How a unit's key signs the SignedAttributes (RFC 5652 §5.4), and how it is named."""

    digest: str  # asn1crypto name of the digest of TSTInfo and of the signature
    algorithm: asn1_cms.SignedDigestAlgorithm


def signature_scheme(key: SigningKey) -> SignatureScheme:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = "sha384" if key.curve.key_size >= 384 else "sha256"
        return SignatureScheme(
            digest, asn1_cms.SignedDigestAlgorithm({"algorithm": f"{digest}_ecdsa"})
        )
    if isinstance(key, rsa.RSAPrivateKey):
        return SignatureScheme(
            "sha256",
            asn1_cms.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": None}),
        )
    raise ValueError(f"unsupported TSA key type {type(key).__name__}")


def sign(key: SigningKey, scheme: SignatureScheme, data: bytes) -> bytes:
    algorithm: hashes.HashAlgorithm = (
        hashes.SHA384() if scheme.digest == "sha384" else hashes.SHA256()
    )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.sign(data, padding.PKCS1v15(), algorithm)


def ess_cert_id_v2(certificate: asn1_x509.Certificate) -> asn1_cms.CMSAttribute:
    """signingCertificateV2 (RFC 5035 §3, required by RFC 5816 §2.2.1) naming our certificate
    by its SHA-256 hash (the default algorithm: omitted) and its issuer and serial."""
    return asn1_cms.CMSAttribute(
        {
            "type": "signing_certificate_v2",
            "values": [
                {
                    "certs": [
                        {
                            "cert_hash": hashlib.sha256(certificate.dump()).digest(),
                            "issuer_serial": {
                                "issuer": [
                                    asn1_x509.GeneralName(
                                        name="directory_name", value=certificate.issuer
                                    )
                                ],
                                "serial_number": certificate.serial_number,
                            },
                        }
                    ]
                }
            ],
        }
    )


@dataclass(frozen=True)
class TsaSigner:
    """A TSA unit as the token builder needs it: the parts of a token that never change,
    already DER-encoded (ca_admin.der_encoding)."""

    unit_id: int
    name: str
    key_uri: str
    certificate: x509.Certificate
    scheme: SignatureScheme
    certificate_der: bytes
    signer_id_der: bytes  # IssuerAndSerialNumber (RFC 5652 §5.3 sid)
    signing_certificate_der: bytes  # the signingCertificateV2 attribute
    tsa_name_der: bytes  # TSTInfo.tsa: [0] EXPLICIT directoryName, the unit's subject
    digest_algorithm_der: bytes
    signature_algorithm_der: bytes


def load_signer(row: TimeStampingUnit, key: SigningKey) -> TsaSigner:
    certificate = asn1_x509.Certificate.load(row.certificate_der)
    scheme = signature_scheme(key)
    return TsaSigner(
        unit_id=row.id,
        name=row.name,
        key_uri=row.key_uri,
        certificate=x509.load_der_x509_certificate(row.certificate_der),
        scheme=scheme,
        certificate_der=row.certificate_der,
        signer_id_der=asn1_cms.IssuerAndSerialNumber(
            {"issuer": certificate.issuer, "serial_number": certificate.serial_number}
        ).dump(),
        signing_certificate_der=ess_cert_id_v2(certificate).dump(),
        tsa_name_der=asn1_x509.GeneralName(name="directory_name", value=certificate.subject)
        .retag({"explicit": 0})
        .dump(),
        digest_algorithm_der=asn1_algos.DigestAlgorithm({"algorithm": scheme.digest}).dump(),
        signature_algorithm_der=scheme.algorithm.dump(),
    )


@dataclass
class TsaSignerCache:
    """The newest active TSA unit, read again every SIGNER_CACHE_SECONDS."""

    _signer: TsaSigner | None = None
    _loaded_at: float = -1e9
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def is_fresh(self) -> bool:
        return time.monotonic() - self._loaded_at < SIGNER_CACHE_SECONDS

    def cached(self) -> TsaSigner | None:
        return self._signer

    def current(self, session: Session, key_of: Callable[[str], SigningKey]) -> TsaSigner | None:
        if self.is_fresh():
            return self._signer
        row = session.scalar(
            select(TimeStampingUnit)
            .where(TimeStampingUnit.active.is_(True))
            .order_by(TimeStampingUnit.id.desc())
            .limit(1)
        )
        signer = None
        if row is not None:
            cached = self._signer
            signer = (
                cached
                if cached is not None and cached.unit_id == row.id
                else load_signer(row, key_of(row.key_uri))
            )
        with self._lock:
            self._signer = signer
            self._loaded_at = time.monotonic()
        return signer

    def forget(self) -> None:
        self._loaded_at = -1e9
