"""The CA's REST API for admins and shared apps, under ``/ca/api/v1`` (JSON).

Callers present an access token from our own IdP (RFC 6750 Bearer, see :mod:`bearer`); each
action needs its scope: ``ca:read`` (certificates and requests, PEM downloads), ``ca:request``
(an official requests a certificate for themself: the subject is the token's ``sub``, so a
shared app acts for an official only with that official's token), ``ca:approve`` (approve or
reject; the approver is the token's ``sub``, limited by the IdP's delegated admin roles) and
``ca:revoke`` (revoke, hold, release). Writes go through the ca_admin services, which audit in
the same transaction; each request is one transaction run in the thread pool.

Errors are ``{"error": code, "message": text}`` with the message in the caller's language
(Accept-Language, Vietnamese by default); bad JSON, bad serials, wrong content types and
oversize bodies are 4xx, never 500.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from babel.support import Translations
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import ca_admin
import core
from ca_admin import certificate_requests, revocation, signature_validation
from ca_admin.certificate_requests import Submission
from ca_admin.hierarchy import chain_of
from ca_admin.models import Approval, CertificateRequest, IssuedCertificate
from ca_admin.officials import usernames_of
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial, parse_serial, serial_hex
from ca_admin.web import bearer
from ca_admin.web.bearer import (
    CA_APPROVE,
    CA_READ,
    CA_REQUEST,
    CA_REVOKE,
    CA_VALIDATE,
    Caller,
)
from core.db import transaction
from core.errors import Conflict, DomainError, PermissionDenied
from core.text_search import fold_for_search
from core.web.i18n import DEFAULT_LOCALE, N_, SUPPORTED_LOCALES, load_translations
from core.web.json_body import JsonBodyError, parse_json_body

PREFIX = "/ca/api/v1"
MAX_BODY_BYTES = 64 * 1024
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_IDEMPOTENCY_KEY = 64
PEM_MEDIA_TYPE = "application/x-pem-file"
CERTIFICATE_STATUSES = ("good", "revoked", "hold")
REQUEST_STATUSES = ("pending", "approved", "rejected", "issued")
_LANGUAGE_RANGE = re.compile(
    r"^\s*([A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q=([0-9.]+))?"
)


UNSTORABLE_TEXT = N_("The request holds a NUL character or an unpaired surrogate.")


class BadApiRequest(DomainError):
    code = "invalid_request"


class UnsupportedMediaType(DomainError):
    status_code = 415
    code = "unsupported_media_type"


class BodyTooLarge(DomainError):
    status_code = 413
    code = "request_too_large"


# --------------------------------------------------------------------------------------------
# Language, errors and bodies


def accept_language(header: str | None) -> str:
    """The best supported language of an Accept-Language header (RFC 9110 §12.5.4)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")[:20]):
        match = _LANGUAGE_RANGE.match(part)
        if not match:
            continue
        try:
            quality = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        primary = match.group(1).replace("_", "-").split("-", 1)[0].lower()
        if quality > 0 and primary in SUPPORTED_LOCALES:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LOCALE


def _catalogues() -> dict[str, Translations]:
    # core first, then the CA's catalogue (later ones win for a shared msgid), as the app does.
    return load_translations(
        [Path(core.__file__).parent / "web" / "locale", Path(ca_admin.__file__).parent / "locale"]
    )


def _error_response(
    error: DomainError, translations: dict[str, Translations], request: Request, scope: str
) -> Response:
    catalogue = translations.get(accept_language(request.headers.get("accept-language")))
    translate = catalogue.gettext if catalogue is not None else str
    headers = {"Content-Language": accept_language(request.headers.get("accept-language"))}
    if isinstance(error, bearer.InvalidToken | bearer.InsufficientScope):
        headers["WWW-Authenticate"] = bearer.challenge(error, scope)
    if isinstance(error, bearer.DpopRefused):
        headers["DPoP-Nonce"] = error.nonce
    body: dict[str, Any] = {"error": error.code, "message": error.text(translate)}
    if error.field:
        body["field"] = error.field
    return JSONResponse(body, status_code=error.status_code, headers=headers)


