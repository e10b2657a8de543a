"""Reading an import file (CSV or XLSX) into rows of raw text, before any validation.

A file is refused as a whole (:class:`FileRefused`) when it cannot be read as intended: over
50 MB, more than 200,000 rows, not UTF-8, not valid CSV/XLSX, or a required column missing.
Line numbers are the ones the user sees: the header is line 1, and in a CSV file a record that
spans several physical lines (a quoted newline) counts as one line, as in a spreadsheet.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from core.errors import DomainError
from core.web.i18n import N_
from idp.official_data import fold_for_search

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_ROWS = 200_000  # data rows, the header not counted

COLUMNS = (
    "citizen_id",
    "full_name",
    "username",
    "email",
    "phone",
    "unit_code",
    "agency",
    "position",
)
REQUIRED_COLUMNS = ("citizen_id", "full_name", "unit_code")

# Header aliases, compared after folding (case, diacritics, spaces, "_" and "-" ignored).
_ALIASES: dict[str, tuple[str, ...]] = {
    "citizen_id": (
        "citizen id",
        "cccd",
        "so cccd",
        "ma cccd",
        "can cuoc",
        "so can cuoc",
        "can cuoc cong dan",
        "so can cuoc cong dan",
        "so dinh danh",
        "so dinh danh ca nhan",
        "ma dinh danh",
    ),
    "full_name": ("full name", "name", "ho va ten", "ho ten", "ten day du"),
    "username": ("username", "user name", "ten dang nhap", "tai khoan", "ten tai khoan"),
    "email": ("email", "e mail", "thu dien tu", "dia chi email", "dia chi thu dien tu"),
    "phone": ("phone", "phone number", "so dien thoai", "dien thoai", "sdt", "so dt"),
    "unit_code": (
        "unit code",
        "unit",
        "ma don vi",
        "ma dvhc",
        "ma xa",
        "ma xa phuong",
        "ma don vi hanh chinh",
    ),
    "agency": ("agency", "co quan", "loai co quan"),
    "position": ("position", "title", "chuc vu", "chuc danh"),
}
_HEADER_LOOKUP = {alias: column for column, aliases in _ALIASES.items() for alias in aliases}
_HEADER_NOISE = re.compile(r"[_\-.:*()\[\]]+")

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls format
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16 (Excel “Unicode Text”)"),
    (codecs.BOM_UTF16_BE, "UTF-16 (Excel “Unicode Text”)"),
)
# Bytes that, in Windows-1258, are Vietnamese letters or tone marks (Ă ă Đ đ Ơ ơ Ư ư and the
# combining grave, hook, tilde, acute, dot below): their presence says "Vietnamese ANSI".
_CP1258_VIETNAMESE = frozenset(b"\xc3\xe3\xd0\xf0\xd5\xf5\xdd\xfd\xcc\xd2\xde\xec\xf2")

# %(encoding)s is only ever an encoding's name: every word around it is in the msgid, so that
# --lang vi / Accept-Language: vi shows the whole message in Vietnamese.
NOT_UTF8 = N_("The file is not UTF-8 (looks like %(encoding)s); save it as CSV UTF-8.")
NOT_UTF8_VIETNAMESE_ANSI = N_(
    "The file is not UTF-8 (looks like Windows-1258, Vietnamese ANSI; first non-UTF-8 byte on "
    "line %(line)s); save it as CSV UTF-8."
)
NOT_UTF8_WESTERN_ANSI = N_(
    "The file is not UTF-8 (looks like Windows-1252, Western European ANSI; first non-UTF-8 "
    "byte on line %(line)s); save it as CSV UTF-8."
)


class FileRefused(DomainError):
    """The whole file is refused: nothing is read from it and nothing is stored."""

    code = "file_refused"


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One data row: raw cell texts (stripped, "" when empty) in :data:`COLUMNS` order."""

    line: int
    cells: tuple[str, ...]
    extra_cells: bool = False

    def get(self, column: str) -> str:
        return self.cells[COLUMNS.index(column)]


@dataclass
class ImportFile:
    name: str
    digest: str  # SHA-256 of the bytes, to find an interrupted job of the same file
    format: str  # "csv" | "xlsx"
    columns: tuple[str, ...]  # canonical columns present in the header
    ignored_headers: list[str] = field(default_factory=list)
    rows: list[SourceRow] = field(default_factory=list)


def read_file(
    path: Path, *, max_bytes: int = MAX_FILE_BYTES, max_rows: int = MAX_ROWS
) -> ImportFile:
    """Read ``path`` (CSV or XLSX, chosen by content, not by name) or raise :class:`FileRefused`."""
    size = path.stat().st_size
    if size > max_bytes:
        raise FileRefused(
            N_("The file is %(size)s MB; the limit is %(limit)s MB. Split it into smaller files."),
            field="file",
            size=round(size / 1_048_576, 1),
            limit=max_bytes // 1_048_576,
        )
    data = path.read_bytes()
    return read_bytes(data, name=path.name, max_rows=max_rows)


