"""The IdP admin pages in headless Chromium: an import with refused rows (per-row messages in
Vietnamese, then "apply" and the progress bar reaching the end, all without JavaScript of
ours), and a unit admin who does not see another unit's officials. Screenshots at desktop and
phone width for each step."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from core.db import transaction
from idp import accounts, sessions
from idp.runtime import IdpRuntime
from tests.idp.import_files import cccd, csv_bytes
from tests.idp.test_admin_pages import WARD_A, WARD_B, World

# The same units, officials and admins as the page tests.
from tests.idp.test_admin_pages import world as world


def sign_in(page: Page, runtime: IdpRuntime, issuer: str, username: str) -> None:
    """The IdP session cookie the login leaves behind (the login page itself has its own
    browser tests)."""
    with transaction(runtime.session_factory) as session:
        _, cookie = sessions.create(
            session=session,
            clock=runtime.clock,
            settings=runtime.settings,
            account=accounts.get_by_username(session, username),
            amr=["pwd"],
            client_address="127.0.0.1",
            user_agent="chromium",
        )
    page.context.add_cookies(
        [{"name": runtime.session_cookie_name, "value": cookie, "url": issuer}]
    )


def test_admin_import_shows_per_row_errors_then_applies(
    page: Page, provider: str, runtime: IdpRuntime, world: World, shoot: Callable[[str], None]
) -> None:
    sign_in(page, runtime, provider, world.unit_admin_a)
    page.goto(f"{provider}/admin/imports")
    expect(page.get_by_role("heading", name="Nhập danh sách cán bộ")).to_be_visible()
    shoot("upload-form")
    data = csv_bytes(
        [
            [cccd(201), "Phạm Văn Dũng", "pham.van.dung", "", "", WARD_A, "", "Chuyên viên"],
            [cccd(202), "Hoàng Thị Em", "hoang.thi.em", "", "", WARD_B, "", "Văn thư"],
            ["12345", "Sai Số", "sai.so", "", "", WARD_A, "", ""],
        ]
    )
    page.get_by_label(re.compile("Tệp \\(CSV hoặc XLSX")).set_input_files(
        files=[{"name": "can-bo.csv", "mimeType": "text/csv", "buffer": data}]
    )
    page.get_by_role("button", name="Kiểm tra tệp (chạy thử)").click()
    # The page refreshes itself (meta refresh) until the dry run is done.
    expect(page.locator("#job-status")).to_have_text("Hoàn tất", timeout=15_000)
    refused = page.locator("tr.row--error")
    expect(refused).to_have_count(2)
    expect(refused.nth(0)).to_contain_text("Bạn không có quyền quản trị đơn vị này")
    expect(refused.nth(0).locator("td").first).to_have_text("3")
    expect(refused.nth(1).locator("td").first).to_have_text("4")
    shoot("dry-run")

    page.get_by_role("button", name="Nhập các cán bộ này").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Nhập dữ liệu")
    expect(page.locator("#job-status")).to_have_text("Hoàn tất", timeout=15_000)
    expect(page.locator("#job-progress")).to_have_attribute("value", "100")
    expect(page.locator("#job-counts")).to_contain_text("1 tài khoản mới")
    shoot("applied")
    with transaction(runtime.session_factory) as session:
        assert accounts.find_by_username(session, "pham.van.dung") is not None
        assert accounts.find_by_username(session, "hoang.thi.em") is None


def test_unit_admin_does_not_see_another_unit(
    page: Page, provider: str, runtime: IdpRuntime, world: World, shoot: Callable[[str], None]
) -> None:
    sign_in(page, runtime, provider, world.unit_admin_a)
    page.goto(f"{provider}/admin/officials")
    table = page.locator("table.data-table")
    expect(table).to_contain_text("Nguyễn Văn An")
    expect(table).not_to_contain_text("Trần Thị Bình")
    expect(table).not_to_contain_text("Lò Văn Cà")
    shoot("officials-of-unit-a")
    # Keyboard: the search field is reachable and its label reads in Vietnamese.
    search = page.get_by_label("Họ tên, tên đăng nhập hoặc số CCCD")
    search.fill("tran thi binh")
    search.press("Enter")
    expect(page.locator(".result-count")).to_have_text("Tìm thấy 0 cán bộ")
    shoot("search-for-another-unit")

    response = page.goto(f"{provider}/admin/officials/{world.in_b}")
    assert response is not None and response.status == 404
    expect(page.locator("main")).not_to_contain_text("Trần Thị Bình")
    shoot("other-unit-by-url")

    page.goto(f"{provider}/admin/officials?lang=en")
    expect(page.get_by_role("heading", name="Officials")).to_be_visible()
    expect(page.locator("nav.admin-nav")).not_to_contain_text("Audit log")
