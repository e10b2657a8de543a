"""RFC 6960 OCSP responder, signed by each issuing CA's delegated OCSP-signing certificate.

Answers come from the same revocation table as the CRL, so the two never disagree (a validator
that is given both accepts the first good OCSP answer: PITFALLS). Serials we never issued are
``unknown`` (§2.2). Nonces (RFC 8954) are echoed; over 32 octets the request is refused as
``malformedRequest``. Requests about an issuer we do not serve get ``unauthorized`` (§2.3).
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import select
from sqlalchemy.orm import Session

from ca_admin.models import IssuedCertificate
from ca_admin.runtime import CaRuntime, LoadedAuthority, subject_public_key_bits
from ca_admin.serials import serial_hex
from core.metrics import OCSP_RESPONSES

MAX_NONCE_BYTES = 32  # RFC 8954 §2.1
MAX_REQUEST_BYTES = 4096  # a single-certificate request with a nonce is about 100 bytes


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


def _issuer_of(
    request: ocsp.OCSPRequest, authorities: dict[int, LoadedAuthority]
) -> LoadedAuthority | None:
    algorithm = request.hash_algorithm
    for authority in authorities.values():
        if authority.role != "issuing" or authority.ocsp_certificate is None:
            continue
        if isinstance(algorithm, hashes.SHA1):
            name_hash, key_hash = authority.name_hash_sha1, authority.key_hash_sha1
        else:
            name_hash = _digest(algorithm, authority.certificate.subject.public_bytes())
            key_hash = _digest(algorithm, subject_public_key_bits(authority.certificate))
        if request.issuer_name_hash == name_hash and request.issuer_key_hash == key_hash:
            return authority
    return None


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def respond(*, session: Session, runtime: CaRuntime, request_der: bytes) -> bytes:
    """The DER OCSPResponse for a DER OCSPRequest (§4.2.1). Never raises on bad input."""
    answer, status = _respond(session=session, runtime=runtime, request_der=request_der)
    OCSP_RESPONSES.labels(status).inc()
    return answer


_MALFORMED = ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def _respond(*, session: Session, runtime: CaRuntime, request_der: bytes) -> tuple[bytes, str]:
    """The answer and what it said (the metric's label)."""
    if len(request_der) > MAX_REQUEST_BYTES:
        return _unsuccessful(_MALFORMED), "malformed_request"
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        nonce_extension = _nonce(request)
        algorithm = request.hash_algorithm
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType):
        return _unsuccessful(_MALFORMED), "malformed_request"
    except Exception:  # unsupported hash algorithm and similar: still the client's request
        return _unsuccessful(_MALFORMED), "malformed_request"
    if nonce_extension is not None and not 1 <= len(nonce_extension.nonce) <= MAX_NONCE_BYTES:
        return _unsuccessful(_MALFORMED), "malformed_request"
    authority = _issuer_of(request, runtime.authorities(session))
    if authority is None or authority.ocsp_key_uri is None:
        return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED), "unauthorized"
    assert authority.ocsp_certificate is not None
    row = session.execute(
        select(
            IssuedCertificate.status,
            IssuedCertificate.revoked_at,
            IssuedCertificate.revocation_reason,
        ).where(
            IssuedCertificate.serial == serial_hex(request.serial_number),
            IssuedCertificate.authority_id == authority.id,
        )
    ).first()
    now = runtime.clock.now().replace(microsecond=0)
    status, revoked_at, reason = _status(row)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=algorithm,
            cert_status=status,
            this_update=now,
            next_update=now + runtime.ocsp_lifetime,
            revocation_time=revoked_at,
            revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, authority.ocsp_certificate)
        .certificates([authority.ocsp_certificate])
    )
    if nonce_extension is not None:
        builder = builder.add_extension(nonce_extension, critical=False)
    key = runtime.key_store.get(authority.ocsp_key_uri)
    response = builder.sign(key, hashes.SHA256())
    return response.public_bytes(Encoding.DER), status.name.lower()


def _nonce(request: ocsp.OCSPRequest) -> x509.OCSPNonce | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value
    except x509.ExtensionNotFound:
        return None


def _status(
    row: tuple[str, datetime | None, str | None] | None,
) -> tuple[ocsp.OCSPCertStatus, datetime | None, x509.ReasonFlags | None]:
    if row is None:
        return ocsp.OCSPCertStatus.UNKNOWN, None, None
    status, revoked_at, reason = row
    if status == "good":
        return ocsp.OCSPCertStatus.GOOD, None, None
    assert revoked_at is not None
    flag = x509.ReasonFlags(reason) if reason else None
    if flag == x509.ReasonFlags.unspecified:
        flag = None
    return ocsp.OCSPCertStatus.REVOKED, revoked_at.replace(microsecond=0), flag
