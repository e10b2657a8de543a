"""The admin pages of the CAS services (/admin/cas-services) through the real ASGI app, on
SQLite and PostgreSQL: system administrators only; register by exact URL or anchored pattern
with the CLI's rules (problems next to their field, in Vietnamese first, nothing saved); show;
remove after a confirmation; CSRF on every change; every change audited with the admin as
actor, and a removed service's tickets no longer validate."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from core.db import transaction
from idp.cas import services
from idp.models import CasService
from idp.released_attributes import RELEASABLE
from idp.runtime import IdpRuntime
from idp.web.admin_pages.cas_services import ATTRIBUTE_LABELS
from tests.idp.test_admin_pages import audit_actions, csrf_of, post, sign_in
from tests.idp.test_admin_pages import world as world  # the same admins and officials

LIST = "/admin/cas-services"
NEW = "/admin/cas-services/new"
URL = "https://vanban.laocai.gov.vn/cas/callback"
PATTERN = r"^https://motcua\.laocai\.gov\.vn/.*$"


def form(**changes: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "service_id": "van-ban",
        "name": "Quản lý văn bản",
        "match": "exact",
        "address": URL,
        "attributes": ["name", "unit"],
        "single_logout": "on",
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def registered(runtime: IdpRuntime) -> list[dict[str, object]]:
    with transaction(runtime.session_factory) as session:
        return [services.as_dict(s) for s in services.REGISTRY.list_active(session)]


def register(runtime: IdpRuntime, service_id: str = "van-ban", **options: object) -> None:
    with transaction(runtime.session_factory) as session:
        services.register(
            session=session,
            clock=runtime.clock,
            actor="test",
            service_id=service_id,
            name=str(options.pop("name", "Quản lý văn bản")),
            **({"url": URL} | options),  # type: ignore[arg-type]
        )


def test_only_system_admins_see_the_pages(web, runtime, world):
    register(runtime)
    sign_in(web, runtime, world.province_admin_15)
    for path in (LIST, NEW, f"{LIST}/van-ban", f"{LIST}/van-ban?action=remove"):
        response = web.get(path)
        assert response.status_code == 403, path
        assert "Chỉ quản trị viên hệ thống" in response.text
    assert 'href="/admin/cas-services"' not in web.get("/admin").text
    sign_in(web, runtime, world.system)
    menu = web.get("/admin").text
    assert re.search(r'<a href="/admin/cas-services">Dịch vụ CAS</a>', menu)


def test_every_page_renders_in_vietnamese_then_english(web, runtime, world):
    sign_in(web, runtime, world.system)
    empty = web.get(LIST)
    assert empty.status_code == 200 and 'id="no-cas-services"' in empty.text
    assert "Chưa có dịch vụ CAS nào được đăng ký." in empty.text
    register(runtime, attributes=["name", "province"])
    for path in (LIST, NEW, f"{LIST}/van-ban", f"{LIST}/van-ban?action=remove"):
        response = web.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers["cache-control"] == "no-store"
        assert '<html lang="vi">' in response.text
        assert 'aria-current="page">Dịch vụ CAS</a>' in response.text
    detail = web.get(f"{LIST}/van-ban").text
    assert "Họ và tên, Tỉnh (mã và tên)" in detail and URL in detail
    english = web.get(f"{LIST}/van-ban?lang=en").text
    assert '<html lang="en">' in english and "Remove the service" in english


def test_register_by_exact_url_audited_as_the_admin(web, runtime, world):
    sign_in(web, runtime, world.system)
    response = post(web, NEW, form(), form_page=NEW)  # type: ignore[arg-type]
    assert response.status_code == 303
    assert response.headers["location"] == f"{LIST}/van-ban?done=registered"
    assert "Đã đăng ký dịch vụ." in web.get(response.headers["location"]).text
    assert registered(runtime) == [
        {
            "service_id": "van-ban",
            "name": "Quản lý văn bản",
            "match": "exact",
            "url_pattern": URL,
            "attributes": ["name", "unit"],
            "single_logout": True,
            "minimum_acr": None,
        }
    ]
    [entry] = audit_actions(runtime, "cas.service_registered")
    assert (entry.actor, entry.target) == ("user:quan.tri", "cas_service:van-ban")
    assert entry.client_address == "testclient"
    assert f'href="{LIST}/van-ban"' in web.get(LIST).text


def test_register_by_pattern_without_single_logout(web, runtime, world):
    sign_in(web, runtime, world.system)
    data = form(service_id="mot-cua", match="regex", address=PATTERN, single_logout=None)
    response = post(web, NEW, data, form_page=NEW)  # type: ignore[arg-type]
    assert response.status_code == 303
    [service] = registered(runtime)
    assert (service["match"], service["url_pattern"]) == ("regex", PATTERN)
    assert service["single_logout"] is False


def test_register_a_service_that_requires_passkeys(web, runtime, world):
    sign_in(web, runtime, world.system)
    data = form(minimum_acr="urn:commune-sso:acr:phishing-resistant")
    response = post(web, NEW, data, form_page=NEW)  # type: ignore[arg-type]
    assert response.status_code == 303
    [service] = registered(runtime)
    assert service["minimum_acr"] == "urn:commune-sso:acr:phishing-resistant"
    assert "Chống giả mạo (khóa truy cập hoặc chứng thư số)" in web.get(f"{LIST}/van-ban").text
    refused = post(web, NEW, form(service_id="khac", minimum_acr="urn:x"), form_page=NEW)  # type: ignore[arg-type]
    assert refused.status_code == 400 and 'id="minimum_acr-error"' in refused.text


def test_the_same_form_sent_twice_registers_one_service(web, runtime, world):
    sign_in(web, runtime, world.system)
    token = csrf_of(web, NEW)
    first = web.post(NEW, data={"csrf_token": token, **form()})
    again = web.post(NEW, data={"csrf_token": token, **form()})
    assert first.status_code == 303 and again.status_code == 303
    assert again.headers["location"] == f"{LIST}/van-ban"
    assert len(registered(runtime)) == 1
    # Another service under a taken id is refused next to the field.
    other = web.post(NEW, data={"csrf_token": token, **form(address=URL + "2")})
    assert other.status_code == 400
    assert re.search(r'id="service_id-error">Đã có dịch vụ được đăng ký với mã này.<', other.text)


def test_problems_are_shown_next_to_their_field_and_nothing_is_saved(web, runtime, world):
    sign_in(web, runtime, world.system)
    cases = [
        (form(service_id="Văn Bản"), "service_id", "Mã dịch vụ gồm 1 đến 48 ký tự"),
        (form(name=" "), "name", "Dịch vụ cần có tên"),
        (form(address="http://vanban.laocai.gov.vn/cas"), "address", "phải dùng https"),
        (form(address="https://user@vanban.laocai.gov.vn/"), "address", "không hợp lệ"),
        (form(match="regex", address="https://x.vn/.*"), "address", "phải được neo hai đầu"),
        (form(match="regex", address="^https://.*$"), "address", "khớp với bất kỳ trang web"),
        (form(match=None), "address", "Hãy nhập hoặc một địa chỉ dịch vụ chính xác"),
        (form(attributes=["name", "password"]), "attributes", "Không có thuộc tính password"),
    ]
    for data, field, message in cases:
        response = post(web, NEW, data, form_page=NEW)  # type: ignore[arg-type]
        assert response.status_code == 400, data
        problem = re.search(rf'id="{field}-error">([^<]+)<', response.text)
        assert problem and message in problem.group(1), (data, problem and problem.group(1))
        assert f'aria-describedby="{field}-error' in response.text or field == "attributes"
        # What was typed is kept.
        assert f'value="{data.get("service_id", "")}"' in response.text
    english = post(web, f"{NEW}?lang=en", form(name=""), form_page=NEW)  # type: ignore[arg-type]
    assert "A service needs a name of at most 200 characters." in english.text
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(CasService)) == 0
    assert audit_actions(runtime, "cas.") == []


def test_remove_is_secondary_confirmed_and_audited(web, runtime, world):
    register(runtime)
    sign_in(web, runtime, world.system)
    page = f"{LIST}/van-ban"
    detail = web.get(page).text
    assert "button--danger" not in detail
    assert f'<a class="button button--secondary" href="{page}?action=remove">' in detail
    confirm = web.get(f"{page}?action=remove")
    assert f'action="{page}?action=remove"' in confirm.text
    assert 'class="button button--danger">Gỡ dịch vụ<' in confirm.text
    assert len(registered(runtime)) == 1  # reaching the confirmation changes nothing
    # Without the token, the friendly "form expired" page, and nothing removed.
    stale = web.post(f"{page}?action=remove", data={"csrf_token": "stale"})
    assert stale.status_code == 403 and "Biểu mẫu đã hết hạn" in stale.text
    assert len(registered(runtime)) == 1
    # A POST to the page without the action removes nothing either.
    assert post(web, page, form_page=f"{page}?action=remove").status_code == 404

    removed = post(web, f"{page}?action=remove", form_page=f"{page}?action=remove")

    assert removed.status_code == 303 and removed.headers["location"] == f"{LIST}?removed=1"
    assert "Đã gỡ dịch vụ." in web.get(removed.headers["location"]).text
    assert registered(runtime) == []
    assert web.get(page).status_code == 404
    [entry] = audit_actions(runtime, "cas.service_removed")
    assert (entry.actor, entry.target) == ("user:quan.tri", "cas_service:van-ban")


def test_unknown_services_and_actions_are_404(web, runtime, world):
    register(runtime)
    sign_in(web, runtime, world.system)
    assert web.get(f"{LIST}/khong-co").status_code == 404
    assert web.get(f"{LIST}/van-ban?action=explode").status_code == 404
    token = csrf_of(web, NEW)
    missing = web.post(f"{LIST}/khong-co?action=remove", data={"csrf_token": token})
    assert missing.status_code == 404


def test_the_form_offers_every_releasable_attribute_group():
    assert list(ATTRIBUTE_LABELS) == list(RELEASABLE)
