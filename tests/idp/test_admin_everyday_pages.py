"""The everyday admin pages of issue 19 through the real ASGI app, on SQLite and PostgreSQL:
the dry run names each row's official and unit, the import template downloads, a unit counts
officials not yet activated apart from active ones, an imported official has a history (new
imports and imports from before per-official entries), the logout delivery log names the
official."""

from __future__ import annotations

import io
import re
from datetime import timedelta

from openpyxl import load_workbook
from sqlalchemy import insert, select

from core.db import transaction
from idp import accounts
from idp.bulk_import import reading
from idp.models import Account, AccountProfile, ImportJob, Unit
from idp.official_data import fold_for_search
from tests.idp.import_files import cccd
from tests.idp.test_admin_pages import (
    WARD_A,
    add_delivery,
    add_units,
    csrf_of,
    import_file,
    make_account,
    post,
    sign_in,
    wait_done,
    world,
)

__all__ = ["world"]  # the fixture, imported for pytest


def dry_run(web, path: str = "/admin/imports", content: bytes | None = None) -> str:
    token = csrf_of(web, "/admin/imports")
    uploaded = web.post(
        path,
        data={"csrf_token": token},
        files={"file": ("can-bo.csv", content or import_file(), "text/csv")},
    )
    assert uploaded.status_code == 303, uploaded.text
    return uploaded.headers["location"]


# --------------------------------------------------------------------------------------------
# Import: names and units in the dry run, the template


def test_dry_run_rows_show_the_name_and_the_unit_by_name_with_its_code(web, runtime, world):
    sign_in(web, runtime, world.system)
    text = wait_done(web, dry_run(web))
    assert '<th scope="col">Họ và tên</th><th scope="col">Đơn vị</th>' in text
    row = re.search(r'<td data-label="Dòng">2</td>.*?</tr>', text, re.S)
    assert row is not None
    assert '<td data-label="Họ và tên">Phạm Văn Dũng</td>' in row.group(0)
    assert '<td data-label="Đơn vị">Phường Cam Đường <code>02656</code></td>' in row.group(0)
    # A refused row still says whom it is about, as the file wrote it.
    refused = re.search(r'<td data-label="Dòng">4</td>.*?</tr>', text, re.S)
    assert refused is not None and "Sai Số" in refused.group(0)
    assert "Phường Cam Đường <code>02656</code>" in refused.group(0)


def test_template_downloads_carry_the_columns_the_import_reads(web, runtime, world):
    sign_in(web, runtime, world.unit_admin_a)
    page = web.get("/admin/imports")
    assert 'href="/admin/imports/import-template.csv" download' in page.text
    assert 'href="/admin/imports/import-template.xlsx" download' in page.text

    as_csv = web.get("/admin/imports/import-template.csv")
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="import-template.csv"' in as_csv.headers["content-disposition"]
    header = as_csv.content.decode("utf-8-sig").splitlines()[0]
    assert header == ",".join(reading.COLUMNS)

    as_xlsx = web.get("/admin/imports/import-template.xlsx")
    assert as_xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    assert [cell.value for cell in sheet[1]] == list(reading.COLUMNS)
    # Text cells: the citizen ID's and the unit code's leading zeros survive a spreadsheet.
    assert sheet["A2"].value == "001090012345" and sheet["F2"].value == "00004"

    for content in (as_csv.content, as_xlsx.content):
        read = reading.read_bytes(content, name="template")
        assert read.columns == reading.COLUMNS and len(read.rows) == 1


def test_template_is_for_admins_only(web, runtime, world):
    sign_in(web, runtime, world.nobody)
    assert web.get("/admin/imports/import-template.csv").status_code == 403


def test_the_template_passes_a_dry_run_where_its_unit_exists(web, runtime, world):
    add_units(runtime, [("01", "province", "Thành phố Hà Nội", "01"),
                        ("00004", "ward", "Phường Ba Đình", "01")])  # fmt: skip
    sign_in(web, runtime, world.system)
    template = web.get("/admin/imports/import-template.csv").content
    text = wait_done(web, dry_run(web, content=template))
    assert re.search(r'<ul class="counts" id="job-counts">\s*<li><strong>1</strong>', text)
    assert "Phường Ba Đình <code>00004</code>" in text and "row--error" not in text


# --------------------------------------------------------------------------------------------
# Units: officials by status


def counts_of(page: str) -> dict[str, int]:
    return {
        status: int(count)
        for status, count in re.findall(r'<strong data-status="(\w+)">(\d+)</strong>', page)
    }


