"""One-time activation codes for imported officials, and the per-unit files that carry them.

A new official gets no password: a random code that the IT department hands out (on paper, or
read aloud on the phone) and the official exchanges for a password on the activation page.

The code is 12 characters of Crockford's base32 (https://www.crockford.com/base32.html: digits
and capitals without I, L, O, U), 60 bits, shown in groups of four (``7KQ2-M9XD-4TRB``). It is
read back case-insensitively, ignoring spaces and hyphens, with Crockford's decoding of the
look-alikes (I and L are 1, O is 0). Only a SHA-256 digest of its canonical form is stored (a
high-entropy value, PITFALLS: never a password hash), salted with the account id: 60 bits are
plenty against guessing through the throttled page, but against a leaked table the salt keeps
an attacker from testing one guess against every outstanding code at once. Codes issued before
this format (22 base64url characters, stored as the plain digest of the code) stay redeemable
until they expire: see :func:`candidate_digests`.

The plaintext codes exist only in the files written here: ``<unit_code>.csv`` per unit,
readable by the owner only. A file lists a code only once the batch that stored it has
committed (:class:`HandoutWriter`), also after ``kill -9`` at any moment.
"""

from __future__ import annotations

import csv
import ctypes
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.opaque_tokens import digest
from core.web.i18n import N_
from idp.official_data import neutralise_formula

ACTIVATION_CODE_LIFETIME = timedelta(days=14)
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
CODE_LENGTH = 12  # 12 x 5 = 60 bits
CODE_GROUP = 4
# What a reader may type for a code: Crockford's decoding of look-alikes, separators dropped.
_CODE_INPUT = str.maketrans({"I": "1", "L": "1", "O": "0", "-": None, " ": None})
_CODE_CHARACTERS = frozenset(CODE_ALPHABET)
_DIGEST_DOMAIN = "commune-sso/activation-code/v2"

# The columns of a hand-out file, in order; their titles are translated (Vietnamese first).
FILE_COLUMNS = (
    "username",
    "full_name",
    "citizen_id",
    "activation_code",
    "expires_at",
    "activation_url",
)
FILE_HEADERS = (
    N_("Username"),
    N_("Full name"),
    N_("Citizen ID"),
    N_("Activation code"),
    N_("Expires at"),
    N_("Activation address"),
)
# Officials read the expiry in the country's time, not UTC. Vietnam keeps +07:00 all year, so
# the fixed offset is the same answer where the zone database is missing (slim images).
try:
    LOCAL_TIME: timezone | ZoneInfo = ZoneInfo("Asia/Ho_Chi_Minh")
except ZoneInfoNotFoundError:  # pragma: no cover - depends on the host
    LOCAL_TIME = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
PENDING_NAME = ".pending.json"


def headers(translate: Callable[[str], str] = str) -> list[str]:
    return [translate(title) for title in FILE_HEADERS]


@dataclass(frozen=True, slots=True)
class IssuedCode:
    unit_code: str
    username: str
    full_name: str
    citizen_id: str
    code: str
    expires_at: datetime
    account_id: int = 0


def new_code(*, account_id: int) -> tuple[str, str]:
    """A fresh code as it is handed out (``XXXX-XXXX-XXXX``) and the digest to store."""
    # One read of the CSPRNG per code (secrets.choice per character costs 12): 60 of 64 bits.
    value = int.from_bytes(secrets.token_bytes(8), "big") >> (64 - 5 * CODE_LENGTH)
    canonical = "".join(
        CODE_ALPHABET[(value >> shift) & 31] for shift in range(5 * (CODE_LENGTH - 1), -1, -5)
    )
    return display_code(canonical), code_digest(account_id=account_id, canonical=canonical)


def display_code(canonical: str) -> str:
    return "-".join(
        canonical[start : start + CODE_GROUP] for start in range(0, len(canonical), CODE_GROUP)
    )


def canonical_code(raw: str) -> str | None:
    """The canonical form of a typed code (``7kq2 m9xd-4trb`` -> ``7KQ2M9XD4TRB``), or None when
    it cannot be a code of the current format."""
    canonical = raw.upper().translate(_CODE_INPUT)
    if len(canonical) != CODE_LENGTH or not _CODE_CHARACTERS.issuperset(canonical):
        return None
    return canonical


def code_digest(*, account_id: int, canonical: str) -> str:
    return hashlib.sha256(f"{_DIGEST_DOMAIN}\0{account_id}\0{canonical}".encode()).hexdigest()


def candidate_digests(*, account_id: int, raw: str) -> list[str]:
    """The stored digests that ``raw`` may redeem: the current format's (when ``raw`` reads as
    one), then the legacy format's (the plain digest of the code as typed, base64url being
    case-sensitive), so codes issued before the change work until they expire."""
    candidates = []
    canonical = canonical_code(raw)
    if canonical is not None:
        candidates.append(code_digest(account_id=account_id, canonical=canonical))
    candidates.append(digest(raw.strip()))
    return candidates


def code_row(*, account_id: int, code_digest: str, now: datetime) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "code_digest": code_digest,
        "created_at": now,
        "expires_at": now + ACTIVATION_CODE_LIFETIME,
        "used_at": None,
    }


def activation_url(issuer: str, username: str) -> str:
    # The code stays out of the URL: URLs end up in browser histories and proxy logs.
    return f"{issuer.rstrip('/')}/activate?username={quote(username, safe='')}"


