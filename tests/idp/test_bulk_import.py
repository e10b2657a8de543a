"""Bulk import (idp.bulk_import and ``commune-sso import-users``) on real SQLite and PostgreSQL.

Files are generated in tmp_path; units come from the real ``vietnam-provinces`` package.
"""

from __future__ import annotations

import io
import json
import random
import time
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import transaction
from core.opaque_tokens import digest
from idp import units
from idp.bulk_import import activation
from idp.bulk_import.apply import apply_file
from idp.bulk_import.plan import Plan, RowPlan, build_plan
from idp.bulk_import.reading import FileRefused, read_bytes, read_file
from idp.models import (
    Account,
    AccountMove,
    AccountProfile,
    ActivationCode,
    Agency,
    ImportJob,
    Unit,
)
from idp.runtime import IdpRuntime
from tests.cli_runner import Cli, one_line
from tests.idp.import_files import HEADER, cccd, csv_bytes, handout_rows, stored_digest, write

HANOI = "01"


@pytest.fixture
def wards(runtime: IdpRuntime) -> list[str]:
    """Synced units; the codes of the first wards of Hà Nội."""
    with transaction(runtime.session_factory) as session:
        units.sync_from_package(session=session, clock=runtime.clock, actor="test")
        return list(
            session.scalars(
                select(Unit.code)
                .where(Unit.province_code == HANOI, Unit.level == "ward")
                .order_by(Unit.code)
                .limit(40)
            )
        )


def officials(wards: list[str]) -> list[list[str]]:
    return [
        [cccd(1), "Nguyễn Văn An", "", "an.nv@hanoi.gov.vn", "0912 345 678", wards[0],
         "UBND", "Chủ tịch"],
        [cccd(2, female=True), "Trần Thị Bình", "", "binh.tt@hanoi.gov.vn", "0987654321",
         wards[0], "peoples_council", "Phó Chủ tịch"],
        [cccd(3), "Nguyễn Văn An", "", "", "+84 24 3825 1234", wards[1], "Đảng ủy", ""],
        [cccd(4), "Lê Hoàng Minh", "minh.lh", "minh@hanoi.gov.vn", "", wards[1], "", "Công chức"],
    ]  # fmt: skip


def encode_cp1258(text: str) -> bytes:
    """Windows-1258 as Vietnamese Windows programs write it: precomposed vowels where the code
    page has them (ê, ơ, ư, ă) and combining tone marks (Python's codec does not compose)."""
    out = b""
    for ch in unicodedata.normalize("NFC", text):
        decomposed = unicodedata.normalize("NFD", ch)
        for cut in range(len(decomposed), 0, -1):
            try:
                head = unicodedata.normalize("NFC", decomposed[:cut]).encode("cp1258")
                out += head + decomposed[cut:].encode("cp1258")
                break
            except UnicodeEncodeError:
                continue
        else:
            raise AssertionError(ch)
    return out


def xlsx_bytes(rows: list[list[str]], *, header: list[str] = HEADER) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def plan_of(runtime: IdpRuntime, path: Path) -> Plan:
    with transaction(runtime.session_factory) as session:
        return build_plan(session, read_file(path), today=runtime.clock.now().date())


def run_import(runtime: IdpRuntime, path: Path, out: Path, **options):  # type: ignore[no-untyped-def]
    return apply_file(
        session_factory=runtime.session_factory,
        clock=runtime.clock,
        actor="test",
        file=read_file(path),
        output_dir=out,
        issuer=runtime.settings.issuer,
        **options,
    )


def actions(rows: list[RowPlan]) -> list[tuple[int, str]]:
    return [(row.line, row.action) for row in rows]


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def read_codes(path: Path) -> list[dict[str, str]]:
    return handout_rows(path.read_text(encoding="utf-8"))[1]


# --- Reading -------------------------------------------------------------------------------