async def _json_body(request: Request) -> dict[str, Any]:
    """The JSON object sent, or {} for an empty body (approve, hold and release need none)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise BodyTooLarge(N_("The request body is too large (at most 64 KB)."))
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BodyTooLarge(N_("The request body is too large (at most 64 KB)."))
    except ClientDisconnect:
        raise BadApiRequest(N_("The request body is not valid JSON.")) from None
    if not body.strip():
        return {}
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType(N_("Send the request body as application/json."))
    try:
        data = parse_json_body(bytes(body), max_bytes=MAX_BODY_BYTES)
    except JsonBodyError as error:
        if error.reason == JsonBodyError.UNSTORABLE_TEXT:
            raise BadApiRequest(UNSTORABLE_TEXT) from None
        raise BadApiRequest(N_("The request body is not valid JSON.")) from None
    if not isinstance(data, dict):
        raise BadApiRequest(N_("The request body must be a JSON object."))
    return data


def _text(
    data: dict[str, Any], name: str, *, required: bool = False, limit: int = 500
) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadApiRequest(N_("The field %(field)s is required."), field=name)
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadApiRequest(N_("The field %(field)s must be a short text."), field=name)
    return value


def _whole_number(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 100_000:
        raise BadApiRequest(N_("The field %(field)s must be a positive whole number."), field=name)
    return value


def _moment(text: str | None, name: str) -> datetime | None:
    """An RFC 3339 date-time (a timezone is required; a bare date means 00:00 UTC)."""
    if text is None or text == "":
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadApiRequest(
            N_("The field %(field)s must be a date-time such as 2026-11-21T08:00:00+07:00."),
            field=name,
        ) from None
    if moment.tzinfo is None:
        if len(text.strip()) > 10:  # a time without an offset is ambiguous
            raise BadApiRequest(
                N_("The field %(field)s must be a date-time such as 2026-11-21T08:00:00+07:00."),
                field=name,
            )
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


# --------------------------------------------------------------------------------------------
# Who may see what


def _reach(session: Session, runtime: CaRuntime, caller: Caller) -> frozenset[str] | None:
    return runtime.approvers.administered_unit_codes(session, actor_ref=caller.subject)


def _visible(
    column_unit: Any, column_subject: Any, reach: frozenset[str] | None, caller: Caller
) -> ColumnElement[bool]:
    """Admins see their units' rows, officials their own (a unit admin is also an official)."""
    own = column_subject == caller.subject
    if reach is None:
        return true()
    if not reach:
        return own
    return or_(own, column_unit.in_(sorted(reach)))


def _may_read(
    session: Session,
    runtime: CaRuntime,
    caller: Caller,
    *,
    subject_ref: str | None,
    unit: str | None,
) -> bool:
    return subject_ref == caller.subject or runtime.approvers.may_administer(
        session, actor_ref=caller.subject, unit_code=unit
    )


def _certificate(
    session: Session, runtime: CaRuntime, caller: Caller, serial: str
) -> IssuedCertificate:
    certificate = revocation.find_certificate(session, serial)
    if not _may_read(
        session,
        runtime,
        caller,
        subject_ref=certificate.subject_ref,
        unit=certificate.unit_code,
    ):
        raise PermissionDenied(N_("You do not administer this official's unit."))
    return certificate


# --------------------------------------------------------------------------------------------
# Representations


def _authority_names(session: Session, runtime: CaRuntime) -> dict[int, str]:
    return {a.id: a.name for a in runtime.authorities(session).values()}


def certificate_json(row: IssuedCertificate, issuers: dict[int, str]) -> dict[str, Any]:
    return {
        "serial": openssl_serial(row.serial),
        "status": row.status,
        "profile": row.profile,
        "subject": row.subject,
        "common_name": row.common_name,
        "subject_ref": row.subject_ref,
        "unit_code": row.unit_code,
        "issuer": issuers.get(row.authority_id),
        "not_before": _iso(row.not_before),
        "not_after": _iso(row.not_after),
        "issued_at": _iso(row.issued_at),
        "revoked_at": _iso(row.revoked_at),
        "revocation_reason": row.revocation_reason,
        "invalidity_date": _iso(row.invalidity_date),
    }


