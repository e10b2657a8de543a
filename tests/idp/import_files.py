"""Building import files for tests."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

HEADER = [
    "citizen_id",
    "full_name",
    "username",
    "email",
    "phone",
    "unit_code",
    "agency",
    "position",
]


def cccd(serial: int, *, year: int = 85, female: bool = False) -> str:
    return f"001{1 if female else 0}{year:02d}{serial:06d}"


def csv_bytes(rows: list[list[str]], *, header: list[str] = HEADER, bom: bool = False) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode("utf-8")
    return codecs.BOM_UTF8 + data if bom else data


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def handout_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """The column titles and the rows (keyed by activation.FILE_COLUMNS) of a hand-out file."""
    from idp.bulk_import.activation import FILE_COLUMNS

    titles, *rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    return titles, [dict(zip(FILE_COLUMNS, row, strict=True)) for row in rows]


def stored_digest(session: object, username: str, code: str) -> str:
    """The digest the database holds for ``code`` handed out to ``username``."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from idp.bulk_import.activation import canonical_code, code_digest
    from idp.models import Account

    assert isinstance(session, Session)
    account_id = session.scalar(select(Account.id).where(Account.username == username))
    canonical = canonical_code(code)
    assert account_id is not None and canonical is not None, (username, code)
    return code_digest(account_id=account_id, canonical=canonical)
