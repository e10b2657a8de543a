"""The import template offered for download: the header row the import reads
(:data:`idp.bulk_import.reading.COLUMNS`, so the two cannot drift) and one example row that
passes validation, as CSV (UTF-8 with BOM, as Excel saves "CSV UTF-8") and as XLSX (every cell
text, so a spreadsheet keeps the leading zeros of citizen IDs, unit codes and phone numbers).
"""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook
from openpyxl.styles import Font

from idp.bulk_import.reading import COLUMNS

# A made-up official: the citizen ID's prefix (001, Hà Nội), century digit and birth year are
# valid; the unit is Phường Ba Đình (Hà Nội, code 00004); the agency is one of AGENCY_KINDS.
EXAMPLE_ROW: dict[str, str] = {
    "citizen_id": "001090012345",
    "full_name": "Nguyễn Văn Mẫu",
    "username": "nguyen.van.mau",
    "email": "nguyen.van.mau@example.gov.vn",
    "phone": "0912345678",
    "unit_code": "00004",
    "agency": "Ủy ban nhân dân",
    "position": "Chuyên viên",
}
CSV_NAME = "import-template.csv"
XLSX_NAME = "import-template.xlsx"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_TEXT_FORMAT = "@"  # Excel's "Text" number format: typed values keep their leading zeros


def example_cells() -> list[str]:
    return [EXAMPLE_ROW[column] for column in COLUMNS]


def template_csv() -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    writer.writerow(example_cells())
    return ("\ufeff" + text.getvalue()).encode("utf-8")


def template_xlsx() -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "officials"
    sheet.append(list(COLUMNS))
    sheet.append(example_cells())
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for index, column in enumerate(COLUMNS, start=1):
        letter = sheet.cell(row=1, column=index).column_letter
        sheet.column_dimensions[letter].width = max(len(column), len(EXAMPLE_ROW[column])) + 4
        sheet.column_dimensions[letter].number_format = _TEXT_FORMAT
        sheet.cell(row=2, column=index).number_format = _TEXT_FORMAT
    sheet.freeze_panes = "A2"
    output = io.BytesIO()
    workbook.save(output)
    return output.getvalue()