def request_json(session: Session, runtime: CaRuntime, row: CertificateRequest) -> dict[str, Any]:
    """A request; who asked and who approved by username (``subject_ref`` is the holder)."""
    approvers = session.scalars(
        select(Approval.approver).where(Approval.request_id == row.id).order_by(Approval.id)
    ).all()
    names = usernames_of(runtime.directory, session, [row.requested_by, *approvers])
    serial = (
        session.scalar(
            select(IssuedCertificate.serial).where(IssuedCertificate.id == row.certificate_id)
        )
        if row.certificate_id
        else None
    )
    return {
        "id": row.request_id,
        "status": row.status,
        "profile": row.profile,
        "subject_ref": row.subject_ref,
        "full_name": (row.identity or {}).get("full_name"),
        "unit_code": row.unit_code,
        "server_keygen": row.server_keygen,
        "validity_days": row.validity_days,
        "requested_by": names[row.requested_by],
        "requested_at": _iso(row.requested_at),
        "approvals_required": row.approvals_required,
        "approved_by": [names[approver] for approver in approvers],
        "decided_at": _iso(row.decided_at),
        "decision_reason": row.decision_reason,
        "certificate_serial": openssl_serial(serial) if serial else None,
    }


def _page(limit_text: str | None, cursor_text: str | None) -> tuple[int, int | None]:
    try:
        limit = int(limit_text) if limit_text else DEFAULT_PAGE
        cursor = int(cursor_text) if cursor_text else None
    except ValueError:
        raise BadApiRequest(N_("limit and cursor must be whole numbers.")) from None
    if not 1 <= limit <= MAX_PAGE or (cursor is not None and cursor < 1):
        raise BadApiRequest(N_("limit must be between 1 and 200."))
    return limit, cursor


def _choice(value: str | None, allowed: Iterable[str], name: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise BadApiRequest(
            N_("%(field)s must be one of: %(allowed)s."), field=name, allowed=", ".join(allowed)
        )
    return value


# --------------------------------------------------------------------------------------------
# Actions (each runs in the thread pool inside one transaction)


@dataclass(frozen=True)
class Call:
    """What an action gets: the request's data read on the event loop, and the caller."""

    runtime: CaRuntime
    session: Session
    caller: Caller
    path: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any]
    headers: dict[str, str]


Result = tuple[int, Any] | Response


def list_certificates(call: Call) -> Result:
    session, runtime, query = call.session, call.runtime, call.query
    limit, cursor = _page(query.get("limit"), query.get("cursor"))
    reach = _reach(session, runtime, call.caller)
    statement = select(IssuedCertificate).where(
        _visible(IssuedCertificate.unit_code, IssuedCertificate.subject_ref, reach, call.caller)
    )
    unit = query.get("unit")
    if unit:
        if reach is not None and unit not in reach:
            raise PermissionDenied(N_("You do not administer this official's unit."))
        statement = statement.where(IssuedCertificate.unit_code == unit)
    status = _choice(query.get("status"), CERTIFICATE_STATUSES, "status")
    if status:
        statement = statement.where(IssuedCertificate.status == status)
    expiring = _moment(query.get("expiring_before"), "expiring_before")
    if expiring:
        statement = statement.where(IssuedCertificate.not_after < expiring)
    text = (query.get("q") or "").strip()[:100]
    if text:
        statement = statement.where(_search(text))
    if cursor is not None:
        statement = statement.where(IssuedCertificate.id < cursor)
    rows = session.scalars(statement.order_by(IssuedCertificate.id.desc()).limit(limit + 1)).all()
    issuers = _authority_names(session, runtime)
    more = len(rows) > limit
    rows = rows[:limit]
    return 200, {
        "items": [certificate_json(row, issuers) for row in rows],
        "next_cursor": str(rows[-1].id) if more else None,
    }


def _search(text: str) -> ColumnElement[bool]:
    """A name (diacritics and case ignored), a citizen ID, or a serial number."""
    conditions = [IssuedCertificate.search_name.contains(fold_for_search(text), autoescape=True)]
    if text.isdigit() and len(text) == 12:
        conditions.append(IssuedCertificate.citizen_id == text)
    if len(text) >= 8:  # a name such as "an" is not worth a serial lookup
        with contextlib.suppress(ValueError):
            conditions.append(IssuedCertificate.serial == serial_hex(parse_serial(text)))
    return or_(*conditions)


