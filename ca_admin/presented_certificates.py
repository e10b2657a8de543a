"""Is a certificate someone presented one of ours, good now, and made for client authentication?

Used when an official signs in with a TLS client certificate (the IdP learns the answer through
the composition root, commune_sso/ca_bridge.py, because idp never imports ca_admin). The
answer comes from our own records, not from the certificate's claims: RFC 5280 §6.1 path
validation reduced to what our hierarchy can be (an issuing CA of ours signed it, directly),
the validity period, and the status column of ``ca_certificate`` that the CRLs and the OCSP
responder are built from (revoked and on hold are both refused), and the clientAuth EKU
(RFC 5280 §4.2.1.12) with digitalSignature in keyUsage (§4.2.1.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from ca_admin.models import Authority, IssuedCertificate
from ca_admin.serials import serial_hex

# Why a presented certificate is refused; the IdP words each for the official.
UNKNOWN_ISSUER = "unknown_issuer"  # no issuing CA of ours signed it
NOT_ISSUED = "not_issued"  # signed by our key but not in our records: never trust it
NOT_YET_VALID = "not_yet_valid"
EXPIRED = "expired"
REVOKED = "revoked"  # revoked or on hold, per ca_certificate.status
NOT_FOR_CLIENT_AUTH = "not_for_client_auth"
CITIZEN_ID_PREFIX = "CCCD:"  # profiles.official_subject writes UID=CCCD:<12 digits>


@dataclass(frozen=True)
class PresentedCertificate:
    """The verdict: ``refusal`` is None for a good certificate; ``citizen_id`` is read from the
    subject (UID=CCCD:...) of a good one, None when it names no official (a device)."""

    refusal: str | None
    serial: str
    citizen_id: str | None = None
    issuer: str | None = None  # our CA's name, for the audit record


def _issuing_authority(session: Session, certificate: x509.Certificate) -> Authority | None:
    # A handful of rows; the certificate's signature, not its issuer name, decides.
    for authority in session.scalars(select(Authority).where(Authority.role == "issuing")):
        issuer_certificate = x509.load_der_x509_certificate(authority.certificate_der)
        if issuer_certificate.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(issuer_certificate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return authority
    return None


def _for_client_auth(certificate: x509.Certificate) -> bool:
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False  # RFC 5280 allows "any", but our profiles always say what a key is for
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        return False
    try:
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return key_usage.digital_signature


def citizen_id_of(certificate: x509.Certificate) -> str | None:
    """The 12-digit citizen ID in the subject's UID=CCCD:..., as our profiles write it."""
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.USER_ID):
        value = attribute.value if isinstance(attribute.value, str) else ""
        if value.startswith(CITIZEN_ID_PREFIX):
            digits = value.removeprefix(CITIZEN_ID_PREFIX)
            if len(digits) == 12 and digits.isascii() and digits.isdigit():
                return digits
    return None


def check_presented(
    session: Session, certificate: x509.Certificate, *, now: datetime
) -> PresentedCertificate:
    """Our verdict on ``certificate`` at ``now`` (see the module docstring)."""
    serial = serial_hex(certificate.serial_number)
    authority = _issuing_authority(session, certificate)
    if authority is None:
        return PresentedCertificate(UNKNOWN_ISSUER, serial)
    row = session.scalar(
        select(IssuedCertificate).where(
            IssuedCertificate.serial == serial, IssuedCertificate.authority_id == authority.id
        )
    )
    if row is None or row.der != certificate.public_bytes(Encoding.DER):
        return PresentedCertificate(NOT_ISSUED, serial, issuer=authority.name)
    if now < certificate.not_valid_before_utc:
        return PresentedCertificate(NOT_YET_VALID, serial, issuer=authority.name)
    if now > certificate.not_valid_after_utc:
        return PresentedCertificate(EXPIRED, serial, issuer=authority.name)
    if row.status != "good":
        return PresentedCertificate(REVOKED, serial, issuer=authority.name)
    if not _for_client_auth(certificate):
        return PresentedCertificate(NOT_FOR_CLIENT_AUTH, serial, issuer=authority.name)
    return PresentedCertificate(
        None, serial, citizen_id=citizen_id_of(certificate), issuer=authority.name
    )
