"""Public status publication: CRLs (RFC 5280 §5), CA certificates for caIssuers (RFC 5280
§4.2.2.1) and the OCSP responder over HTTP (RFC 6960 Appendix A).

No authentication: relying parties anywhere must be able to check a signature. These routes
stay off the IdP's request-scope machinery (no session cookie, CSRF or locale work) because the
OCSP responder's budget is one primary-key read for an answer without a nonce (pre-produced,
ca_admin.preproduced_ocsp) and about one signature with a nonce: one autocommit read in the
thread pool, no ORM session, certificates and CertID hashes computed once in
``runtime.authorities``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from datetime import datetime
from email.utils import format_datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ca_admin import ocsp
from ca_admin.models import PartitionCrl, PublishedCrl
from ca_admin.runtime import CaRuntime
from core.db import is_database_unavailable, transaction
from core.metrics import OCSP_RESPONSES
from keys.errors import KeyUnavailable

log = logging.getLogger("ca_admin")

CRL_MEDIA_TYPE = "application/pkix-crl"  # RFC 2585 §4.2
CERT_MEDIA_TYPE = "application/pkix-cert"  # RFC 2585 §4.1
OCSP_REQUEST_TYPE = "application/ocsp-request"  # RFC 6960 A.1
OCSP_RESPONSE_TYPE = "application/ocsp-response"  # RFC 6960 A.2
# A CRL changes at every revocation; caches may keep it this long at most even if its
# nextUpdate is a day away, so a revocation reaches validators within minutes.
MAX_CRL_CACHE_SECONDS = 300
CA_CERT_CACHE_SECONDS = 3600
# Base64 grows by 4/3, URL-encoding each of '+', '/', '=' by 3: the GET form of a request of
# ocsp.MAX_REQUEST_BYTES is at most this long.
MAX_GET_REQUEST_CHARS = ocsp.MAX_REQUEST_BYTES * 4


def _runtime(request: Request) -> CaRuntime:
    runtime: CaRuntime = request.app.state.ca
    return runtime


def _http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def _seconds_until(runtime: CaRuntime, moment: datetime | None, cap: int) -> int:
    if moment is None:
        return 0
    return max(0, min(cap, int((moment - runtime.clock.now()).total_seconds())))


def _not_found() -> Response:
    return Response(b"not found\n", status_code=404, media_type="text/plain")


# --------------------------------------------------------------------------------------------
# CRL and caIssuers


def _stored_crl(
    runtime: CaRuntime, name: str, partition: int | None
) -> PublishedCrl | PartitionCrl | None:
    with transaction(runtime.session_factory) as session:
        authority = next((a for a in runtime.authorities(session).values() if a.name == name), None)
        if authority is None:
            return None
        published: PublishedCrl | PartitionCrl | None = (
            session.get(PublishedCrl, authority.id)
            if partition is None
            else session.get(PartitionCrl, (authority.id, partition))
        )
        if published is not None:
            session.expunge(published)
        return published


async def crl_endpoint(request: Request) -> Response:
    """The current CRL (full, or of the partition the path names) as stored at its last
    publication; never rebuilt per request."""
    runtime = _runtime(request)
    partition: int | None = request.path_params.get("partition")
    published = await run_in_threadpool(
        _stored_crl, runtime, request.path_params["name"], partition
    )
    if published is None:
        return _not_found()
    # CRL numbers are one sequence per issuer (ca_admin.crl): the number alone is a unique tag.
    etag = f'"crl-{published.authority_id}-{published.crl_number}"'
    headers = {
        "Cache-Control": "public, max-age="
        + str(_seconds_until(runtime, published.next_update, MAX_CRL_CACHE_SECONDS)),
        "Last-Modified": _http_date(published.this_update),
        "Expires": _http_date(published.next_update),
        "ETag": etag,
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(published.der, media_type=CRL_MEDIA_TYPE, headers=headers)


def _authority_certificate(runtime: CaRuntime, name: str) -> x509.Certificate | None:
    # The session opens a connection only when the authority cache is stale.
    with transaction(runtime.session_factory) as session:
        for authority in runtime.authorities(session).values():
            if authority.name == name:
                return authority.certificate
    return None


async def certificate_endpoint(request: Request) -> Response:
    """One DER certificate, as RFC 5280 §4.2.2.1 caIssuers validators expect."""
    runtime = _runtime(request)
    certificate = await run_in_threadpool(
        _authority_certificate, runtime, request.path_params["name"]
    )
    if certificate is None:
        return _not_found()
    return Response(
        certificate.public_bytes(Encoding.DER),
        media_type=CERT_MEDIA_TYPE,
        headers={
            "Cache-Control": f"public, max-age={CA_CERT_CACHE_SECONDS}",
            "Last-Modified": _http_date(certificate.not_valid_before_utc),
        },
    )


# --------------------------------------------------------------------------------------------
# OCSP


def _answer(runtime: CaRuntime, request_der: bytes) -> ocsp.Answer:
    try:
        return ocsp.answer(runtime=runtime, request_der=request_der)
    except Exception as error:
        if isinstance(error, KeyUnavailable):
            log.warning("OCSP answered tryLater: the signing key is unavailable (%s)", error)
        elif is_database_unavailable(error):
            log.warning("OCSP answered tryLater: the database is unavailable")
        else:
            raise
        # RFC 6960 §2.3: tryLater, "the responder is currently unable to give a response":
        # an OCSP client understands it, while an HTTP 503 may read as "responder broken".
        OCSP_RESPONSES.labels("try_later").inc()
        return ocsp.Answer(
            x509_ocsp.OCSPResponseBuilder.build_unsuccessful(
                x509_ocsp.OCSPResponseStatus.TRY_LATER
            ).public_bytes(Encoding.DER),
            "try_later",
        )


def _malformed() -> bytes:
    return x509_ocsp.OCSPResponseBuilder.build_unsuccessful(
        x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    ).public_bytes(Encoding.DER)


def _ocsp_response(body: bytes, headers: dict[str, str] | None = None) -> Response:
    # RFC 6960 A.1: an unsuccessful OCSP status is still an OCSP response, so HTTP 200.
    return Response(body, media_type=OCSP_RESPONSE_TYPE, headers=headers)


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` (never buffers more than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return None
    except ClientDisconnect:
        return None
    return bytes(body)


async def ocsp_post_endpoint(request: Request) -> Response:
    """RFC 6960 A.1: POST with Content-Type application/ocsp-request, DER body."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != OCSP_REQUEST_TYPE:
        return Response(
            b"send the DER OCSPRequest as application/ocsp-request\n",
            status_code=415,
            media_type="text/plain",
            headers={"Accept-Post": OCSP_REQUEST_TYPE},
        )
    body = await read_limited(request, ocsp.MAX_REQUEST_BYTES)
    if body is None:
        return _ocsp_response(_malformed())
    runtime = _runtime(request)
    answer = await run_in_threadpool(_answer, runtime, body)
    # Responses to POST are not cached by HTTP caches (RFC 5019 §5): no cache headers.
    return _ocsp_response(answer.der)


