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
