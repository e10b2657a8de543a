"""RFC 6960 OCSP responder, signed by each issuing CA's delegated OCSP-signing certificate.

Two ways to an answer:

* **Pre-produced** (RFC 5019 §2.2.1, RFC 6960 §2.4): a request without a nonce, with the SHA-1
  CertID of RFC 5019 §2.1.1, is answered with the signed bytes stored for its certificate
  (``ca_admin.preproduced_ocsp``): one primary-key read on a pooled connection, no signature.
  Those bytes are replaced in the same transaction as every status change, so they never
  disagree with the CRL.
* **Live**: a request with a nonce (RFC 8954: echoed; over 32 octets refused as
  ``malformedRequest``), another CertID hash, a serial without a stored answer (one we never
  issued is ``unknown``, §2.2) or an answer past its nextUpdate is signed on the spot from the
  same revocation table as the CRL (a validator that is given both accepts the first good
  OCSP answer: PITFALLS).

Requests about an issuer we do not serve get ``unauthorized`` (§2.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from ca_admin.models import IssuedCertificate, PreproducedOcspResponse
from ca_admin.runtime import CaRuntime, LoadedAuthority, StaleAuthorities
from ca_admin.serials import serial_hex
from core.metrics import OCSP_RESPONSES

MAX_NONCE_BYTES = 32  # RFC 8954 §2.1
MAX_REQUEST_BYTES = 4096  # a single-certificate request with a nonce is about 100 bytes
PREPRODUCED_CERT_ID_HASH = "sha1"  # RFC 5019 §2.1.1


@dataclass(frozen=True)
class Answer:
    """A DER OCSPResponse and what it said (the metric's label).

    ``this_update``/``next_update`` are set only for a successful answer without a nonce: the
    same for every asker, so HTTP caches may keep it (RFC 5019 §6.2).
    """

    der: bytes
    status: str
    this_update: datetime | None = None
    next_update: datetime | None = None


@dataclass(frozen=True)
class _Request:
    cert_id: tuple[str, bytes, bytes]  # hash algorithm name, issuerNameHash, issuerKeyHash
    algorithm: hashes.HashAlgorithm
    serial_number: int
    nonce: x509.OCSPNonce | None


def _unsuccessful(status: ocsp.OCSPResponseStatus, label: str) -> Answer:
    return Answer(
        ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER), label
    )


_MALFORMED = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
_UNAUTHORIZED = ocsp.OCSPResponseStatus.UNAUTHORIZED


def _parse(request_der: bytes) -> _Request | Answer:
    if len(request_der) > MAX_REQUEST_BYTES:
        return _unsuccessful(_MALFORMED, "malformed_request")
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        nonce = _nonce(request)
        algorithm = request.hash_algorithm
        parsed = _Request(
            cert_id=(algorithm.name, request.issuer_name_hash, request.issuer_key_hash),
            algorithm=algorithm,
            serial_number=request.serial_number,
            nonce=nonce,
        )
    except Exception:  # unparsable, unsupported hash algorithm...: still the client's request
        return _unsuccessful(_MALFORMED, "malformed_request")
    if nonce is not None and not 1 <= len(nonce.nonce) <= MAX_NONCE_BYTES:
        return _unsuccessful(_MALFORMED, "malformed_request")
    return parsed


def _nonce(request: ocsp.OCSPRequest) -> x509.OCSPNonce | None:
    try:
        return request.extensions.get_extension_for_class(x509.OCSPNonce).value
    except x509.ExtensionNotFound:
        return None


def answer(*, runtime: CaRuntime, request_der: bytes) -> Answer:
    """The answer to a DER OCSPRequest (§4.2.1), pre-produced when it can be. Never raises on
    bad input; database errors propagate (the route turns them into ``tryLater``)."""
    parsed = _parse(request_der)
    if isinstance(parsed, Answer):
        result = parsed
    else:
        # Autocommit: each SELECT is its own transaction, no BEGIN/COMMIT round trips.
        with runtime.autocommit_engine().connect() as connection:
            result = _answer(connection, runtime, parsed)
    OCSP_RESPONSES.labels(result.status).inc()
    return result


def respond(*, session: Session, runtime: CaRuntime, request_der: bytes) -> bytes:
    """The live-signed DER OCSPResponse, read in the caller's session (CLI and tests)."""
    parsed = _parse(request_der)
    if isinstance(parsed, Answer):
        result = parsed
    else:
        authority = runtime.ocsp_issuer(session, parsed.cert_id)
        result = _live(session.connection(), runtime, authority, parsed)
    OCSP_RESPONSES.labels(result.status).inc()
    return result.der


_PREPRODUCED = select(
    PreproducedOcspResponse.der,
    PreproducedOcspResponse.status,
    PreproducedOcspResponse.this_update,
    PreproducedOcspResponse.next_update,
).where(
    PreproducedOcspResponse.serial == bindparam("serial"),
    PreproducedOcspResponse.authority_id == bindparam("authority_id"),
)


def _answer(connection: Connection, runtime: CaRuntime, request: _Request) -> Answer:
    try:
        authority = runtime.ocsp_issuer(None, request.cert_id)
    except StaleAuthorities:  # every few seconds: read the CAs again on this connection
        with Session(bind=connection) as session:
            authority = runtime.ocsp_issuer(session, request.cert_id)
    if (
        authority is not None
        and request.nonce is None
        and request.cert_id[0] == PREPRODUCED_CERT_ID_HASH
    ):
        stored = connection.execute(
            _PREPRODUCED,
            {"serial": serial_hex(request.serial_number), "authority_id": authority.id},
        ).first()
        # Past nextUpdate (maintenance stopped, the certificate expired): signed live instead.
        if stored is not None and stored.next_update > runtime.clock.now():
            return Answer(stored.der, stored.status, stored.this_update, stored.next_update)
    return _live(connection, runtime, authority, request)


_STATUS = select(
    IssuedCertificate.status,
    IssuedCertificate.revoked_at,
    IssuedCertificate.revocation_reason,
).where(
    IssuedCertificate.serial == bindparam("serial"),
    IssuedCertificate.authority_id == bindparam("authority_id"),
)


def _live(
    connection: Connection,
    runtime: CaRuntime,
    authority: LoadedAuthority | None,
    request: _Request,
) -> Answer:
    if authority is None or authority.ocsp_key_uri is None:
        return _unsuccessful(_UNAUTHORIZED, "unauthorized")
    row = connection.execute(
        _STATUS, {"serial": serial_hex(request.serial_number), "authority_id": authority.id}
    ).first()
    now = runtime.clock.now().replace(microsecond=0)
    status = certificate_status(row)
    _, name_hash, key_hash = request.cert_id
    der = sign_status(
        runtime=runtime,
        authority=authority,
        algorithm=request.algorithm,
        issuer_name_hash=name_hash,
        issuer_key_hash=key_hash,
        serial_number=request.serial_number,
        status=status,
        this_update=now,
        nonce=request.nonce,
    )
    if request.nonce is not None:
        return Answer(der, status.label)
    return Answer(der, status.label, now, now + runtime.ocsp_lifetime)


@dataclass(frozen=True)
class CertificateStatus:
    """RFC 6960 §2.2 certStatus of one certificate, as the revocation table says."""

    status: ocsp.OCSPCertStatus
    revoked_at: datetime | None = None
    reason: x509.ReasonFlags | None = None

    @property
    def label(self) -> str:
        return self.status.name.lower()


_UNKNOWN = CertificateStatus(ocsp.OCSPCertStatus.UNKNOWN)
_GOOD = CertificateStatus(ocsp.OCSPCertStatus.GOOD)


def certificate_status(
    row: tuple[str, datetime | None, str | None] | None,
) -> CertificateStatus:
    """From (status, revoked_at, revocation_reason) of ``ca_certificate``; None: never issued."""
    if row is None:
        return _UNKNOWN
    status, revoked_at, reason = row
    if status == "good":
        return _GOOD
    assert revoked_at is not None
    flag = x509.ReasonFlags(reason) if reason else None
    if flag == x509.ReasonFlags.unspecified:
        flag = None  # RFC 5280 §5.3.1: unspecified SHOULD be absent
    return CertificateStatus(ocsp.OCSPCertStatus.REVOKED, revoked_at.replace(microsecond=0), flag)


def sign_status(
    *,
    runtime: CaRuntime,
    authority: LoadedAuthority,
    algorithm: hashes.HashAlgorithm,
    issuer_name_hash: bytes,
    issuer_key_hash: bytes,
    serial_number: int,
    status: CertificateStatus,
    this_update: datetime,
    nonce: x509.OCSPNonce | None = None,
) -> bytes:
    """One signed BasicOCSPResponse (§4.2.1): responder ID by key hash, the delegated signer's
    certificate included, nextUpdate ``ocsp_lifetime`` after thisUpdate."""
    assert authority.ocsp_certificate is not None and authority.ocsp_key_uri is not None
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=issuer_name_hash,
            issuer_key_hash=issuer_key_hash,
            serial_number=serial_number,
            algorithm=algorithm,
            cert_status=status.status,
            this_update=this_update,
            next_update=this_update + runtime.ocsp_lifetime,
            revocation_time=status.revoked_at,
            revocation_reason=status.reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, authority.ocsp_certificate)
        .certificates([authority.ocsp_certificate])
    )
    if nonce is not None:
        builder = builder.add_extension(nonce, critical=False)
    key = runtime.key_store.get(authority.ocsp_key_uri)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)