def _decode_get_path(encoded: str) -> bytes | None:
    """RFC 6960 A.1: ``{url}/{url-encoding of base-64 encoding of the DER OCSPRequest}``.

    The router has already percent-decoded the path. Missing padding is tolerated, as some
    clients strip it.
    """
    text = encoded.strip()
    if not text or len(text) > MAX_GET_REQUEST_CHARS:
        return None
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _get_cache_headers(runtime: CaRuntime, answer: ocsp.Answer) -> dict[str, str]:
    """RFC 5019 §6.2, only for answers that are the same for every asker (no nonce)."""
    if answer.this_update is None or answer.next_update is None:
        return {"Cache-Control": "no-store"}
    max_age = _seconds_until(runtime, answer.next_update, 86400)
    return {
        "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate",
        "Last-Modified": _http_date(answer.this_update),
        "Expires": _http_date(answer.next_update),
        # A digest, not the serial and time: a hold and its release within one second give
        # two answers with the same thisUpdate.
        "ETag": '"' + hashlib.sha256(answer.der).hexdigest()[:32] + '"',
    }


async def ocsp_get_endpoint(request: Request) -> Response:
    """RFC 6960 A.1 GET; the request may contain '/', hence the path converter."""
    request_der = _decode_get_path(request.path_params["encoded"])
    if request_der is None:
        return _ocsp_response(_malformed(), {"Cache-Control": "no-store"})
    runtime = _runtime(request)
    answer = await run_in_threadpool(_answer, runtime, request_der)
    headers = _get_cache_headers(runtime, answer)
    if "ETag" in headers and request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return _ocsp_response(answer.der, headers)


def status_routes() -> list[Route]:
    return [
        Route("/ca/crl/{name}.crl", crl_endpoint, methods=["GET"]),
        Route("/ca/crl/{name}/{partition:int}.crl", crl_endpoint, methods=["GET"]),
        Route("/ca/certs/{name}.cer", certificate_endpoint, methods=["GET"]),
        Route("/ca/ocsp", ocsp_post_endpoint, methods=["POST"]),
        Route("/ca/ocsp/{encoded:path}", ocsp_get_endpoint, methods=["GET"]),
    ]
