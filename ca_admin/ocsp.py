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

A request for several certificates (``cryptography`` parses only one, so those are read with
``asn1crypto``) is always signed live: one BasicOCSPResponse, one SingleResponse per entry, all
signed by one delegated OCSP signer. Its answered CA is that of the first entry we serve;
entries of any other issuer, ours or not, are left out of the answer (a responder answers
for what it can vouch for; a client finds no SingleResponse for the others and asks their own
responder), and ``unauthorized`` only if no entry is ours. More than ``MAX_REQUEST_ENTRIES``
entries is ``malformedRequest``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
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
MAX_REQUEST_ENTRIES = 10  # several certificates in one request: a chain or a signed file's few


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


@dataclass(frozen=True)
class _Entry:
    cert_id: tuple[str, bytes, bytes]
    serial_number: int
    asn1_cert_id: asn1_ocsp.CertId  # echoed as it came in the SingleResponse


@dataclass(frozen=True)
class _SeveralRequest:
    entries: tuple[_Entry, ...]
    nonce: x509.OCSPNonce | None


def _unsuccessful(status: ocsp.OCSPResponseStatus, label: str) -> Answer:
    return Answer(
        ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER), label
    )


_MALFORMED = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
_UNAUTHORIZED = ocsp.OCSPResponseStatus.UNAUTHORIZED


def _parse(request_der: bytes) -> _Request | _SeveralRequest | Answer:
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
        # cryptography refuses a requestList of several entries: only then asn1crypto reads it.
        return _parse_several(request_der) or _unsuccessful(_MALFORMED, "malformed_request")
    if nonce is not None and not 1 <= len(nonce.nonce) <= MAX_NONCE_BYTES:
        return _unsuccessful(_MALFORMED, "malformed_request")
    return parsed


def _parse_several(request_der: bytes) -> _SeveralRequest | Answer | None:
    """A request with two entries or more; None for anything else (the single-entry path)."""
    try:
        request = asn1_ocsp.OCSPRequest.load(request_der, strict=True)
        requests = request["tbs_request"]["request_list"]
        if len(requests) < 2:
            return None
        if len(requests) > MAX_REQUEST_ENTRIES:
            return _unsuccessful(_MALFORMED, "malformed_request")
        entries = []
        for entry in requests:
            cert_id = entry["req_cert"]
            entries.append(
                _Entry(
                    cert_id=(
                        cert_id["hash_algorithm"]["algorithm"].native,
                        cert_id["issuer_name_hash"].native,
                        cert_id["issuer_key_hash"].native,
                    ),
                    serial_number=cert_id["serial_number"].native,
                    asn1_cert_id=cert_id,
                )
            )
        nonce = request.nonce_value
        nonce_bytes = None if nonce is None else nonce.native
    except Exception:  # unparsable: still the client's request
        return _unsuccessful(_MALFORMED, "malformed_request")
    if nonce_bytes is not None and not 1 <= len(nonce_bytes) <= MAX_NONCE_BYTES:
        return _unsuccessful(_MALFORMED, "malformed_request")
    return _SeveralRequest(
        tuple(entries), None if nonce_bytes is None else x509.OCSPNonce(nonce_bytes)
    )


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
            if isinstance(parsed, _SeveralRequest):
                result = _several(
                    connection,
                    runtime,
                    parsed,
                    lambda cert_id: _ocsp_issuer(connection, runtime, cert_id),
                )
            else:
                result = _answer(connection, runtime, parsed)
    OCSP_RESPONSES.labels(result.status).inc()
    return result


def respond(*, session: Session, runtime: CaRuntime, request_der: bytes) -> bytes:
    """The live-signed DER OCSPResponse, read in the caller's session (CLI and tests)."""
    parsed = _parse(request_der)
    if isinstance(parsed, Answer):
        result = parsed
    elif isinstance(parsed, _SeveralRequest):
        result = _several(
            session.connection(),
            runtime,
            parsed,
            lambda cert_id: runtime.ocsp_issuer(session, cert_id),
        )
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


def _ocsp_issuer(
    connection: Connection, runtime: CaRuntime, cert_id: tuple[str, bytes, bytes]
) -> LoadedAuthority | None:
    try:
        return runtime.ocsp_issuer(None, cert_id)
    except StaleAuthorities:  # every few seconds: read the CAs again on this connection
        with Session(bind=connection) as session:
            return runtime.ocsp_issuer(session, cert_id)