def read_bytes(data: bytes, *, name: str, max_rows: int = MAX_ROWS) -> ImportFile:
    digest = hashlib.sha256(data).hexdigest()
    if data.startswith(_OLE_MAGIC):
        raise FileRefused(
            N_("This is an old Excel 97-2003 (.xls) file; save it as .xlsx or as CSV UTF-8."),
            field="file",
        )
    if data.startswith(_ZIP_MAGIC):
        header, records = _xlsx_records(data)
        file_format = "xlsx"
    else:
        header, records = _csv_records(_decode(data))
        file_format = "csv"
    positions, ignored = _map_header(header)
    result = ImportFile(
        name=name,
        digest=digest,
        format=file_format,
        columns=tuple(c for c in COLUMNS if c in positions),
        ignored_headers=ignored,
    )
    width = len(header)
    for line, cells in records:
        if not any(cells):
            continue  # a blank line is not an error
        if len(result.rows) >= max_rows:
            raise FileRefused(
                N_("The file has more than %(limit)s rows; split it into smaller files."),
                field="file",
                limit=max_rows,
            )
        values = tuple(
            _fix_numeric(column, cells[positions[column]])
            if column in positions and positions[column] < len(cells)
            else ""
            for column in COLUMNS
        )
        extra = any(cells[width:])
        result.rows.append(SourceRow(line=line, cells=values, extra_cells=extra))
    return result


def fold_header(text: str) -> str:
    return " ".join(_HEADER_NOISE.sub(" ", fold_for_search(text)).split())


def _map_header(header: list[str]) -> tuple[dict[str, int], list[str]]:
    if not any(header):
        raise FileRefused(N_("The file is empty: line 1 must hold the column names."), field="file")
    positions: dict[str, int] = {}
    ignored: list[str] = []
    for index, text in enumerate(header):
        folded = fold_header(text)
        column = folded.replace(" ", "_") if folded.replace(" ", "_") in COLUMNS else None
        column = column or _HEADER_LOOKUP.get(folded)
        if column is None:
            if text:
                ignored.append(text)
            continue
        if column in positions:
            raise FileRefused(
                N_("The column %(column)s appears twice in the header (line 1)."),
                field="file",
                column=column,
            )
        positions[column] = index
    missing = [column for column in REQUIRED_COLUMNS if column not in positions]
    if missing:
        raise FileRefused(
            N_(
                "Required column(s) missing from the header (line 1): %(columns)s. "
                "Download the template to see the expected columns."
            ),
            field="file",
            columns=", ".join(missing),
        )
    return positions, ignored


def _decode(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise FileRefused(NOT_UTF8, field="file", encoding=encoding)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    sample = data[:4096]
    if sample and sample.count(b"\x00") * 4 >= len(sample):
        raise FileRefused(NOT_UTF8, field="file", encoding="UTF-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        message = (
            NOT_UTF8_VIETNAMESE_ANSI
            if any(byte in _CP1258_VIETNAMESE for byte in data if byte >= 0x80)
            else NOT_UTF8_WESTERN_ANSI
        )
        raise FileRefused(message, field="file", line=line) from None


def _csv_records(text: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    first_line = text.split("\n", 1)[0]
    # Excel with a Vietnamese (or other comma-decimal) locale saves "CSV" with semicolons.
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)

    def records() -> Iterator[tuple[int, list[str]]]:
        line = 0
        try:
            for record in reader:
                line += 1
                yield line, [cell.strip() for cell in record]
        except csv.Error as error:
            raise FileRefused(
                N_("The file is not valid CSV near line %(line)s (%(reason)s)."),
                field="file",
                line=line + 1,
                reason=str(error),
            ) from None

    iterator = records()
    header = next(iterator, (1, []))[1]
    return header, iterator


def _xlsx_records(data: bytes) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = workbook.worksheets[0]
        rows: Iterable[tuple[Any, ...]] = sheet.iter_rows(values_only=True)
        iterator = iter(rows)
        header = [_cell_text(value) for value in next(iterator, ())]
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, IndexError) as error:
        raise FileRefused(
            N_("The file is not a valid XLSX workbook (%(reason)s)."),
            field="file",
            reason=type(error).__name__,
        ) from None

    def records() -> Iterator[tuple[int, list[str]]]:
        try:
            for line, values in enumerate(iterator, start=2):
                yield line, [_cell_text(value) for value in values]
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
            raise FileRefused(
                N_("The file is not a valid XLSX workbook (%(reason)s)."),
                field="file",
                reason=type(error).__name__,
            ) from None
        finally:
            workbook.close()

    return header, records()


class _NumericText(str):
    """Text of a cell that was a number in the spreadsheet (so leading zeros may be lost)."""

    __slots__ = ()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return _NumericText(int(value))
    if isinstance(value, int):
        return _NumericText(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _fix_numeric(column: str, text: str) -> str:
    """Undo what a numeric spreadsheet column does to codes (leading zeros dropped).

    Only for cells that were numbers in the XLSX (see :class:`_NumericText`): a CCCD is always
    12 digits starting with 0 and a mobile number 10 with its leading 0, so the padding is
    unambiguous.
    A unit code below 100 is not (ward 00004 or province 04?), so it is left for the row check.
    """
    if not isinstance(text, _NumericText):
        return text
    digits = str(text)
    if column == "citizen_id" and 10 <= len(digits) < 12:
        return digits.zfill(12)  # every CCCD starts with 0: province codes are 001 to 096
    if column == "phone" and len(digits) == 9:
        return "0" + digits
    if column == "unit_code" and 3 <= len(digits) <= 5:
        return digits.zfill(5)
    return digits
