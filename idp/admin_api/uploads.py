"""Receiving an import file over HTTP without ever holding more than the limit.

Two ways to send it: ``multipart/form-data`` with the file in the field ``file`` (what a browser
form sends), or the raw bytes with ``Content-Type: text/csv`` or the XLSX media type and the
name in the ``filename`` query parameter (what a script sends). Either way the body is refused
with 413 as soon as it is known to be too large: at once when ``Content-Length`` says so, else
while counting the bytes that arrive (a chunked body has no length), and it is streamed to a
spool file, never collected in memory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from core.errors import DomainError
from core.web.i18n import N_
from idp.bulk_import.reading import MAX_FILE_BYTES

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RAW_MEDIA_TYPES = frozenset({"text/csv", "application/csv", XLSX_MEDIA_TYPE})
# Room for the multipart boundaries and part headers around a file of the full size.
MULTIPART_OVERHEAD = 64 * 1024
MAX_FILENAME = 200
_COPY_CHUNK = 1024 * 1024


class UploadTooLarge(DomainError):
    status_code = 413
    code = "request_too_large"


class BadUpload(DomainError):
    code = "invalid_request"


class UnsupportedMediaType(DomainError):
    status_code = 415
    code = "unsupported_media_type"


def _too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(
        N_("The file is larger than %(limit)s MB. Split it into smaller files."),
        field="file",
        limit=limit // 1_048_576,
    )


def _clean_name(name: str | None, default: str) -> str:
    # Only a label for the job and the audit trail: no path, no control characters.
    base = os.path.basename((name or "").replace("\\", "/"))
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return cleaned[:MAX_FILENAME] or default


async def receive_upload(
    request: Request, destination: Path, *, limit: int = MAX_FILE_BYTES
) -> str:
    """Write the uploaded file to ``destination`` (owner-only) and return its name."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    multipart = media_type == "multipart/form-data"
    if not multipart and media_type not in RAW_MEDIA_TYPES:
        raise UnsupportedMediaType(
            N_(
                "Send the file as multipart/form-data (field “file”), or as the body with "
                "Content-Type text/csv or the XLSX media type."
            )
        )
    body_limit = limit + MULTIPART_OVERHEAD if multipart else limit
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadUpload(N_("The Content-Length header is not a number."))
        if int(declared) > body_limit:
            raise _too_large(limit)
    destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if multipart:
            return await _receive_multipart(request, destination, limit, body_limit)
        return await _receive_raw(request, destination, limit, media_type)
    except ClientDisconnect:
        raise BadUpload(N_("The upload was interrupted.")) from None


async def _receive_raw(request: Request, destination: Path, limit: int, media_type: str) -> str:
    received = 0
    descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(descriptor, "wb") as handle:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _too_large(limit)
            handle.write(chunk)
    default = "upload.xlsx" if media_type == XLSX_MEDIA_TYPE else "upload.csv"
    return _clean_name(request.query_params.get("filename"), default)


async def _receive_multipart(
    request: Request, destination: Path, limit: int, body_limit: int
) -> str:
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > body_limit:
                raise _too_large(limit)
        return message

    counted = Request(request.scope, counting_receive)
    try:
        form = await counted.form(max_files=1, max_fields=8)
    except MultiPartException as error:
        raise BadUpload(
            N_("The multipart body is malformed (%(reason)s)."), reason=error.message
        ) from None
    try:
        upload: Any = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadUpload(N_("The form has no file in the field “file”."), field="file")
        if upload.size is not None and upload.size > limit:
            raise _too_large(limit)
        descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "wb") as handle:
            await upload.seek(0)
            # Up to 50 MB of disk copying: not on the event loop.
            await run_in_threadpool(shutil.copyfileobj, upload.file, handle, _COPY_CHUNK)
        return _clean_name(upload.filename, "upload.csv")
    finally:
        await form.close()
