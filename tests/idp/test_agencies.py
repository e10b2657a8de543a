"""Agency names as officials write them (issue 13, item 8): idp.agencies and the import plan."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import transaction
from core.errors import DomainError
from idp import agencies, units
from idp.bulk_import.plan import build_plan
from idp.bulk_import.reading import read_file
from idp.models import Unit
from idp.runtime import IdpRuntime
from tests.cli_runner import Cli, one_line
from tests.idp.import_files import cccd, csv_bytes, write

WRITTEN = [
    # The 20 % of the province's file that was refused: the Front without "Việt Nam".
    ("Ủy ban Mặt trận Tổ quốc", "fatherland_front"),
    ("Ủy ban Mặt trận Tổ quốc Việt Nam", "fatherland_front"),
    ("Uỷ ban Mặt trận Tổ quốc Việt Nam", "fatherland_front"),  # old tone placement
    ("UB MTTQ phường Cam Đường", "fatherland_front"),
    ("Ủy ban MTTQ VN", "fatherland_front"),
    ("MTTQ", "fatherland_front"),
    ("Mặt trận Tổ quốc", "fatherland_front"),
    ("UBND", "peoples_committee"),
    ("U.B.N.D", "peoples_committee"),
    ("ubnd xã Bảo Hà", "peoples_committee"),
    ("UỶ BAN NHÂN DÂN", "peoples_committee"),
    ("Uy ban nhan dan", "peoples_committee"),
    ("Ủy ban nhân dân phường", "peoples_committee"),
    ("People's Committee", "peoples_committee"),
    ("peoples_committee", "peoples_committee"),
    ("HĐND", "peoples_council"),
    ("HDND", "peoples_council"),
    ("Hội đồng nhân dân xã", "peoples_council"),
    ("Đảng ủy", "party_committee"),
    ("Dang uy xa", "party_committee"),
    ("Trung tâm Phục vụ hành chính công", "public_service_centre"),
    ("Trung tâm phục vụ hành chính công xã", "public_service_centre"),
    ("Bộ phận một cửa", "public_service_centre"),
    ("Khác", "other"),
]


@pytest.mark.parametrize(("written", "kind"), WRITTEN)
def test_names_as_officials_write_them(written: str, kind: str) -> None:
    assert agencies.agency_kind(written) == kind
    # NFD (typed on a Mac, pasted from a PDF) and NFC are the same name.
    assert agencies.agency_kind(unicodedata.normalize("NFD", written)) == kind
    assert agencies.agency_kind(f"  {written.upper()} ") == kind


def test_every_kind_and_standard_name_is_in_the_table() -> None:
    for kind, name in agencies.AGENCY_KINDS.items():
        assert agencies.agency_kind(name) == kind
        assert agencies.agency_kind(kind) == kind


@pytest.mark.parametrize(
    ("written", "suggested"),
    [
        ("Uy ban nhan dn", "“Ủy ban nhân dân”"),
        ("Hội đồng nhân", "“Hội đồng nhân dân”"),
        ("Mặt trân Tổ quốc Viêt", "“Ủy ban Mặt trận Tổ quốc Việt Nam”"),
    ],
)
def test_a_near_miss_is_refused_with_the_nearest_names(written: str, suggested: str) -> None:
    with pytest.raises(DomainError) as refused:
        agencies.agency_kind(written)
    assert refused.value.message == agencies.UNKNOWN_AGENCY_SUGGESTED
    assert refused.value.params["suggestions"].startswith(suggested)


def test_an_unrelated_name_lists_the_known_agencies() -> None:
    with pytest.raises(DomainError) as refused:
        agencies.agency_kind("Công an xã")
    assert refused.value.message == agencies.UNKNOWN_AGENCY
    assert "Ủy ban nhân dân" in refused.value.params["kinds"]


def test_an_import_file_with_realistic_agencies(
    cli: Cli, runtime: IdpRuntime, tmp_path: Path
) -> None:
    with transaction(runtime.session_factory) as session:
        units.sync_from_package(session=session, clock=runtime.clock, actor="test")
        ward = session.scalars(select(Unit.code).where(Unit.level == "ward").limit(1)).one()
    rows = [
        [cccd(1), "Nguyễn Văn An", "", "", "", ward, "Ủy ban Mặt trận Tổ quốc", "Chủ tịch"],
        [cccd(2), "Trần Thị Bình", "", "", "", ward, "UBND xã", "Phó Chủ tịch"],
        [cccd(3), "Lê Văn Cường", "", "", "", ward, "uy ban nhan dan", ""],
        [cccd(4), "Phạm Thị Dung", "", "", "", ward, "Hội đồng nhân", ""],
        [cccd(5), "Hoàng Văn Em", "", "", "", ward, "Công an xã", ""],
        [cccd(6), "Vũ Thị Giang", "", "", "", ward, "", ""],
    ]
    path = write(tmp_path, "agencies.csv", csv_bytes(rows))
    with transaction(runtime.session_factory) as session:
        plan = build_plan(session, read_file(path), today=runtime.clock.now().date())
    assert [row.action for row in plan.rows] == ["create"] * 3 + ["error"] * 2 + ["create"]
    assert [row.official.agency_kind for row in plan.rows if row.official] == [
        "fatherland_front", "peoples_committee", "peoples_committee", None,
    ]  # fmt: skip
    assert [(error.line, error.field) for error in plan.errors] == [(5, "agency"), (6, "agency")]

    # The operator reads the refusals, with the suggestion, in Vietnamese by default.
    refused = cli("import-users", str(path), "--dry-run")
    assert refused.exit_code == 1
    output = one_line(refused.stdout)
    assert "dòng 5 [Cơ quan]: Không xác định được cơ quan Hội đồng nhân." in output
    assert "Có phải là “Hội đồng nhân dân”?" in output
    assert "dòng 6 [Cơ quan]: Không xác định được cơ quan Công an xã" in output
