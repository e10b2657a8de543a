"""One-time activation codes for imported officials, and the per-unit files that carry them.

A new official gets no password: a random code (stored as its SHA-256 digest, PITFALLS: never a
password hash for a high-entropy value) that the IT department hands out and the official
exchanges for a password on the activation page. The plaintext codes exist only in the files
written here: ``<unit_code>.csv`` per unit, readable by the owner only.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.opaque_tokens import digest, new_opaque_token
from idp.official_data import neutralise_formula

ACTIVATION_CODE_LIFETIME = timedelta(days=14)
# 128 bits: far beyond guessing, and 22 characters that can still be typed from paper.
ACTIVATION_CODE_BYTES = 16
FILE_COLUMNS = ("username", "full_name", "citizen_id", "activation_code", "expires_at")


@dataclass(frozen=True, slots=True)
class IssuedCode:
    unit_code: str
    username: str
    full_name: str
    citizen_id: str
    code: str
    expires_at: datetime


def new_code() -> tuple[str, str]:
    """A fresh code and its digest. Codes never start with "-" (base64url can), so the
    formula guard of the output file never has to alter one."""
    while True:
        code = new_opaque_token(ACTIVATION_CODE_BYTES)
        if code[0].isalnum():
            return code, digest(code)


def code_row(*, account_id: int, code_digest: str, now: datetime) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "code_digest": code_digest,
        "created_at": now,
        "expires_at": now + ACTIVATION_CODE_LIFETIME,
        "used_at": None,
    }


class CodeFileWriter:
    """Appends issued codes to ``<output_dir>/<unit_code>.csv`` (UTF-8 with BOM, so that Excel
    shows the Vietnamese names correctly), with a checkpoint to undo a batch that was not
    committed: no file ever lists a code whose account does not exist."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir

    def checkpoint(self) -> dict[Path, int | None]:
        if not self.output_dir.exists():
            return {}
        return {path: path.stat().st_size for path in self.output_dir.glob("*.csv")}

    def restore(self, checkpoint: dict[Path, int | None]) -> None:
        if not self.output_dir.exists():
            return
        for path in self.output_dir.glob("*.csv"):
            size = checkpoint.get(path)
            if size is None:
                path.unlink()
            else:
                with path.open("r+b") as handle:
                    handle.truncate(size)

    def append(self, codes: Iterable[IssuedCode]) -> list[Path]:
        by_unit: dict[str, list[IssuedCode]] = {}
        for issued in codes:
            by_unit.setdefault(issued.unit_code, []).append(issued)
        if not by_unit:
            return []
        self.output_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        written = []
        for unit_code, issued_codes in sorted(by_unit.items()):
            path = self.output_dir / f"{unit_code}.csv"
            is_new = not path.exists()
            # The codes are secrets until handed out: owner-only permissions from creation on.
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(
                descriptor, "a", encoding="utf-8-sig" if is_new else "utf-8", newline=""
            ) as handle:
                writer = csv.writer(handle)
                if is_new:
                    writer.writerow(FILE_COLUMNS)
                writer.writerows(
                    [
                        neutralise_formula(value)
                        for value in (
                            issued.username,
                            issued.full_name,
                            issued.citizen_id,
                            issued.code,
                            issued.expires_at.isoformat(timespec="seconds"),
                        )
                    ]
                    for issued in issued_codes
                )
                handle.flush()
                os.fsync(handle.fileno())
            written.append(path)
        return written