def test_bom_and_no_bom_read_the_same(wards: list[str]) -> None:
    rows = officials(wards)
    plain = read_bytes(csv_bytes(rows), name="a.csv")
    with_bom = read_bytes(csv_bytes(rows, bom=True), name="b.csv")
    assert plain.columns == with_bom.columns == tuple(HEADER)
    assert [r.cells for r in plain.rows] == [r.cells for r in with_bom.rows]
    assert plain.rows[0].get("full_name") == "Nguyễn Văn An"


@pytest.mark.parametrize(
    ("encoding", "found"),
    [("cp1258", "Windows-1258"), ("cp1252", "Windows-1252"), ("utf-16", "UTF-16")],
)
def test_non_utf8_file_is_refused_naming_the_encoding(encoding: str, found: str) -> None:
    name = "Nguyễn Văn An" if encoding != "cp1252" else "José Müller"
    text = f"citizen_id,full_name,unit_code\n001085000001,{name},00004\n"
    data = encode_cp1258(text) if encoding == "cp1258" else text.encode(encoding)
    with pytest.raises(FileRefused) as refused:
        read_bytes(data, name="ansi.csv")
    message = refused.value.message % refused.value.params
    assert message.startswith("The file is not UTF-8 (looks like ")
    assert found in message
    assert message.endswith("save it as CSV UTF-8.")


def test_vietnamese_headers_semicolons_and_ignored_columns() -> None:
    text = "STT;Số CCCD;Họ và tên;Mã đơn vị;Chức vụ\n1;001085000001;Nguyễn Văn An;00004;Chủ tịch\n"
    file = read_bytes(text.encode(), name="vi.csv")
    assert file.columns == ("citizen_id", "full_name", "unit_code", "position")
    assert file.ignored_headers == ["STT"]
    assert file.rows[0].get("position") == "Chủ tịch"


def test_missing_required_column_refuses_the_file() -> None:
    with pytest.raises(FileRefused) as refused:
        read_bytes(b"full_name,email\nAn,a@b.vn\n", name="x.csv")
    assert refused.value.params == {"columns": "citizen_id, unit_code"}


def test_size_and_row_limits(tmp_path: Path) -> None:
    path = write(tmp_path, "big.csv", csv_bytes([["001085000001", "An", "", "", "", "00004",
                                                  "", ""]] * 5))  # fmt: skip
    with pytest.raises(FileRefused, match="the limit is"):
        read_file(path, max_bytes=100)
    with pytest.raises(FileRefused, match="more than"):
        read_file(path, max_rows=4)
    assert len(read_file(path, max_rows=5).rows) == 5


def test_malformed_csv_and_xlsx_are_refused() -> None:
    with pytest.raises(FileRefused, match="not valid CSV"):
        read_bytes(b'citizen_id,full_name,unit_code\n1,"An\x00,2\n', name="bad.csv")
    with pytest.raises(FileRefused, match="not a valid XLSX"):
        read_bytes(b"PK\x03\x04garbage", name="bad.xlsx")
    with pytest.raises(FileRefused, match="97-2003"):
        read_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 100, name="old.xls")


