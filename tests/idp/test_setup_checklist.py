"""The admin dashboard's "what next" checklist and the empty states that say what to do next
(issue 19), through the real ASGI app on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from datetime import datetime

import pytest
from starlette.testclient import TestClient

from ca_admin.hierarchy import CaSetup, init_hierarchy
from commune_sso import bootstrap
from commune_sso.ca_bridge import ensure_ca_pages_client
from core.db import transaction
from core.settings import Settings
from idp import units
from idp.models import ImportJob
from idp.runtime import IdpRuntime
from tests.conftest import register_client
from tests.idp.test_admin_pages import grant, make_account, sign_in

ADMIN = "quan.tri"


@pytest.fixture
def admin(runtime: IdpRuntime) -> str:
    make_account(runtime, ADMIN, "Quản trị hệ thống", system=True)
    return ADMIN


def checklist_item(page: str, key: str) -> str:
    """The text of one checklist item, tags and all, unescaped."""
    match = re.search(rf'<li class="checklist__item [^"]*" id="setup-{key}">(.*?)</li>', page, re.S)
    assert match, f"no checklist item {key}"
    return html.unescape(match.group(0))


def is_done(page: str, key: str) -> bool:
    item = checklist_item(page, key)
    done = "checklist__item--done" in item
    # The state is written out, not only shown by the border colour.
    assert ("badge--done" in item) is done and ("badge--pending" in item) is not done
    return done


def add_unit(runtime: IdpRuntime) -> None:
    """One province, through the same service as ``unit sync``."""
    with transaction(runtime.session_factory) as session:
        units.sync_from_package(
            session=session,
            clock=runtime.clock,
            actor="test",
            source=[units.PackageUnit("15", "province", "Tỉnh Lào Cai", "tỉnh", "15")],
        )


def add_import_job(runtime: IdpRuntime, *, dry_run: bool, status: str) -> None:
    now: datetime = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        session.add(
            ImportJob(
                job_id=f"job-{dry_run}-{status}",
                file_name="can-bo.csv",
                file_digest="0" * 64,
                dry_run=dry_run,
                status=status,
                actor="user:quan.tri",
                created_at=now,
                finished_at=now,
            )
        )


def test_the_checklist_follows_the_installation_step_by_step(
    web: TestClient, runtime: IdpRuntime, admin: str
) -> None:
    sign_in(web, runtime, admin)
    with transaction(runtime.session_factory) as session:
        # Registered by the service itself at the first start: not "your first app".
        ensure_ca_pages_client(
            session,
            clock=runtime.clock,
            settings=runtime.settings,
            server_secret=runtime.server_secret,
        )
    page = web.get("/admin").text
    assert "Việc cần làm tiếp" in page
    assert "Đã hoàn thành 0/5 bước thiết lập." in page
    assert [is_done(page, key) for key in ("units", "import", "app", "ca", "smtp")] == [False] * 5
    assert "commune-sso unit sync" in checklist_item(page, "units")
    assert '<a href="/admin/imports">Nhập danh sách cán bộ</a>' in checklist_item(page, "import")
    assert 'href="/admin/clients/new"' in checklist_item(page, "app")
    ca_item = checklist_item(page, "ca")
    assert f"commune-sso ca init --organisation '{bootstrap.DEFAULT_ORGANISATION}'" in ca_item
    assert "COMMUNE_SSO_SMTP_HOST" in checklist_item(page, "smtp")

    add_unit(runtime)
    page = web.get("/admin").text
    assert is_done(page, "units")
    assert "Đã nạp 1 đơn vị hành chính" in checklist_item(page, "units")
    assert "unit sync" not in checklist_item(page, "units")

    add_import_job(runtime, dry_run=True, status="finished")  # a dry run imports nobody
    add_import_job(runtime, dry_run=False, status="failed")
    assert not is_done(web.get("/admin").text, "import")
    add_import_job(runtime, dry_run=False, status="finished")
    assert is_done(web.get("/admin").text, "import")

    register_client(runtime)
    page = web.get("/admin").text
    assert is_done(page, "app")
    assert 'href="/admin/clients"' in checklist_item(page, "app")

    with transaction(runtime.session_factory) as session:
        init_hierarchy(
            session=session,
            runtime=web.app.state.ca,  # type: ignore[attr-defined]
            actor="test",
            setup=CaSetup(organisation="Sở Khoa học và Công nghệ tỉnh Lào Cai"),
        )
    page = web.get("/admin").text
    assert is_done(page, "ca")
    assert "ca init" not in checklist_item(page, "ca")
    assert "Đã hoàn thành 4/5 bước thiết lập." in page


def test_the_checklist_speaks_english_on_request(
    web: TestClient, runtime: IdpRuntime, admin: str
) -> None:
    sign_in(web, runtime, admin)
    page = web.get("/admin", params={"lang": "en"}).text
    assert "What next" in page and "0 of 5 setup steps done." in page
    assert "To do" in checklist_item(page, "units")
    assert "Việc cần làm" not in page


class TestWithAMailServer:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"smtp_host": "mail.laocai.gov.vn"})

    def test_a_configured_mail_server_is_a_step_done(
        self, web: TestClient, runtime: IdpRuntime, admin: str
    ) -> None:
        sign_in(web, runtime, admin)
        item = checklist_item(web.get("/admin").text, "smtp")
        assert "checklist__item--done" in item
        assert "COMMUNE_SSO_SMTP_HOST" not in item


def test_a_unit_admin_sees_no_checklist(web: TestClient, runtime: IdpRuntime, admin: str) -> None:
    add_unit(runtime)
    make_account(runtime, "admin.tinh", "Quản trị Lào Cai", unit="15")
    grant(runtime, "admin.tinh", "province_admin", "15")
    sign_in(web, runtime, "admin.tinh")
    page = web.get("/admin")
    assert page.status_code == 200
    assert "setup-checklist" not in page.text
    # Approving their officials' certificate requests starts from the dashboard too.
    assert 'href="/ca/pages/admin/requests">Yêu cầu cấp chứng thư số chờ phê duyệt</a>' in page.text
    assert web.get("/ca/pages/admin/requests", follow_redirects=False).status_code != 404


# --------------------------------------------------------------------------------------------
# Empty states


def test_every_empty_list_says_what_to_do_next(
    web: TestClient, runtime: IdpRuntime, admin: str
) -> None:
    sign_in(web, runtime, admin)

    units = web.get("/admin/units").text
    assert 'id="no-units"' in units
    assert "Chưa nạp đơn vị hành chính nào." in units
    assert '<code class="command">commune-sso unit sync</code>' in units
    filtered = web.get("/admin/units", params={"q": "không có"}).text
    assert 'id="no-units"' not in filtered and "Không có đơn vị nào" in filtered

    # A new installation lists only its administrator: the next step is the import.
    officials = web.get("/admin/officials").text
    assert 'id="no-officials"' in officials
    assert 'href="/admin/imports">Nhập danh sách cán bộ</a>' in officials
    assert 'id="no-officials"' not in web.get("/admin/officials", params={"q": "zzz"}).text

    apps = web.get("/admin/clients").text
    assert 'id="no-apps"' in apps
    assert 'href="/admin/clients/new">Đăng ký ứng dụng đầu tiên</a>' in apps

    imports = web.get("/admin/imports").text
    assert 'id="no-imports"' in imports and "lần chạy thử liệt kê" in imports

    deliveries = web.get("/admin/logout-deliveries").text
    assert 'id="no-deliveries"' in deliveries
    assert 'href="/admin/clients">Xem các ứng dụng</a>' in deliveries
    failed = web.get("/admin/logout-deliveries", params={"status": "failed"}).text
    assert 'id="no-deliveries"' not in failed

    english = web.get("/admin/units", params={"lang": "en"}).text
    assert "No unit is loaded yet." in english and "commune-sso unit sync" in english


def test_the_next_steps_go_once_there_is_something(
    web: TestClient, runtime: IdpRuntime, admin: str
) -> None:
    add_unit(runtime)
    make_account(runtime, "nguyen.van.an", "Nguyễn Văn An", unit="15")
    register_client(runtime)
    sign_in(web, runtime, admin)
    assert 'id="no-units"' not in web.get("/admin/units").text
    assert 'id="no-officials"' not in web.get("/admin/officials").text
    assert 'id="no-apps"' not in web.get("/admin/clients").text
