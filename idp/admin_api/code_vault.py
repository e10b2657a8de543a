"""Activation codes of an API import, sealed until their one download.

The codes are stored only as SHA-256 digests (``ActivationCode``); their plaintext exists once,
when the import creates the accounts. The CLI writes it to files on the operator's disk; the API
job has no operator at hand, so when the job ends it seals the codes (AES-256-GCM, RFC 5116)
with a key derived from the server secret (HKDF-SHA256, RFC 5869, domain-separated) and keeps
the sealed blob in its job row, bound to the job id as associated data, so a blob copied into
another job does not open. The blob is opened once, for the administrator who started the job
and within :data:`DOWNLOAD_WINDOW` after it ended, and wiped in the same transaction.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from datetime import timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Long enough to fetch the file after a large import; short enough that a forgotten job does
# not keep live secrets around (the codes themselves stay valid for 14 days).
DOWNLOAD_WINDOW = timedelta(hours=24)
_KDF_INFO = b"commune-sso/admin-api/import-activation-codes/v1"
_NONCE_BYTES = 12

# unit code -> rows of the per-unit CSV file (activation.FILE_COLUMNS), already formula-neutralised
CodesByUnit = dict[str, list[list[str]]]


class VaultError(Exception):
    """The sealed blob does not open with this server secret (changed secret, tampering)."""


def _key(server_secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(
        server_secret
    )


def seal(codes: Mapping[str, Sequence[Sequence[str]]], *, server_secret: bytes, job_id: str) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = json.dumps(codes, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    sealed = AESGCM(_key(server_secret)).encrypt(nonce, plaintext, job_id.encode("ascii"))
    return base64.b64encode(nonce + sealed).decode("ascii")


def open_sealed(blob: str, *, server_secret: bytes, job_id: str) -> CodesByUnit:
    try:
        raw = base64.b64decode(blob.encode("ascii"), validate=True)
        plaintext = AESGCM(_key(server_secret)).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], job_id.encode("ascii")
        )
    except (ValueError, InvalidTag) as error:
        raise VaultError("the sealed activation codes do not open") from error
    loaded: CodesByUnit = json.loads(plaintext)
    return loaded


def merge(into: CodesByUnit, more: Mapping[str, Sequence[Sequence[str]]]) -> CodesByUnit:
    for unit_code, rows in more.items():
        into.setdefault(unit_code, []).extend([list(row) for row in rows])
    return into


def as_zip(codes: Mapping[str, Sequence[Sequence[str]]], *, titles: Sequence[str]) -> bytes:
    """One ``<unit_code>.csv`` per unit, the same columns and encoding (UTF-8 with BOM) as the
    files of ``commune-sso import-users``; ``titles`` in the downloader's language."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for unit_code in sorted(codes):
            text = io.StringIO(newline="")
            writer = csv.writer(text)
            writer.writerow(titles)
            writer.writerows(codes[unit_code])
            archive.writestr(f"{unit_code}.csv", "\ufeff" + text.getvalue())
    return buffer.getvalue()