def test_code_file_neutralises_formula_cells(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    writer = activation.HandoutWriter(
        tmp_path / "out", issuer="https://sso.example.vn", titles=activation.headers()
    )
    issued = activation.IssuedCode(
        unit_code="00004",
        username="=cmd|' /C calc'!A0",
        full_name='+HYPERLINK("http://evil")',
        citizen_id="-1+2",
        code="@SUM(1)",
        expires_at=datetime.fromtimestamp(time.time(), UTC),
    )
    writer.stage([issued])
    [path] = writer.publish()
    [row] = read_codes(path)
    assert row["username"] == "'=cmd|' /C calc'!A0"
    assert row["full_name"].startswith("'+")
    assert row["citizen_id"] == "'-1+2"
    assert row["activation_code"] == "'@SUM(1)"
    # The username is quoted in the address: it is the official's, not a formula or a query.
    assert row["activation_url"] == (
        "https://sso.example.vn/activate?username=%3Dcmd%7C%27%20%2FC%20calc%27%21A0"
    )
    assert path.stat().st_mode & 0o077 == 0
    assert not (tmp_path / "out" / activation.PENDING_NAME).exists()


def test_activation_codes_read_aloud() -> None:
    """12 Crockford base32 characters (60 bits) in groups of four; read back whatever the case,
    spaces or hyphens, with I/L as 1 and O as 0; codes of the old format still verify."""
    seen = set()
    for _ in range(300):
        code, code_digest = activation.new_code(account_id=7)
        assert len(code) == 14 and code[4] == code[9] == "-"
        canonical = code.replace("-", "")
        assert set(canonical) <= set(activation.CODE_ALPHABET)
        assert activation.canonical_code(code) == canonical
        assert code_digest == activation.code_digest(account_id=7, canonical=canonical)
        seen.add(code)
    assert len(seen) == 300
    assert len(activation.CODE_ALPHABET) == 32 and activation.CODE_LENGTH * 5 >= 60
    typed = "7kq2 m9xd-4trb"
    assert activation.canonical_code(typed) == "7KQ2M9XD4TRB"
    assert activation.canonical_code("ILO0-1111-0000") == "110011110000"
    assert activation.canonical_code("7KQ2-M9XD-4TRU") is None  # U is not a Crockford digit
    assert activation.canonical_code("7KQ2-M9XD") is None
    # The same code for another account is another digest: a leaked table is no shared target.
    assert activation.code_digest(account_id=1, canonical="7KQ2M9XD4TRB") != (
        activation.code_digest(account_id=2, canonical="7KQ2M9XD4TRB")
    )
    legacy = "hRnBLYchdVEfWf3JPysWUw"
    assert activation.candidate_digests(account_id=7, raw=f" {legacy} ") == [digest(legacy)]
    assert activation.candidate_digests(account_id=7, raw=typed) == [
        activation.code_digest(account_id=7, canonical="7KQ2M9XD4TRB"),
        digest(typed),
    ]


# --- Plan, apply, idempotency --------------------------------------------------------------


def test_valid_file_creates_accounts_codes_and_unit_files(
    runtime: IdpRuntime, wards: list[str], tmp_path: Path
) -> None:
    path = write(tmp_path, "officials.csv", csv_bytes(officials(wards), bom=True))
    planned = plan_of(runtime, path)
    assert actions(planned.rows) == [(2, "create"), (3, "create"), (4, "create"), (5, "create")]
    assert [row.username for row in planned.rows] == [
        "nguyen.van.an", "tran.thi.binh", "nguyen.van.an2", "minh.lh",
    ]  # fmt: skip
    with transaction(runtime.session_factory) as session:
        assert count(session, Account) == 0  # the dry run changed nothing

    out = tmp_path / "codes"
    result = run_import(runtime, path, out)
    assert result.summary.as_dict() == {
        "total": 4, "create": 4, "update": 0, "unchanged": 0, "error": 0,
    }  # fmt: skip
    assert [p.name for p in result.code_files] == [f"{wards[0]}.csv", f"{wards[1]}.csv"]
    first_unit = read_codes(out / f"{wards[0]}.csv")
    assert [r["username"] for r in first_unit] == ["nguyen.van.an", "tran.thi.binh"]
    titles, _ = handout_rows((out / f"{wards[0]}.csv").read_text(encoding="utf-8"))
    assert titles == activation.headers()
    assert first_unit[0]["activation_url"] == (
        f"{runtime.settings.issuer}/activate?username=nguyen.van.an"
    )
    # Local time of Vietnam, as officials read it.
    expires = datetime.fromisoformat(first_unit[0]["expires_at"])
    assert first_unit[0]["expires_at"].endswith("+07:00")
    assert expires == runtime.clock.now() + timedelta(days=14)
    with transaction(runtime.session_factory) as session:
        account = session.scalar(select(Account).where(Account.username == "nguyen.van.an"))
        assert account is not None
        assert account.password_hash is None
        assert account.phone == "+84912345678"
        profile = session.get(AccountProfile, account.id)
        assert profile is not None
        assert profile.citizen_id == cccd(1)
        assert profile.search_name == "nguyen van an"
        assert profile.position == "Chủ tịch"
        agency = session.get(Agency, profile.agency_id)
        assert agency is not None and agency.kind == "peoples_committee"
        code = session.scalar(select(ActivationCode).where(ActivationCode.account_id == account.id))
        assert code is not None
        assert code.code_digest == stored_digest(
            session, "nguyen.van.an", first_unit[0]["activation_code"]
        )
        assert code.expires_at - code.created_at == timedelta(days=14)
        assert code.used_at is None
        job = session.scalar(select(ImportJob))
        assert job is not None and job.status == "finished" and job.processed_rows == 4
        assert job.summary["create"] == 4
        batches = [e for e in units_audit(session) if e["action"] == "import.batch"]
        assert len(batches) == 1
        assert batches[0]["details"]["job_id"] == result.job_id
        assert batches[0]["details"]["create"] == 4

    again = run_import(runtime, path, out)
    assert again.summary.as_dict()["unchanged"] == 4
    assert again.code_files == []
    with transaction(runtime.session_factory) as session:
        assert count(session, Account) == 4
        assert count(session, ActivationCode) == 4


def units_audit(session: Session) -> list[dict]:
    from core import audit

    return [audit.entry_as_dict(e) for e in audit.tail(session, limit=50)]


def test_changed_phone_is_one_update_and_unit_move_is_recorded(
    runtime: IdpRuntime, wards: list[str], tmp_path: Path
) -> None:
    rows = officials(wards)
    run_import(runtime, write(tmp_path, "v1.csv", csv_bytes(rows)), tmp_path / "out")
    rows[1][4] = "0901 000 111"
    planned = plan_of(runtime, write(tmp_path, "v2.csv", csv_bytes(rows)))
    assert actions(planned.rows) == [(2, "unchanged"), (3, "update"), (4, "unchanged"),
                                     (5, "unchanged")]  # fmt: skip
    assert planned.rows[1].changes == {"phone": ("+84987654321", "+84901000111")}
    result = run_import(runtime, write(tmp_path, "v2.csv", csv_bytes(rows)), tmp_path / "out")
    assert result.summary.update == 1 and result.summary.unchanged == 3

    rows[3][5] = wards[2]  # Lê Hoàng Minh moves
    moved = run_import(runtime, write(tmp_path, "v3.csv", csv_bytes(rows)), tmp_path / "out")
    assert moved.rows[3].changes == {"unit_code": (wards[1], wards[2])}
    with transaction(runtime.session_factory) as session:
        binh = session.scalar(select(Account).where(Account.username == "tran.thi.binh"))
        assert binh is not None and binh.phone == "+84901000111"
        assert binh.email == "binh.tt@hanoi.gov.vn"  # untouched
        [move] = session.scalars(select(AccountMove)).all()
        minh = session.scalar(select(Account).where(Account.username == "minh.lh"))
        assert minh is not None and move.account_id == minh.id
        assert move.reason.startswith("Bulk import ")
        profile = session.get(AccountProfile, minh.id)
        assert profile is not None and profile.version == 2


def test_refused_rows_have_line_numbers_and_change_nothing(
    runtime: IdpRuntime, wards: list[str], tmp_path: Path
) -> None:
    rows = officials(wards)
    run_import(runtime, write(tmp_path, "v1.csv", csv_bytes(rows)), tmp_path / "out")
    bad = [
        [cccd(1), "Nguyễn Văn An", "", "an.nv@hanoi.gov.vn", "0912 345", wards[0], "", ""],
        ["00108500001", "Phạm Văn Cường", "", "", "", wards[0], "", ""],
        [cccd(20), "Đỗ Thị Dung", "", "", "", "99999", "", ""],
        [cccd(21), "Vũ Văn Em", "", "", "", wards[0], "", ""],
        [cccd(21), "Vũ Văn Em", "", "", "", wards[1], "", ""],
        [cccd(22), "Hồ Thị Gấm", "", "gam@@hanoi.gov.vn", "", wards[0], "", ""],
        [cccd(23), "=HYPERLINK(\"http://x\")", "", "", "", wards[0], "", ""],
        [cccd(24), "Mai Văn Hải", "", "", "", wards[0], "bộ ngoại giao", ""],
        [cccd(25), "Đinh Thị Hoa", "", "", "", wards[0], "", ""],
    ]  # fmt: skip
    path = write(tmp_path, "bad.csv", csv_bytes(bad))
    planned = plan_of(runtime, path)
    refused = {(e.line, e.field) for e in planned.errors}
    assert refused == {
        (2, "phone"),
        (3, "citizen_id"),
        (4, "unit_code"),
        (5, "citizen_id"),
        (6, "citizen_id"),
        (7, "email"),
        (8, "full_name"),
        (9, "agency"),
    }
    duplicate = next(e for e in planned.errors if e.line == 5)
    assert duplicate.text() == f"The citizen ID {cccd(21)} appears on several lines: 5, 6."
    assert next(e for e in planned.errors if e.line == 4).text() == "Unknown unit code 99999."
    assert actions(planned.rows)[-1] == (10, "create")

    result = run_import(runtime, path, tmp_path / "out")
    assert result.summary.as_dict() == {
        "total": 9, "create": 1, "update": 0, "unchanged": 0, "error": 8,
    }  # fmt: skip
    with transaction(runtime.session_factory) as session:
        assert count(session, Account) == 5
        an = session.scalar(select(Account).where(Account.username == "nguyen.van.an"))
        assert an is not None and an.phone == "+84912345678"  # refused row changed nothing
        stored = set(session.scalars(select(AccountProfile.citizen_id)))
        assert cccd(21) not in stored and cccd(22) not in stored and cccd(25) in stored


def test_xlsx_gives_the_same_plan_as_csv(
    runtime: IdpRuntime, wards: list[str], tmp_path: Path
) -> None:
    rows = officials(wards)
    from_csv = plan_of(runtime, write(tmp_path, "o.csv", csv_bytes(rows)))
    from_xlsx = plan_of(runtime, write(tmp_path, "o.xlsx", xlsx_bytes(rows)))
    assert [r.as_dict() for r in from_xlsx.rows] == [r.as_dict() for r in from_csv.rows]
    # Numeric cells: the CCCD and mobile number lose their leading zero in a numeric column.
    numeric = [[int(cccd(1)), "Nguyễn Văn An", None, None, 912345678, int(wards[-1]), None, None]]
    planned = plan_of(runtime, write(tmp_path, "n.xlsx", xlsx_bytes(numeric)))  # type: ignore[arg-type]
    assert planned.rows[0].action == "create", planned.rows[0].errors
    assert planned.rows[0].official is not None
    assert planned.rows[0].official.citizen_id == cccd(1)
    assert planned.rows[0].official.phone == "+84912345678"
    assert planned.rows[0].official.unit_code == wards[-1]
    ambiguous = [[cccd(2), "Trần An", None, None, None, 4, None, None]]
    planned = plan_of(runtime, write(tmp_path, "a.xlsx", xlsx_bytes(ambiguous)))  # type: ignore[arg-type]
    assert [(e.line, e.field) for e in planned.errors] == [(2, "unit_code")]


def test_crash_in_second_batch_keeps_whole_batches_and_rerun_finishes(
    runtime: IdpRuntime, wards: list[str], tmp_path: Path
) -> None:
    rows = [
        [cccd(100 + i), f"Nguyễn Văn {name}", "", "", "", wards[i % 3], "", ""]
        for i, name in enumerate(["An", "Bình", "Cường", "Dũng", "Em", "Giang"])
    ]
    path = write(tmp_path, "six.csv", csv_bytes(rows))
    out = tmp_path / "out"

    def crash(number: int, plans: list[RowPlan]) -> None:
        if number == 2:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        run_import(runtime, path, out, batch_size=3, on_batch=crash)
    with transaction(runtime.session_factory) as session:
        assert set(session.scalars(select(AccountProfile.citizen_id))) == {
            cccd(100),
            cccd(101),
            cccd(102),
        }
        assert count(session, ActivationCode) == 3
        job = session.scalar(select(ImportJob))
        assert job is not None and job.status == "failed" and job.processed_rows == 3
        assert [e["details"]["batch"] for e in units_audit(session)
                if e["action"] == "import.batch"] == [1]  # fmt: skip
    listed = [r["citizen_id"] for f in sorted(out.glob("*.csv")) for r in read_codes(f)]
    assert sorted(listed) == [cccd(100), cccd(101), cccd(102)]

    result = run_import(runtime, path, out, batch_size=3)
    assert result.resumed
    assert actions(result.rows) == [(2, "unchanged"), (3, "unchanged"), (4, "unchanged"),
                                    (5, "create"), (6, "create"), (7, "create")]  # fmt: skip
    with transaction(runtime.session_factory) as session:
        assert count(session, AccountProfile) == 6
        assert count(session, ImportJob) == 1
        job = session.scalar(select(ImportJob))
        assert job is not None and job.status == "finished" and job.processed_rows == 6
    listed = [r["citizen_id"] for f in sorted(out.glob("*.csv")) for r in read_codes(f)]
    assert sorted(listed) == [cccd(100 + i) for i in range(6)]


# --- CLI -----------------------------------------------------------------------------------


def test_cli_import_users(cli: Cli, runtime: IdpRuntime, wards: list[str], tmp_path: Path) -> None:
    rows = officials(wards)
    good = write(tmp_path, "good.csv", csv_bytes(rows))
    out = tmp_path / "codes"
    dry = cli("import-users", str(good), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["summary"]["create"] == 4
    applied = cli("import-users", str(good), "--output-dir", str(out))
    assert applied.exit_code == 0, applied.output
    assert "đã tạo" in applied.stdout  # Vietnamese by default
    titles, _ = handout_rows((out / f"{wards[0]}.csv").read_text(encoding="utf-8"))
    assert titles == [
        "Tên đăng nhập", "Họ và tên", "Số CCCD", "Mã kích hoạt", "Hết hạn lúc", "Địa chỉ kích hoạt",
    ]  # fmt: skip
    assert (out / f"{wards[0]}.csv").exists()

    rows.append([cccd(50), "Ngô Văn Khải", "", "", "", "99999", "", ""])
    partial = cli(
        "import-users", str(write(tmp_path, "p.csv", csv_bytes(rows))), "--json", "--lang", "en"
    )
    assert partial.exit_code == 1
    data = json.loads(partial.stdout)
    assert data["summary"]["unchanged"] == 4
    assert data["errors"] == [
        {"line": 6, "field": "unit_code", "message": "Unknown unit code 99999."}
    ]
    in_vietnamese = cli("import-users", str(tmp_path / "p.csv"), "--dry-run", "--lang", "vi")
    assert in_vietnamese.exit_code == 1
    assert "dòng 6 [Mã đơn vị]: Mã đơn vị hành chính 99999 không tồn tại." in in_vietnamese.stdout
    ansi = encode_cp1258("citizen_id,full_name,unit_code\n001085000001,Nguyễn,00004\n")
    refused = cli("import-users", str(write(tmp_path, "w.csv", ansi)), "--lang", "en")
    assert refused.exit_code == 2
    assert "Windows-1258" in refused.stderr
    refused_vi = cli("import-users", str(tmp_path / "w.csv"), "--lang", "vi")
    assert refused_vi.exit_code == 2
    assert "Windows-1258" in refused_vi.stderr and "UTF-8" in refused_vi.stderr
    assert "The file is not UTF-8" not in refused_vi.stderr
    assert "dòng 2" in one_line(refused_vi.stderr) and "line" not in refused_vi.stderr


# --- Volume --------------------------------------------------------------------------------

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi",
          "Đỗ", "Hồ", "Ngô", "Dương", "Lý"]  # fmt: skip
MIDDLE = ["Văn", "Thị", "Đức", "Minh", "Hữu", "Thanh", "Ngọc", "Quang", "Xuân", "Hoài"]
GIVEN = ["An", "Bình", "Cường", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hiếu", "Hoa", "Hùng",
         "Hương", "Khánh", "Lan", "Linh", "Long", "Mai", "Nam", "Nga", "Phúc", "Quân", "Sơn",
         "Tâm", "Thảo", "Trang", "Tuấn", "Vân", "Yến"]  # fmt: skip
KINDS = ["peoples_committee", "party_committee", "peoples_council", "fatherland_front",
         "public_service_centre", "other"]  # fmt: skip


# A tenth of a province (35,200 officials): the plan, the apply and the re-import at a size
# where batching and paging matter. The whole province is bench/import_bench.py's run, with its
# times and memory; the suite keeps the correctness and not the minute it costs.
PROVINCE_SLICE = 3_520


def test_a_tenth_of_a_province_plans_applies_and_reimports(
    runtime: IdpRuntime, tmp_path: Path
) -> None:
    with transaction(runtime.session_factory) as session:
        units.sync_from_package(session=session, clock=runtime.clock, actor="test")
        ward_codes = list(
            session.scalars(select(Unit.code).where(Unit.level == "ward").order_by(Unit.code))
        )[:130]
    rng = random.Random(2026)
    rows = []
    for i in range(PROVINCE_SLICE):
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
        rows.append([
            f"0{rng.choice(['01', '10', '79', '48'])}{rng.choice('01')}{60 + i % 40:02d}{i:06d}",
            name, "", f"cb{i}@tinh.gov.vn", f"09{i:08d}", rng.choice(ward_codes),
            rng.choice(KINDS), "Công chức",
        ])  # fmt: skip
    path = write(tmp_path, "province.csv", csv_bytes(rows))
    backend = runtime.settings.resolved_database_url.split(":", 1)[0]

    started = time.perf_counter()
    planned = plan_of(runtime, path)
    dry_run = time.perf_counter() - started
    assert planned.summary.create == PROVINCE_SLICE, planned.errors[:3]

    started = time.perf_counter()
    result = run_import(runtime, path, tmp_path / "codes")
    applied = time.perf_counter() - started
    assert result.summary.create == PROVINCE_SLICE

    started = time.perf_counter()
    again = run_import(runtime, path, tmp_path / "codes")
    reimport = time.perf_counter() - started
    assert again.summary.unchanged == PROVINCE_SLICE
    with transaction(runtime.session_factory) as session:
        assert count(session, AccountProfile) == PROVINCE_SLICE
        assert count(session, ActivationCode) == PROVINCE_SLICE
    print(
        f"\n{PROVINCE_SLICE:,} rows on {backend}: dry run {dry_run:.1f} s, apply {applied:.1f} s, "
        f"re-import {reimport:.1f} s"
    )


def test_large_imports_refresh_the_planner_statistics(runtime: IdpRuntime) -> None:
    """After a bulk load PostgreSQL's planner must see the new rows (SCIM paging was 7x slower
    until autovacuum analysed the tables); SQLite needs nothing."""
    from sqlalchemy import text

    from idp.bulk_import import apply

    apply._refresh_planner_statistics(runtime.session_factory)
    with transaction(runtime.session_factory) as session:
        if session.get_bind().dialect.name != "postgresql":
            return
        analysed = session.execute(
            text(
                "SELECT relname FROM pg_stat_user_tables "
                "WHERE relname IN ('idp_account', 'idp_account_profile') "
                "AND last_analyze IS NOT NULL"
            )
        ).scalars()
        assert sorted(analysed) == ["idp_account", "idp_account_profile"]