def show_certificate(call: Call) -> Result:
    certificate = _certificate(call.session, call.runtime, call.caller, call.path["serial"])
    form = call.query.get("format", "json")
    if form == "pem":
        return _pem(certificate.der, f"{openssl_serial(certificate.serial)}.pem", [])
    if form == "der":
        return Response(
            certificate.der,
            media_type="application/pkix-cert",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="{openssl_serial(certificate.serial)}.cer"'
                )
            },
        )
    _choice(form, ("json", "pem", "der"), "format")
    return 200, certificate_json(certificate, _authority_names(call.session, call.runtime))


def certificate_chain(call: Call) -> Result:
    """The certificate, then its issuing CA, then the root: what a signer embeds."""
    certificate = _certificate(call.session, call.runtime, call.caller, call.path["serial"])
    chain = chain_of(call.session, call.runtime, certificate.authority_id)
    return _pem(
        certificate.der,
        f"{openssl_serial(certificate.serial)}-chain.pem",
        [ca.public_bytes(Encoding.DER) for ca in chain],
    )


def _pem(der: bytes, filename: str, chain: list[bytes]) -> Response:
    pems = [
        x509.load_der_x509_certificate(item).public_bytes(Encoding.PEM) for item in [der, *chain]
    ]
    return Response(
        b"".join(pems),
        media_type=PEM_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def submit_request(call: Call) -> Result:
    body = call.body
    key = call.headers.get("idempotency-key") or _text(
        body, "idempotency_key", limit=MAX_IDEMPOTENCY_KEY
    )
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise BadApiRequest(
            N_("The idempotency key must be 1 to 64 characters."), field="idempotency_key"
        )
    csr = _text(body, "csr", required=True, limit=MAX_BODY_BYTES)
    assert csr is not None
    earlier = None
    if key:
        earlier = call.session.scalar(
            select(CertificateRequest).where(CertificateRequest.idempotency_key == key)
        )
        # A key names one caller's request: someone else's key must not reveal theirs.
        if earlier is not None and earlier.subject_ref != call.caller.subject:
            raise Conflict(N_("This idempotency key was already used for another request."))
    request = certificate_requests.submit(
        session=call.session,
        runtime=call.runtime,
        actor=call.caller.subject,
        submission=Submission(
            subject_ref=call.caller.subject,
            profile=_text(body, "profile", required=True, limit=64) or "",
            csr=csr.encode("utf-8"),
            validity_days=_whole_number(body, "validity_days"),
            renewal_of_serial=_text(body, "renewal_of", limit=64),
            device_name=_text(body, "device_name", limit=200),
            idempotency_key=key,
        ),
    )
    call.session.flush()
    return (200 if earlier is not None else 201), request_json(call.session, call.runtime, request)


def list_requests(call: Call) -> Result:
    session, query = call.session, call.query
    limit, cursor = _page(query.get("limit"), query.get("cursor"))
    reach = _reach(session, call.runtime, call.caller)
    statement = select(CertificateRequest).where(
        _visible(CertificateRequest.unit_code, CertificateRequest.subject_ref, reach, call.caller)
    )
    status = _choice(query.get("status"), REQUEST_STATUSES, "status")
    if status:
        statement = statement.where(CertificateRequest.status == status)
    unit = query.get("unit")
    if unit:
        if reach is not None and unit not in reach:
            raise PermissionDenied(N_("You do not administer this official's unit."))
        statement = statement.where(CertificateRequest.unit_code == unit)
    if cursor is not None:
        statement = statement.where(CertificateRequest.id < cursor)
    rows = session.scalars(statement.order_by(CertificateRequest.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return 200, {
        "items": [request_json(session, call.runtime, row) for row in rows],
        "next_cursor": str(rows[-1].id) if more else None,
    }


def show_request(call: Call) -> Result:
    request = certificate_requests.find_request(call.session, call.path["request_id"])
    if not _may_read(
        call.session,
        call.runtime,
        call.caller,
        subject_ref=request.subject_ref,
        unit=request.unit_code,
    ):
        raise PermissionDenied(N_("You do not administer this official's unit."))
    return 200, request_json(call.session, call.runtime, request)


def approve_request(call: Call) -> Result:
    request = certificate_requests.approve(
        session=call.session,
        runtime=call.runtime,
        actor=call.caller.subject,
        request_id=call.path["request_id"],
    )
    call.session.flush()
    return 200, request_json(call.session, call.runtime, request)


def reject_request(call: Call) -> Result:
    request = certificate_requests.reject(
        session=call.session,
        runtime=call.runtime,
        actor=call.caller.subject,
        request_id=call.path["request_id"],
        reason=_text(call.body, "reason", required=True) or "",
    )
    return 200, request_json(call.session, call.runtime, request)


def _administered_certificate(call: Call, *, owner_may: bool) -> IssuedCertificate:
    certificate = revocation.find_certificate(call.session, call.path["serial"])
    if owner_may and certificate.subject_ref == call.caller.subject:
        return certificate  # an official may always revoke their own certificate
    if not call.runtime.approvers.may_administer(
        call.session, actor_ref=call.caller.subject, unit_code=certificate.unit_code
    ):
        raise PermissionDenied(N_("You do not administer this official's unit."))
    return certificate


def revoke_certificate(call: Call) -> Result:
    reason = _text(call.body, "reason", limit=40) or "unspecified"
    if reason == "certificateHold":
        raise BadApiRequest(N_("Use the hold action to put a certificate on hold."), field="reason")
    certificate = _administered_certificate(call, owner_may=True)
    revoked = revocation.revoke(
        session=call.session,
        runtime=call.runtime,
        actor=call.caller.subject,
        serial=certificate.serial,
        reason=reason,
        invalidity_date=_moment(_text(call.body, "invalidity_date", limit=40), "invalidity_date"),
    )
    return 200, certificate_json(revoked, _authority_names(call.session, call.runtime))


def hold_certificate(call: Call) -> Result:
    certificate = _administered_certificate(call, owner_may=False)
    held = revocation.revoke(
        session=call.session,
        runtime=call.runtime,
        actor=call.caller.subject,
        serial=certificate.serial,
        reason="certificateHold",
    )
    return 200, certificate_json(held, _authority_names(call.session, call.runtime))


def release_certificate(call: Call) -> Result:
    certificate = _administered_certificate(call, owner_may=False)
    released = revocation.release_hold(
        session=call.session,
        runtime=call.runtime,
        actor=call.caller.subject,
        serial=certificate.serial,
    )
    return 200, certificate_json(released, _authority_names(call.session, call.runtime))


# --------------------------------------------------------------------------------------------
# Plumbing: token, body, transaction, error rendering


Action = Callable[[Call], Result]


def _endpoint(
    action: Action, scope: str, translations: dict[str, Translations], *, body: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        runtime: CaRuntime = request.app.state.ca
        try:
            presented = bearer.presented_token(request, base_url=runtime.base_url)
            data = await _json_body(request) if body else {}
            result = await run_in_threadpool(
                partial(
                    _run,
                    runtime,
                    action,
                    scope,
                    presented,
                    dict(request.path_params),
                    dict(request.query_params),
                    data,
                    {k.lower(): v for k, v in request.headers.items()},
                )
            )
        except DomainError as error:
            return _error_response(error, translations, request, scope)
        if isinstance(result, Response):
            result.headers["Cache-Control"] = "no-store"
            return result
        status, payload = result
        return JSONResponse(payload, status_code=status, headers={"Cache-Control": "no-store"})

    return endpoint


def _run(
    runtime: CaRuntime,
    action: Action,
    scope: str,
    presented: bearer.PresentedToken | None,
    path: dict[str, str],
    query: dict[str, str],
    body: dict[str, Any],
    headers: dict[str, str],
) -> Result:
    with transaction(runtime.session_factory) as session:
        caller = bearer.authenticate(
            session=session, verifier=runtime.access_tokens, presented=presented, needed=scope
        )
        return action(
            Call(
                runtime=runtime,
                session=session,
                caller=caller,
                path=path,
                query=query,
                body=body,
                headers=headers,
            )
        )


# --------------------------------------------------------------------------------------------
# Signature validation: POST /validations with a PDF, or a document and its detached signature

MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries around the files


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise signature_validation.too_large(limit - MULTIPART_OVERHEAD)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise signature_validation.too_large(limit - MULTIPART_OVERHEAD)
    except ClientDisconnect:
        raise BadApiRequest(N_("The request body is incomplete.")) from None
    return bytes(body)


async def _validation_input(request: Request, max_bytes: int) -> dict[str, bytes]:
    """``{"pdf": ...}`` or ``{"document": ..., "signature": ...}`` from a raw application/pdf
    body or a multipart form (``file``, or ``document`` and ``signature``)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == signature_validation.PDF_MEDIA_TYPE:
        return {"pdf": await _bounded_body(request, max_bytes)}
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType(
            N_("Send the PDF as application/pdf, or a multipart/form-data form.")
        )
    # Read (bounded) before parsing: the form parser would spool any size of file to disk.
    body = await _bounded_body(request, max_bytes + MULTIPART_OVERHEAD)

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=2, max_fields=10)
    except Exception:  # a malformed multipart body (python-multipart or Starlette's errors)
        raise BadApiRequest(N_("The multipart form cannot be read.")) from None
    parts: dict[str, bytes] = {}
    for name in ("file", "document", "signature"):
        value = form.get(name)
        if value is None:
            continue
        parts[name] = (
            value.encode("utf-8") if isinstance(value, str) else await value.read(max_bytes + 1)
        )
    await form.close()
    if "file" in parts:
        return {"pdf": parts["file"]}
    if "document" in parts and "signature" in parts:
        return {"document": parts["document"], "signature": parts["signature"]}
    if "document" in parts:
        return {"pdf": parts["document"]}
    raise BadApiRequest(
        N_("Send a field named file (a signed PDF), or document and signature."), field="file"
    )


def _validate(
    runtime: CaRuntime, presented: bearer.PresentedToken, given: dict[str, bytes]
) -> Result:
    with transaction(runtime.session_factory) as session:
        caller = bearer.authenticate(
            session=session, verifier=runtime.access_tokens, presented=presented, needed=CA_VALIDATE
        )
        if "pdf" in given:
            report = signature_validation.validate_pdf(
                session=session, runtime=runtime, pdf=given["pdf"]
            )
        else:
            report = signature_validation.validate_detached(
                session=session,
                runtime=runtime,
                document=given["document"],
                signature=given["signature"],
            )
        signature_validation.record(
            session=session,
            runtime=runtime,
            actor=caller.subject,
            report=report,
            via=f"api:{caller.client_id}"[:100],
        )
        return 200, report.as_json()


def _validation_endpoint(
    translations: dict[str, Translations],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        runtime: CaRuntime = request.app.state.ca
        try:
            presented = bearer.presented_token(request, base_url=runtime.base_url)
            if presented is None:
                # Before reading a large upload: no token, no work.
                raise bearer.MissingToken(
                    N_("An access token is required (Authorization: Bearer).")
                )
            given = await _validation_input(request, runtime.validation_max_bytes)
            result = await run_in_threadpool(_validate, runtime, presented, given)
        except DomainError as error:
            return _error_response(error, translations, request, CA_VALIDATE)
        assert not isinstance(result, Response)
        status, payload = result
        return JSONResponse(payload, status_code=status, headers={"Cache-Control": "no-store"})

    return endpoint


def api_routes() -> list[Route]:
    translations = _catalogues()

    def route(path: str, action: Action, scope: str, method: str = "GET") -> Route:
        endpoint = _endpoint(action, scope, translations, body=method == "POST")
        return Route(PREFIX + path, endpoint, methods=[method])

    return [
        route("/certificates", list_certificates, CA_READ),
        route("/certificates/{serial}", show_certificate, CA_READ),
        route("/certificates/{serial}/chain", certificate_chain, CA_READ),
        route("/certificates/{serial}/revoke", revoke_certificate, CA_REVOKE, "POST"),
        route("/certificates/{serial}/hold", hold_certificate, CA_REVOKE, "POST"),
        route("/certificates/{serial}/release", release_certificate, CA_REVOKE, "POST"),
        route("/requests", list_requests, CA_READ),
        route("/requests", submit_request, CA_REQUEST, "POST"),
        route("/requests/{request_id}", show_request, CA_READ),
        route("/requests/{request_id}/approve", approve_request, CA_APPROVE, "POST"),
        route("/requests/{request_id}/reject", reject_request, CA_APPROVE, "POST"),
        Route(PREFIX + "/validations", _validation_endpoint(translations), methods=["POST"]),
    ]