def _answer(connection: Connection, runtime: CaRuntime, request: _Request) -> Answer:
    authority = _ocsp_issuer(connection, runtime, request.cert_id)
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


def _several(
    connection: Connection,
    runtime: CaRuntime,
    request: _SeveralRequest,
    ocsp_issuer: Callable[[tuple[str, bytes, bytes]], LoadedAuthority | None],
) -> Answer:
    """One live-signed answer for the entries of the first issuing CA we serve (module doc)."""
    authority: LoadedAuthority | None = None
    answered: list[_Entry] = []
    for entry in request.entries:
        issuer = ocsp_issuer(entry.cert_id)
        if issuer is None or issuer.ocsp_key_uri is None:
            continue
        if authority is None:
            authority = issuer
        if issuer.id == authority.id:
            answered.append(entry)
    if authority is None:
        return _unsuccessful(_UNAUTHORIZED, "unauthorized")
    now = runtime.clock.now().replace(microsecond=0)
    statuses = [
        (
            entry.asn1_cert_id,
            certificate_status(
                connection.execute(
                    _STATUS,
                    {"serial": serial_hex(entry.serial_number), "authority_id": authority.id},
                ).first()
            ),
        )
        for entry in answered
    ]
    der = sign_statuses(
        runtime=runtime,
        authority=authority,
        statuses=statuses,
        this_update=now,
        nonce=request.nonce,
    )
    if request.nonce is not None:
        return Answer(der, "several")
    return Answer(der, "several", now, now + runtime.ocsp_lifetime)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _single_response(
    cert_id: asn1_ocsp.CertId, status: CertificateStatus, this_update: datetime, lifetime: timedelta
) -> asn1_ocsp.SingleResponse:
    if status.status == ocsp.OCSPCertStatus.REVOKED:
        assert status.revoked_at is not None
        revoked: dict[str, object] = {"revocation_time": _utc(status.revoked_at)}
        if status.reason is not None:
            revoked["revocation_reason"] = status.reason.name
        cert_status = asn1_ocsp.CertStatus(name="revoked", value=asn1_ocsp.RevokedInfo(revoked))
    else:
        cert_status = asn1_ocsp.CertStatus(name=status.label, value=asn1_core.Null())
    return asn1_ocsp.SingleResponse(
        {
            "cert_id": cert_id,
            "cert_status": cert_status,
            "this_update": this_update,
            "next_update": this_update + lifetime,
        }
    )


def sign_statuses(
    *,
    runtime: CaRuntime,
    authority: LoadedAuthority,
    statuses: list[tuple[asn1_ocsp.CertId, CertificateStatus]],
    this_update: datetime,
    nonce: x509.OCSPNonce | None = None,
) -> bytes:
    """One signed BasicOCSPResponse with a SingleResponse per certificate, as
    :func:`sign_status` signs one (``cryptography`` builds only single answers)."""
    assert authority.ocsp_certificate is not None and authority.ocsp_key_uri is not None
    this_update = _utc(this_update)
    extensions = []
    if nonce is not None:
        extensions.append(
            {
                "extn_id": "nonce",
                "critical": False,
                "extn_value": asn1_core.OctetString(nonce.nonce),
            }
        )
    response_data = asn1_ocsp.ResponseData(
        {
            "responder_id": asn1_ocsp.ResponderId(
                name="by_key",
                value=x509.SubjectKeyIdentifier.from_public_key(
                    authority.ocsp_certificate.public_key()
                ).digest,
            ),
            "produced_at": this_update,
            "responses": [
                _single_response(cert_id, status, this_update, runtime.ocsp_lifetime)
                for cert_id, status in statuses
            ],
            **({"response_extensions": extensions} if extensions else {}),
        }
    )
    key = runtime.key_store.get(authority.ocsp_key_uri)
    tbs = response_data.dump()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        algorithm = asn1_ocsp.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    elif isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
        algorithm = asn1_ocsp.SignedDigestAlgorithm(
            {"algorithm": "sha256_rsa", "parameters": asn1_core.Null()}
        )
    else:
        raise ValueError(f"unsupported OCSP key type {type(key).__name__}")
    basic = asn1_ocsp.BasicOCSPResponse(
        {
            "tbs_response_data": response_data,
            "signature_algorithm": algorithm,
            "signature": signature,
            "certs": [
                asn1_x509.Certificate.load(authority.ocsp_certificate.public_bytes(Encoding.DER))
            ],
        }
    )
    return asn1_ocsp.OCSPResponse(
        {
            "response_status": "successful",
            "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
        }
    ).dump()
