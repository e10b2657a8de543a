"""The admin pages of the upstream providers (/admin/upstreams) through the real ASGI app, with
a second commune-sso as the upstream: system administrators only; add by issuer (the discovery
document fetched then; its problems, and the CLI's rules, shown next to their field in
Vietnamese first, nothing saved); change the link claim, scopes and button label; remove after
a confirmation; CSRF on every change; every change audited with the admin as actor."""

from __future__ import annotations

import json
import re

from sqlalchemy import func, select

from core.db import transaction
from idp.federation import providers
from idp.models import UpstreamProvider
from idp.runtime import IdpRuntime
from tests.idp.federation.conftest import UPSTREAM_ID, UPSTREAM_SCOPE, Upstream, register_upstream
from tests.idp.test_admin_pages import audit_actions, csrf_of, post, sign_in
from tests.idp.test_admin_pages import world as world  # the same admins and officials

LIST = "/admin/upstreams"
NEW = "/admin/upstreams/new"
PAGE = f"{LIST}/{UPSTREAM_ID}"


def form(upstream: Upstream, **changes: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "issuer": upstream.issuer,
        "upstream_id": UPSTREAM_ID,
        "name_vi": "VNeID thử nghiệm",
        "name_en": "Test VNeID",
        "client_id": upstream.client_id,
        "auth_method": "client_secret_basic",
        "client_secret": upstream.client_secret,
        "link_claim": "citizen_id",
        "scope": UPSTREAM_SCOPE,
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def active(runtime: IdpRuntime) -> list[dict[str, object]]:
    with transaction(runtime.session_factory) as session:
        return [providers.as_dict(p) for p in providers.REGISTRY.list_active(session)]


def problem(page: str, field: str) -> str:
    found = re.search(rf'id="{field}-error">([^<]+)<', page)
    assert found, (field, page[-3000:])
    return found.group(1)


def test_only_system_admins_see_the_pages(web, runtime, world, upstream):
    register_upstream(runtime, upstream)
    sign_in(web, runtime, world.province_admin_15)
    for path in (LIST, NEW, PAGE, f"{PAGE}?action=remove"):
        response = web.get(path)
        assert response.status_code == 403, path
        assert "Chỉ quản trị viên hệ thống" in response.text
    assert 'href="/admin/upstreams"' not in web.get("/admin").text
    sign_in(web, runtime, world.system)
    menu = web.get("/admin").text
    assert re.search(r'<a href="/admin/upstreams">Nhà cung cấp định danh bên ngoài</a>', menu)


def test_every_page_renders_in_vietnamese_then_english(web, runtime, world, upstream):
    sign_in(web, runtime, world.system)
    empty = web.get(LIST)
    assert empty.status_code == 200 and 'id="no-upstreams"' in empty.text
    assert "Chưa có nhà cung cấp định danh bên ngoài nào được thêm." in empty.text
    register_upstream(runtime, upstream)
    for path in (LIST, NEW, PAGE, f"{PAGE}?action=remove"):
        response = web.get(path)
        assert response.status_code == 200, (path, response.text[:300])
        assert response.headers["cache-control"] == "no-store"
        assert '<html lang="vi">' in response.text
        assert 'aria-current="page">Nhà cung cấp định danh bên ngoài</a>' in response.text
    detail = web.get(PAGE).text
    assert upstream.issuer in detail and "Số định danh cá nhân (CCCD)" in detail
    # The addresses to register at the provider.
    assert f"/login/upstream/{UPSTREAM_ID}/callback" in detail
    assert "/login/upstream/logged-out" in detail
    english = web.get(f"{PAGE}?lang=en").text
    assert '<html lang="en">' in english and "Remove the provider" in english


def test_add_by_issuer_audited_as_the_admin(web, runtime, world, upstream):
    sign_in(web, runtime, world.system)
    response = post(web, NEW, form(upstream), form_page=NEW)  # type: ignore[arg-type]
    assert response.status_code == 303, response.text[-2000:]
    assert response.headers["location"] == f"{PAGE}?done=added"
    assert "Đã thêm nhà cung cấp." in web.get(response.headers["location"]).text
    [added] = active(runtime)
    assert added["issuer"] == upstream.issuer
    assert added["token_endpoint_auth_method"] == "client_secret_basic"
    assert added["link_claim"] == "citizen_id" and added["scope"] == UPSTREAM_SCOPE
    assert str(added["end_session_endpoint"]).startswith(upstream.issuer)
    with transaction(runtime.session_factory) as session:
        provider = providers.REGISTRY.get_active(session, UPSTREAM_ID)
        secret = providers.client_secret(provider, server_secret=runtime.server_secret)
        assert secret == upstream.client_secret
    [entry] = audit_actions(runtime, "upstream.registered")
    assert (entry.actor, entry.target) == ("user:quan.tri", f"upstream:{UPSTREAM_ID}")
    assert entry.client_address == "testclient"
    assert upstream.client_secret not in (entry.details or "")
    assert f'href="{PAGE}"' in web.get(LIST).text
    assert "VNeID thử nghiệm" in web.get(LIST).text


def test_the_id_defaults_to_the_issuers_host(web, runtime, world, upstream):
    sign_in(web, runtime, world.system)
    response = post(web, NEW, form(upstream, upstream_id=""), form_page=NEW)  # type: ignore[arg-type]
    assert response.status_code == 303, response.text[-2000:]
    assert response.headers["location"] == f"{LIST}/localhost?done=added"
    assert [p["upstream_id"] for p in active(runtime)] == ["localhost"]


def test_problems_are_shown_next_to_their_field_and_nothing_is_saved(web, runtime, world, upstream):
    sign_in(web, runtime, world.system)
    unreachable = "http://127.0.0.1:9"
    cases = [
        (form(upstream, issuer=""), "issuer", "Hãy nhập định danh (issuer)"),
        (form(upstream, issuer="http://sso.example.vn"), "issuer", "không phải là địa chỉ https"),
        (form(upstream, issuer=unreachable), "issuer", "Không kết nối được tới"),
        (form(upstream, issuer=upstream.issuer + "/"), "issuer", "ghi một issuer khác"),
        (form(upstream, client_secret=""), "client_secret", "Hãy nhập khóa bí mật"),
        (form(upstream, upstream_id="VNeID"), "upstream_id", "Mã nhà cung cấp gồm 1 đến 48"),
        (
            form(upstream, link_claim="email"),
            "link_claim",
            "Không bao giờ liên kết cán bộ chỉ bằng e-mail",
        ),
        (form(upstream, name_vi=" "), "name_vi", "200"),
        (form(upstream, client_id=""), "client_id", "client_id"),
    ]
    for data, field, message in cases:
        response = post(web, NEW, data, form_page=NEW)  # type: ignore[arg-type]
        assert response.status_code == 400, data
        shown = problem(response.text, field)
        assert message in shown, (data, shown)
        assert f'aria-describedby="{field}-error' in response.text
        # What was typed is kept, except the secret.
        assert f'value="{data.get("client_id", "")}"' in response.text
        assert upstream.client_secret not in response.text
    english = post(web, f"{NEW}?lang=en", form(upstream, issuer=unreachable), form_page=NEW)  # type: ignore[arg-type]
    assert "cannot be reached" in problem(english.text, "issuer")
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(UpstreamProvider)) == 0
    assert audit_actions(runtime, "upstream.") == []


