"""RFC 3161 time-stamp protocol (with RFC 5816's ESSCertIDv2): a TimeStampReq in, a
TimeStampResp out, never an exception for what the client sent.

Checks, each answered as RFC 3161 §2.4.2 names it (status ``rejection`` with a PKIFailureInfo):

* not DER of a TimeStampReq, or longer than ``MAX_REQUEST_BYTES``: ``badDataFormat``;
* version other than 1, or a hashedMessage whose length is not its algorithm's: ``badRequest``;
* a hash other than SHA-256/384/512 (SHA-1 among them: collisions are practical): ``badAlg``;
* a reqPolicy other than ours (``runtime.tsa_policy``): ``unacceptedPolicy``;
* any request extension (we support none, §2.4.1): ``unacceptedExtension``;
* no TSA unit set up, its key unavailable, or the record not committed: ``systemFailure``.

A granted token (§2.4.2): TSTInfo version 1, our policy, the imprint echoed, a random 128-bit
serial that the ledger's primary key makes unique, genTime in milliseconds, the configured
accuracy, the nonce echoed, ``tsa`` naming the unit; a SignedData (RFC 5652) whose signed
attributes are contentType id-ct-TSTInfo, messageDigest and signingCertificateV2 (§2.4.2 via
RFC 5816); the unit's certificate included when certReq is true (§2.4.1).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import core as asn1_core
from asn1crypto import tsp as asn1_tsp
from sqlalchemy.orm import Session

from ca_admin import der_encoding as der
from ca_admin.runtime import CaRuntime
from ca_admin.serials import new_serial
from ca_admin.time_stamp_ledger import TokenRecord
from ca_admin.tsa_signer import TsaSigner, sign
from core.db import transaction
from keys.signing_keys import signs_in_process

log = logging.getLogger("ca_admin")

MAX_REQUEST_BYTES = 4096  # a request with a SHA-512 imprint, nonce and policy is ~150 bytes
MAX_NONCE_BYTES = 64  # openssl sends 8; a bigger INTEGER is no nonce anybody needs
ACCEPTED_HASHES = {"sha256": 32, "sha384": 48, "sha512": 64}
REQUEST_MEDIA_TYPE = "application/timestamp-query"  # RFC 3161 §3.4
REPLY_MEDIA_TYPE = "application/timestamp-reply"


@dataclass(frozen=True)
class Reply:
    """A DER TimeStampResp and its outcome: ``granted`` or the PKIFailureInfo name."""

    der: bytes
    outcome: str
    serial: int | None = None


class _TimeStampRespWithoutToken(asn1_core.Sequence):
    """TimeStampResp with its optional timeStampToken absent (§2.4.2), which asn1crypto's
    TimeStampResp declares mandatory."""

    _fields = [("status", asn1_tsp.PKIStatusInfo)]  # noqa: RUF012 (asn1crypto's spec)


def rejection(failure: str, text: str) -> Reply:
    """A TimeStampResp without token: status rejection, the reason as PKIFailureInfo."""
    response = _TimeStampRespWithoutToken(
        {
            "status": {
                "status": "rejection",
                "status_string": [text],
                "fail_info": asn1_tsp.PKIFailureInfo({failure}),
            }
        }
    )
    return Reply(response.dump(), failure)


@dataclass(frozen=True)
class _Request:
    hash_algorithm: str
    message_imprint_der: bytes
    hashed_message: bytes
    nonce: int | None
    cert_req: bool


def _parse(request_der: bytes, policy: str) -> _Request | Reply:
    if len(request_der) > MAX_REQUEST_BYTES:
        return rejection("bad_data_format", "request too long")
    try:
        request = asn1_tsp.TimeStampReq.load(request_der, strict=True)
        version = request["version"].native
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        hashed_message = imprint["hashed_message"].native
        requested_policy = request["req_policy"].native
        nonce = request["nonce"].native
        cert_req = bool(request["cert_req"].native)
        has_extensions = request["extensions"].native is not None
    except Exception:  # anything asn1crypto cannot read is the client's malformed request
        return rejection("bad_data_format", "not a DER TimeStampReq")
    if version != "v1":
        return rejection("bad_request", "only version 1 requests are understood")
    if algorithm not in ACCEPTED_HASHES:
        return rejection("bad_alg", "hash algorithm not accepted: use SHA-256, SHA-384 or SHA-512")
    if len(hashed_message) != ACCEPTED_HASHES[algorithm]:
        return rejection("bad_request", "hashedMessage does not have its algorithm's length")
    if requested_policy is not None and requested_policy != policy:
        return rejection("unaccepted_policy", f"this TSA issues tokens under policy {policy} only")
    if has_extensions:
        return rejection("unaccepted_extensions", "no request extension is supported")
    if nonce is not None and (nonce < 0 or (nonce.bit_length() + 7) // 8 > MAX_NONCE_BYTES):
        return rejection("bad_request", "the nonce must be a positive integer of 64 octets at most")
    return _Request(algorithm, imprint.dump(), hashed_message, nonce, cert_req)


@functools.lru_cache(maxsize=8)
def _accuracy_der(accuracy: timedelta) -> bytes:
    milliseconds = int(accuracy.total_seconds() * 1000)
    seconds, millis = divmod(milliseconds, 1000)
    fields = {}
    if seconds:
        fields["seconds"] = seconds
    if millis:  # §2.4.2: millis 1..999 when present
        fields["millis"] = millis
    return asn1_tsp.Accuracy(fields).dump()


@functools.lru_cache(maxsize=8)
def _oid_der(dotted: str) -> bytes:
    return asn1_core.ObjectIdentifier(dotted).dump()


_OID = {
    name: _oid_der(dotted)
    for name, dotted in {
        "signed_data": "1.2.840.113549.1.7.2",  # RFC 5652 §5.1
        "tst_info": "1.2.840.113549.1.9.16.1.4",  # RFC 3161 §2.4.2 id-ct-TSTInfo
        "content_type": "1.2.840.113549.1.9.3",  # RFC 5652 §11.1
        "message_digest": "1.2.840.113549.1.9.4",  # RFC 5652 §11.2
    }.items()
}
_GRANTED = der.tlv(der.SEQUENCE, der.integer(0))  # PKIStatusInfo { status granted }
_CONTENT_TYPE_ATTRIBUTE = der.tlv(
    der.SEQUENCE, _OID["content_type"], der.tlv(der.SET, _OID["tst_info"])
)
_VERSION_1 = der.integer(1)
_VERSION_3 = der.integer(3)
_IMPLICIT_0 = 0xA0  # [0] constructed: certificates, signedAttrs; [0] EXPLICIT: content


def _tst_info(
    runtime: CaRuntime, signer: TsaSigner, request: _Request, serial: int, gen_time: datetime
) -> bytes:
    """TSTInfo (§2.4.2), fields in their order."""
    return der.tlv(
        der.SEQUENCE,
        _VERSION_1,
        _oid_der(runtime.tsa_policy),
        request.message_imprint_der,  # echoed as the client sent it
        der.integer(serial),
        der.generalized_time(gen_time),
        _accuracy_der(runtime.tsa_accuracy),
        b"" if request.nonce is None else der.integer(request.nonce),
        signer.tsa_name_der,
    )


def _signed_data(
    runtime: CaRuntime,
    signer: TsaSigner,
    request: _Request,
    serial: int,
    client_address: str | None,
) -> tuple[bytes, TokenRecord]:
    now = runtime.clock.now()
    gen_time = now.replace(microsecond=now.microsecond // 1000 * 1000)
    tst_info = _tst_info(runtime, signer, request, serial, gen_time)
    attributes = (
        _CONTENT_TYPE_ATTRIBUTE,
        der.tlv(
            der.SEQUENCE,
            _OID["message_digest"],
            der.tlv(
                der.SET,
                der.tlv(der.OCTET_STRING, hashlib.new(signer.scheme.digest, tst_info).digest()),
            ),
        ),
        signer.signing_certificate_der,
    )
    # RFC 5652 §5.4: the signature covers the attributes as a DER SET OF (sorted); in the
    # SignerInfo the same bytes carry the [0] IMPLICIT tag instead.
    signed_attributes = der.set_of(*attributes)
    key = runtime.key_store.get(signer.key_uri)
    signature = sign(key, signer.scheme, signed_attributes)
    signer_info = der.tlv(
        der.SEQUENCE,
        _VERSION_1,
        signer.signer_id_der,
        signer.digest_algorithm_der,
        bytes([_IMPLICIT_0]) + signed_attributes[1:],
        signer.signature_algorithm_der,
        der.tlv(der.OCTET_STRING, signature),
    )
    signed_data = der.tlv(
        der.SEQUENCE,
        _VERSION_3,  # §5.1: eContentType is not id-data
        der.tlv(der.SET, signer.digest_algorithm_der),
        der.tlv(
            der.SEQUENCE,
            _OID["tst_info"],
            der.tlv(_IMPLICIT_0, der.tlv(der.OCTET_STRING, tst_info)),
        ),
        der.tlv(_IMPLICIT_0, signer.certificate_der) if request.cert_req else b"",
        der.tlv(der.SET, signer_info),
    )
    content_info = der.tlv(der.SEQUENCE, _OID["signed_data"], der.tlv(_IMPLICIT_0, signed_data))
    record = TokenRecord(
        serial=serial,
        unit_id=signer.unit_id,
        unit_name=signer.name,
        gen_time=gen_time,
        policy=runtime.tsa_policy,
        hash_algorithm=request.hash_algorithm,
        message_imprint=request.hashed_message,
        client_address=client_address,
    )
    return der.tlv(der.SEQUENCE, _GRANTED, content_info), record


def current_signer(runtime: CaRuntime, session: Session | None = None) -> TsaSigner | None:
    """The newest active TSA unit (cached for a few seconds: no database read while fresh),
    or None if there is none."""
    signers = runtime.tsa_signers
    if signers.is_fresh():
        return signers.cached()
    if session is not None:
        return signers.current(session, runtime.key_store.get)
    with transaction(runtime.session_factory) as own:
        return signers.current(own, runtime.key_store.get)


def stamp(*, runtime: CaRuntime, request_der: bytes, client_address: str | None) -> Reply:
    """RFC 3161 §2.4: the TimeStampResp to ``request_der``; the token is recorded and audited
    (``runtime.time_stamp_ledger()``) before it is returned. For a caller in a thread; the
    HTTP endpoint awaits :func:`stamp_on_loop`."""
    parsed = _parse(request_der, runtime.tsa_policy)
    if isinstance(parsed, Reply):
        return parsed
    try:
        signer = current_signer(runtime)
        if signer is None:
            return _NO_UNIT
        serial = new_serial()
        der, record = _signed_data(runtime, signer, parsed, serial, client_address)
        runtime.time_stamp_ledger().record(record)
    except Exception:
        # The key (an HSM token) or the database is unavailable: the client may try again.
        log.exception("time-stamp not issued")
        return _CANNOT_SIGN
    return Reply(der, "granted", serial)


async def stamp_on_loop(
    *, runtime: CaRuntime, request_der: bytes, client_address: str | None
) -> Reply:
    """:func:`stamp` on the event loop: the same reply, without a thread per request.

    Parsing and building the token take tens of microseconds and a file key's signature
    about as long, so they run here; the token's commit joins the ledger's group commit
    (one thread for all the requests of a batch). Only what may wait goes to a thread: the
    unit read from the database every few seconds, a key not loaded yet, and the signature
    of a PKCS#11 key (a device behind the module's lock).
    """
    parsed = _parse(request_der, runtime.tsa_policy)
    if isinstance(parsed, Reply):
        return parsed
    try:
        signers = runtime.tsa_signers
        signer = (
            signers.cached()
            if signers.is_fresh()
            else await asyncio.to_thread(current_signer, runtime)
        )
        if signer is None:
            return _NO_UNIT
        serial = new_serial()
        if signs_in_process(signer.key_uri) and runtime.key_store.loaded(signer.key_uri):
            der, record = _signed_data(runtime, signer, parsed, serial, client_address)
        else:
            der, record = await asyncio.to_thread(
                _signed_data, runtime, signer, parsed, serial, client_address
            )
        await runtime.time_stamp_ledger().record_from_loop(record)
    except Exception:
        log.exception("time-stamp not issued")
        return _CANNOT_SIGN
    return Reply(der, "granted", serial)


_NO_UNIT = rejection("system_failure", "no time-stamping unit is set up")
# The key (an HSM token) or the database is unavailable: the client may try again.
_CANNOT_SIGN = rejection("system_failure", "the time-stamping service cannot sign now")