def test_unit_page_counts_officials_not_yet_activated_apart(web, runtime, world):
    make_account(runtime, "chua.kich.hoat", "Chưa Kích Hoạt", unit=WARD_A, password=False)
    make_account(runtime, "da.khoa", "Đã Khóa", unit=WARD_A)
    with transaction(runtime.session_factory) as session:
        accounts.disable(
            session=session,
            clock=runtime.clock,
            actor="test",
            account=accounts.get_by_username(session, "da.khoa"),
        )
    sign_in(web, runtime, world.unit_admin_a)
    page = web.get(f"/admin/units/{WARD_A}")
    assert page.status_code == 200
    # admin.a, admin.tinh15, khong.phai, nguyen.van.an can sign in; one is not activated yet.
    assert counts_of(page.text) == {"active": 4, "pending": 1, "disabled": 1}
    assert "Chưa kích hoạt" in page.text
    assert f'href="/admin/officials?unit={WARD_A}&amp;status=pending"' in page.text
    listed = web.get("/admin/officials", params={"unit": WARD_A, "status": "pending"})
    assert "chua.kich.hoat" in listed.text and "nguyen.van.an" not in listed.text


# --------------------------------------------------------------------------------------------
# Officials: the history of an imported official


def history_of(page: str) -> str:
    match = re.search(r"<h2>Lịch sử gần đây</h2>(.*)", page, re.S)
    assert match is not None
    return match.group(1)


def test_an_official_created_by_import_has_a_history(web, runtime, world):
    sign_in(web, runtime, world.unit_admin_a)
    job_page = dry_run(web)
    wait_done(web, job_page)
    applied = post(web, f"{job_page}/apply", form_page=job_page)
    wait_done(web, applied.headers["location"])
    page = web.get("/admin/officials/pham.van.dung")
    assert page.status_code == 200
    history = history_of(page.text)
    assert "Chưa có gì được ghi lại" not in history
    assert "Tạo tài khoản mới <span" in history and "qua nhập tệp" in history
    assert "Tài khoản admin.a" in history

    # The same file with a changed position: an update entry, with the names of the fields.
    changed = import_file().replace("Chuyên viên".encode(), "Phó Chủ tịch".encode())
    job_page = dry_run(web, content=changed)
    wait_done(web, job_page)
    applied = post(web, f"{job_page}/apply", form_page=job_page)
    wait_done(web, applied.headers["location"])
    history = history_of(web.get("/admin/officials/pham.van.dung").text)
    # Newest first.
    assert history.index("Thay đổi thông tin tài khoản") < history.index("Tạo tài khoản mới")


def test_an_official_imported_before_per_official_entries_has_a_history(web, runtime, world):
    """Such an import wrote rows and a batch entry only: the creation is told from its job."""
    now = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        session.add(
            ImportJob(
                job_id="j" * 32,
                file_name="can-bo-2025.csv",
                file_digest="0" * 64,
                dry_run=False,
                status="finished",
                total_rows=1,
                processed_rows=1,
                summary={"create": 1},
                actor="user:admin.a",
                created_at=now - timedelta(seconds=5),
                finished_at=now + timedelta(seconds=5),
            )
        )
        account_id = session.scalars(
            insert(Account).returning(Account.id),
            [
                {
                    "subject": "s" * 32,
                    "username": "nhap.truoc.day",
                    "full_name": "Nhập Trước Đây",
                    "password_hash": None,
                    "status": "active",
                    "is_system_admin": False,
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        ).one()
        ward = session.scalars(select(Unit).where(Unit.code == WARD_A)).one()
        session.add(
            AccountProfile(
                account_id=account_id,
                citizen_id=cccd(900),
                unit_id=ward.id,
                search_name=fold_for_search("Nhập Trước Đây"),
            )
        )
    sign_in(web, runtime, world.unit_admin_a)
    history = history_of(web.get("/admin/officials/nhap.truoc.day").text)
    assert "Tạo tài khoản mới" in history and "qua nhập tệp" in history
    assert "Tài khoản admin.a" in history
    # An official created outside any import's run gets no such line.
    make_account(runtime, "tao.tay", "Tạo Tay", unit=WARD_A)
    history = history_of(web.get("/admin/officials/tao.tay").text)
    assert history.count("Tạo tài khoản mới") == 1 and "qua nhập tệp" not in history


# --------------------------------------------------------------------------------------------
# Deliveries: the official of each delivery


def test_delivery_log_names_the_official(web, runtime, world, rp):
    client, _ = rp
    with transaction(runtime.session_factory) as session:
        subject = accounts.get_by_username(session, world.in_a).subject
    for sub in (subject, "unknown-subject"):
        add_delivery(runtime, client, subject=sub, status="delivered", status_code=200)
    sign_in(web, runtime, world.system)
    page = web.get("/admin/logout-deliveries")
    assert page.status_code == 200
    cells = re.findall(r'<td data-label="Cán bộ">(.*?)</td>', page.text, re.S)
    assert len(cells) == 2
    assert (
        'Nguyễn Văn An<br><a href="/admin/officials/nguyen.van.an"><code>nguyen.van.an</code></a>'
        in cells
    )
    assert "—" in cells