def test_a_taken_id_is_refused_next_to_the_field(web, runtime, world, upstream):
    register_upstream(runtime, upstream)
    sign_in(web, runtime, world.system)
    response = post(web, NEW, form(upstream), form_page=NEW)  # type: ignore[arg-type]
    assert response.status_code == 400
    assert "Đã có nhà cung cấp được đăng ký với mã này." in problem(response.text, "upstream_id")
    assert len(active(runtime)) == 1


def test_change_the_link_claim_scopes_and_label_audited(web, runtime, world, upstream):
    register_upstream(runtime, upstream)
    sign_in(web, runtime, world.system)
    changed = post(
        web,
        PAGE,
        {
            "link_claim": "preferred_username",
            "scope": "profile",
            "name_vi": "Cổng SSO Lào Cai",
            "name_en": "",
        },
        form_page=PAGE,
    )
    assert changed.status_code == 303 and changed.headers["location"] == f"{PAGE}?done=changed"
    assert "Đã lưu các thay đổi." in web.get(changed.headers["location"]).text
    [provider] = active(runtime)
    assert provider["link_claim"] == "preferred_username"
    assert provider["scope"] == "openid profile"
    assert (provider["name"], provider["name_en"]) == ("Cổng SSO Lào Cai", None)
    [entry] = audit_actions(runtime, "upstream.changed")
    assert (entry.actor, entry.target) == ("user:quan.tri", f"upstream:{UPSTREAM_ID}")
    details = json.loads(entry.details or "{}")
    assert details["link_claim"] == {"from": "citizen_id", "to": "preferred_username"}
    # The same form again changes nothing and records nothing.
    again = post(
        web,
        PAGE,
        {
            "link_claim": "preferred_username",
            "scope": "openid profile",
            "name_vi": "Cổng SSO Lào Cai",
        },
        form_page=PAGE,
    )
    assert again.headers["location"] == f"{PAGE}?done=unchanged"
    assert len(audit_actions(runtime, "upstream.changed")) == 1
    # E-mail is refused here as when adding, next to its field, nothing saved.
    refused = post(
        web, PAGE, {"link_claim": "email", "scope": "openid", "name_vi": "X"}, form_page=PAGE
    )
    assert refused.status_code == 400
    assert "Không bao giờ liên kết cán bộ chỉ bằng e-mail" in problem(refused.text, "link_claim")
    assert active(runtime)[0]["link_claim"] == "preferred_username"