def file_row(issued: IssuedCode, *, issuer: str) -> list[str]:
    return [
        neutralise_formula(value)
        for value in (
            issued.username,
            issued.full_name,
            issued.citizen_id,
            issued.code,
            issued.expires_at.astimezone(LOCAL_TIME).isoformat(timespec="seconds"),
            activation_url(issuer, issued.username),
        )
    ]


# Which of these stored digests exist (the batch that wrote them committed)?
CommittedDigests = Callable[[Collection[str]], set[str]]


class HandoutWriter:
    """Writes issued codes to ``<output_dir>/<unit_code>.csv`` (UTF-8 with BOM, so that Excel
    shows the Vietnamese names correctly) only once they are committed.

    A batch's codes are first *staged*: written, with the sizes of the files they will extend,
    to a pending file that is fsynced before the batch commits. After the commit they are
    *published* (appended to the unit files, fsynced) and the pending file removed. Whatever
    moment a ``kill -9`` hits, the next run *reconciles*: the unit files are cut back to the
    staged sizes and the staged codes whose digests the database holds are appended again, so
    no file ever lists a code that does not work, and no committed code is lost.
    """

    def __init__(self, output_dir: Path, *, issuer: str, titles: Sequence[str]) -> None:
        self.output_dir = output_dir
        self.issuer = issuer
        self.titles = list(titles)
        self.pending = output_dir / PENDING_NAME
        self._staged: list[IssuedCode] = []

    def stage(self, codes: Sequence[IssuedCode]) -> None:
        self._staged = list(codes)
        if not codes:
            return
        self.output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        sizes = {}
        for unit_code in sorted({issued.unit_code for issued in codes}):
            path = self.output_dir / f"{unit_code}.csv"
            sizes[unit_code] = path.stat().st_size if path.exists() else None
        record = {
            "sizes": sizes,
            "codes": [
                {**_as_record(issued), "expires_at": issued.expires_at.isoformat()}
                for issued in codes
            ],
        }
        temporary = self.pending.with_suffix(".tmp")
        # The codes are secrets until handed out: owner-only permissions from creation on.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "w", encoding="utf-8") as handle:
            json.dump(record, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.pending)
        _fsync_directory(self.output_dir)

    def publish(self) -> list[Path]:
        """Append the staged codes (their batch committed) and drop the pending file."""
        staged, self._staged = self._staged, []
        if not staged:
            return []
        written = self._append(staged)
        self.pending.unlink()
        _fsync_directory(self.output_dir)
        return written

    def reconcile(self, committed: CommittedDigests) -> list[Path]:
        """Finish what an interrupted run left: keep exactly the staged codes that committed."""
        self._staged = []
        record = self._pending_record()
        if record is None:
            return []
        for unit_code, size in record["sizes"].items():
            path = self.output_dir / f"{unit_code}.csv"
            if size is None:
                path.unlink(missing_ok=True)
            elif path.exists():
                with path.open("r+b") as handle:
                    handle.truncate(size)
        staged = [_issued(item) for item in record["codes"]]
        digests = {
            code_digest(
                account_id=issued.account_id, canonical=str(canonical_code(issued.code))
            ): issued
            for issued in staged
        }
        found = committed(list(digests))
        written = self._append([issued for key, issued in digests.items() if key in found])
        self.pending.unlink()
        _fsync_directory(self.output_dir)
        return written

    def _pending_record(self) -> dict[str, Any] | None:
        try:
            text = self.pending.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        loaded: dict[str, Any] = json.loads(text)
        return loaded

    def _append(self, codes: Iterable[IssuedCode]) -> list[Path]:
        by_unit: dict[str, list[IssuedCode]] = {}
        for issued in codes:
            by_unit.setdefault(issued.unit_code, []).append(issued)
        if not by_unit:
            return []
        self.output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        written = []
        for unit_code, issued_codes in sorted(by_unit.items()):
            path = self.output_dir / f"{unit_code}.csv"
            is_new = not path.exists() or path.stat().st_size == 0
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(
                descriptor, "a", encoding="utf-8-sig" if is_new else "utf-8", newline=""
            ) as handle:
                writer = csv.writer(handle)
                if is_new:
                    writer.writerow(self.titles)
                writer.writerows(file_row(issued, issuer=self.issuer) for issued in issued_codes)
            written.append(path)
        _sync_files(self.output_dir, written)
        return written


_ISSUED_FIELDS = tuple(field.name for field in fields(IssuedCode))


def _as_record(issued: IssuedCode) -> dict[str, Any]:
    # dataclasses.asdict deep-copies every value: a quarter of a large import's staging time.
    return {name: getattr(issued, name) for name in _ISSUED_FIELDS}


def _issued(item: dict[str, Any]) -> IssuedCode:
    return IssuedCode(**{**item, "expires_at": datetime.fromisoformat(item["expires_at"])})


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    function = getattr(libc, "syncfs", None)  # Linux; elsewhere every file is synced alone
    if function is None:
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_SYNCFS = _load_syncfs()


def _sync_files(directory: Path, paths: Sequence[Path]) -> None:
    """Make the appended lines durable. A batch extends one file per unit (about a hundred for
    a province): one syncfs(2) of the file system they share costs what two or three fsync(2)
    calls do, where a hundred fsyncs were a quarter of a large import's time."""
    if not paths:
        return
    if _SYNCFS is not None:
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            if _SYNCFS(descriptor) == 0:
                return
        finally:
            os.close(descriptor)
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _fsync_directory(directory: Path) -> None:
    # A rename or an unlink is durable only once the directory itself is synced.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