def test_remove_is_secondary_confirmed_and_audited(web, runtime, world, upstream):
    register_upstream(runtime, upstream)
    sign_in(web, runtime, world.system)
    detail = web.get(PAGE).text
    assert f'<a class="button button--secondary" href="{PAGE}?action=remove">' in detail
    confirm = web.get(f"{PAGE}?action=remove")
    assert f'action="{PAGE}?action=remove"' in confirm.text
    assert 'class="button button--danger">Gỡ nhà cung cấp<' in confirm.text
    assert len(active(runtime)) == 1  # reaching the confirmation changes nothing
    stale = web.post(f"{PAGE}?action=remove", data={"csrf_token": "stale"})
    assert stale.status_code == 403 and "Biểu mẫu đã hết hạn" in stale.text
    assert len(active(runtime)) == 1
    assert post(web, f"{PAGE}?action=explode", form_page=PAGE).status_code == 404

    removed = post(web, f"{PAGE}?action=remove", form_page=f"{PAGE}?action=remove")

    assert removed.status_code == 303 and removed.headers["location"] == f"{LIST}?removed=1"
    assert "Đã gỡ nhà cung cấp." in web.get(removed.headers["location"]).text
    assert active(runtime) == []
    assert web.get(PAGE).status_code == 404
    [entry] = audit_actions(runtime, "upstream.removed")
    assert (entry.actor, entry.target) == ("user:quan.tri", f"upstream:{UPSTREAM_ID}")
    # Soft: the row and its history stay.
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(UpstreamProvider)) == 1


def test_unknown_providers_and_actions_are_404(web, runtime, world, upstream):
    register_upstream(runtime, upstream)
    sign_in(web, runtime, world.system)
    assert web.get(f"{LIST}/khong-co").status_code == 404
    assert web.get(f"{PAGE}?action=explode").status_code == 404
    token = csrf_of(web, NEW)
    assert web.post(f"{LIST}/khong-co?action=remove", data={"csrf_token": token}).status_code == 404
