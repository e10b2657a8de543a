"""The IdP admin pages (/admin) through the real ASGI app, on SQLite and PostgreSQL.

The admin is signed in the way the pages see it: an IdP browser session (idp.sessions) and its
cookie. Scope: a unit admin of A never sees B (lists and URLs), a province admin stays in the
province, a non-admin gets a 403 page; every form has a CSRF token and a stale one gets the
friendly "form expired" page; every action is audited.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from core import audit
from core.db import transaction
from core.opaque_tokens import digest
from idp import accounts, admin_scope, clients, sessions
from idp.models import (
    AccountProfile,
    ActivationCode,
    BrowserSession,
    Client,
    ImportJob,
    LogoutDelivery,
    RecoveryCode,
    TotpCredential,
    Unit,
    UnitEvent,
)
from idp.official_data import fold_for_search
from idp.runtime import IdpRuntime
from idp.web.admin_pages.clients import client_path
from idp.web.admin_pages.guard import DISPLAY_TIMEZONE
from tests.conftest import OFFICIAL_PASSWORD, register_client
from tests.idp.import_files import cccd, csv_bytes, stored_digest

SYSTEM = admin_scope.AdminScope(True, frozenset(), frozenset())
# Real codes: Lào Cai (15) with two of its wards, Sơn La (14) with one.
UNITS = [
    ("15", "province", "Tỉnh Lào Cai", "15"),
    ("14", "province", "Tỉnh Sơn La", "14"),
    ("02656", "ward", "Phường Cam Đường", "15"),
    ("02668", "ward", "Xã Bát Xát", "15"),
    ("03862", "ward", "Xã Mường Bú", "14"),
]
WARD_A, WARD_B, WARD_C = "02656", "02668", "03862"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class World:
    system: str
    unit_admin_a: str
    province_admin_15: str
    nobody: str
    in_a: str
    in_b: str
    in_c: str


def make_account(
    runtime: IdpRuntime,
    username: str,
    full_name: str,
    *,
    unit: str | None = None,
    system: bool = False,
    password: bool = True,
    citizen_serial: int | None = None,
) -> None:
    with transaction(runtime.session_factory) as session:
        account = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username=username,
            full_name=full_name,
            password=OFFICIAL_PASSWORD if password else None,
            is_system_admin=system,
        )
        if unit is not None:
            unit_row = session.scalar(select(Unit).where(Unit.code == unit))
            assert unit_row is not None
            session.add(
                AccountProfile(
                    account_id=account.id,
                    citizen_id=cccd(citizen_serial) if citizen_serial else None,
                    unit_id=unit_row.id,
                    position="Chuyên viên",
                    search_name=fold_for_search(full_name),
                )
            )


def grant(runtime: IdpRuntime, username: str, role: str, unit: str) -> None:
    with transaction(runtime.session_factory) as session:
        admin_scope.grant(
            session=session,
            clock=runtime.clock,
            actor_scope=SYSTEM,
            actor="test",
            account=accounts.get_by_username(session, username),
            role=role,
            unit=session.scalars(select(Unit).where(Unit.code == unit)).one(),
        )


def add_units(runtime: IdpRuntime, rows: list[tuple[str, str, str, str]]) -> None:
    """Units as (code, level, name, province code)."""
    now = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        session.add_all(
            Unit(
                code=code,
                level=level,
                name=name,
                division_type="xã",
                province_code=province,
                status="active",
                created_at=now,
                updated_at=now,
            )
            for code, level, name, province in rows
        )


def add_delivery(
    runtime: IdpRuntime, client: Client, *, subject: str, status: str, status_code: int
) -> None:
    now = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        session.add(
            LogoutDelivery(
                client_pk=client.id,
                client_id=client.client_id,
                uri="http://127.0.0.1:9/bcl",
                subject=subject,
                sid=None,
                reason="rp_logout",
                status=status,
                attempts=1,
                created_at=now,
                last_attempt_at=now,
                last_status_code=status_code,
                log=[{"at": now.isoformat(), "status_code": status_code}],
            )
        )


@pytest.fixture
def world(runtime: IdpRuntime) -> World:
    now = runtime.clock.now()
    add_units(runtime, UNITS)
    with transaction(runtime.session_factory) as session:
        ward_a = session.scalars(select(Unit).where(Unit.code == WARD_A)).one()
        session.add(
            UnitEvent(unit_id=ward_a.id, kind="renamed", at=now, actor="test", details={"x": "y"})
        )
    make_account(runtime, "quan.tri", "Quản trị hệ thống", system=True)
    make_account(runtime, "admin.a", "Quản trị Cam Đường", unit=WARD_A)
    make_account(runtime, "admin.tinh15", "Quản trị Lào Cai", unit=WARD_A)
    make_account(runtime, "khong.phai", "Không Phải Quản Trị", unit=WARD_A)
    make_account(runtime, "nguyen.van.an", "Nguyễn Văn An", unit=WARD_A, citizen_serial=1)
    make_account(
        runtime, "tran.thi.binh", "Trần Thị Bình", unit=WARD_B, citizen_serial=2, password=False
    )
    make_account(runtime, "lo.van.ca", "Lò Văn Cà", unit=WARD_C, citizen_serial=3)
    grant(runtime, "admin.a", admin_scope.UNIT_ADMIN, WARD_A)
    grant(runtime, "admin.tinh15", admin_scope.PROVINCE_ADMIN, "15")
    return World(
        system="quan.tri",
        unit_admin_a="admin.a",
        province_admin_15="admin.tinh15",
        nobody="khong.phai",
        in_a="nguyen.van.an",
        in_b="tran.thi.binh",
        in_c="lo.van.ca",
    )


def sign_in(web: TestClient, runtime: IdpRuntime, username: str) -> None:
    """What the IdP's login leaves behind: a browser session and its cookie."""
    with transaction(runtime.session_factory) as session:
        account = accounts.get_by_username(session, username)
        _, cookie = sessions.create(
            session=session,
            clock=runtime.clock,
            settings=runtime.settings,
            account=account,
            amr=["pwd"],
            client_address="127.0.0.1",
            user_agent="test",
        )
    web.cookies.clear()
    web.cookies.set(runtime.session_cookie_name, cookie)


def csrf_of(web: TestClient, path: str) -> str:
    page = web.get(path)
    assert page.status_code == 200, page.text
    match = CSRF_FIELD.search(page.text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def post(web: TestClient, path: str, data: dict[str, str] | None = None, *, form_page: str):
    token = csrf_of(web, form_page)
    return web.post(path, data={"csrf_token": token, **(data or {})})


def listed(page: str) -> list[str]:
    """The usernames in an officials list page."""
    return re.findall(r'<a href="/admin/officials/([a-z0-9._-]+)">', page)


def audit_actions(runtime: IdpRuntime, prefix: str) -> list[audit.AuditEntry]:
    with transaction(runtime.session_factory) as session:
        return list(
            session.scalars(
                select(audit.AuditEntry)
                .where(audit.AuditEntry.action.startswith(prefix))
                .order_by(audit.AuditEntry.seq)
            )
        )


# --------------------------------------------------------------------------------------------
# Signing in, and who is refused


def test_without_a_session_the_pages_send_to_login(web, world):
    response = web.get("/admin/officials?q=an")
    assert response.status_code == 303
    # Back to this page once the login accepts /admin paths as ``next``; until then, the
    # official's own account page.
    assert response.headers["location"] in (
        "/login?next=%2Fadmin%2Fofficials",
        "/login?next=%2Faccount",
    )
    login = web.get(response.headers["location"])
    assert login.status_code == 303 and "interaction=" in login.headers["location"]


def test_a_non_admin_gets_a_friendly_403_page(web, runtime, world):
    sign_in(web, runtime, world.nobody)
    for path in ("/admin", "/admin/officials", f"/admin/officials/{world.in_a}", "/admin/units"):
        response = web.get(path)
        assert response.status_code == 403, path
        assert "text/html" in response.headers["content-type"]
        assert "Tài khoản của bạn không quản trị đơn vị nào" in response.text


def test_a_unit_admin_is_refused_the_system_pages(web, runtime, world):
    sign_in(web, runtime, world.unit_admin_a)
    for path in (
        "/admin/clients",
        "/admin/clients/new",
        "/admin/audit",
        "/admin/logout-deliveries",
    ):
        response = web.get(path)
        assert response.status_code == 403, path
        assert "Chỉ quản trị viên hệ thống" in response.text


def test_every_page_renders_for_a_system_admin(web, runtime, world, rp):
    client, _ = rp
    sign_in(web, runtime, world.system)
    pages = [
        "/admin",
        "/admin/officials",
        f"/admin/officials/{world.in_a}",
        f"/admin/officials/{world.in_a}/disable",
        "/admin/units",
        f"/admin/units/{WARD_A}",
        "/admin/clients",
        "/admin/clients/new",
        client_path(client.client_id),
        f"{client_path(client.client_id)}?action=rotate",
        f"{client_path(client.client_id)}?action=remove",
        "/admin/audit",
        "/admin/logout-deliveries",
        "/admin/imports",
    ]
    for path in pages:
        response = web.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["cache-control"] == "no-store"
        assert '<html lang="vi">' in response.text
        assert "/static/admin.css" in response.text
    english = web.get("/admin/officials?lang=en")
    assert "Officials" in english.text and '<html lang="en">' in english.text


# --------------------------------------------------------------------------------------------
# Officials: search, filters, scope


def test_search_ignores_diacritics_and_case(web, runtime, world):
    sign_in(web, runtime, world.system)
    page = web.get("/admin/officials", params={"q": "NGUYEN van AN"})
    assert listed(page.text) == ["nguyen.van.an"]
    assert listed(web.get("/admin/officials", params={"q": "Bình"}).text) == ["tran.thi.binh"]
    by_citizen_id = web.get("/admin/officials", params={"q": cccd(2)})
    assert listed(by_citizen_id.text) == ["tran.thi.binh"]


def test_filters_by_unit_and_status(web, runtime, world):
    sign_in(web, runtime, world.system)
    in_b = web.get("/admin/officials", params={"unit": WARD_B})
    assert listed(in_b.text) == ["tran.thi.binh"]
    pending = web.get("/admin/officials", params={"status": "pending"})
    assert listed(pending.text) == ["tran.thi.binh"]
    assert "1 cán bộ" in pending.text
    assert listed(web.get("/admin/officials", params={"status": "disabled"}).text) == []


def test_pagination_keeps_the_filters(web, runtime, world):
    for number in range(55):
        make_account(runtime, f"can.bo.{number:02d}", f"Cán bộ số {number}", unit=WARD_A)
    sign_in(web, runtime, world.system)
    first = web.get("/admin/officials", params={"q": "can bo"})
    assert "can.bo.00" in first.text and "can.bo.54" not in first.text
    assert "page=2" in first.text and "q=can+bo" in first.text
    second = web.get("/admin/officials", params={"q": "can bo", "page": "2"})
    assert "can.bo.54" in second.text and "can.bo.00" not in second.text


def test_unit_admin_sees_only_their_unit(web, runtime, world):
    sign_in(web, runtime, world.unit_admin_a)
    listing = web.get("/admin/officials")
    assert listed(listing.text) == ["admin.a", "admin.tinh15", "khong.phai", "nguyen.van.an"]
    # Asking for unit B by filter gives nothing, not B's officials.
    assert listed(web.get("/admin/officials", params={"unit": WARD_B}).text) == []
    # By URL: exactly the answer for an official who does not exist.
    guessed = web.get(f"/admin/officials/{world.in_b}")
    missing = web.get("/admin/officials/khong.ton.tai")
    assert guessed.status_code == missing.status_code == 404
    assert "Trần Thị Bình" not in guessed.text
    assert guessed.text.replace(world.in_b, "") == missing.text.replace("khong.ton.tai", "")
    units_page = web.get("/admin/units")
    assert "Phường Cam Đường" in units_page.text and "Xã Bát Xát" not in units_page.text
    assert web.get(f"/admin/units/{WARD_B}").status_code == 404


def test_unit_admin_cannot_act_on_another_unit(web, runtime, world):
    sign_in(web, runtime, world.unit_admin_a)
    response = post(web, f"/admin/officials/{world.in_b}/disable", form_page="/admin/imports")
    assert response.status_code == 404
    with transaction(runtime.session_factory) as session:
        assert accounts.get_by_username(session, world.in_b).status == "active"
    assert web.get(f"/admin/officials/{world.in_b}/disable").status_code == 404


def test_province_admin_stays_in_the_province(web, runtime, world):
    sign_in(web, runtime, world.province_admin_15)
    listing = web.get("/admin/officials")
    assert "nguyen.van.an" in listed(listing.text) and "tran.thi.binh" in listed(listing.text)
    assert "lo.van.ca" not in listed(listing.text)
    assert web.get(f"/admin/officials/{world.in_c}").status_code == 404
    assert web.get(f"/admin/units/{WARD_C}").status_code == 404
    units_page = web.get("/admin/units")
    assert "Xã Bát Xát" in units_page.text and "Xã Mường Bú" not in units_page.text


def test_unit_page_shows_counts_and_history(web, runtime, world):
    sign_in(web, runtime, world.unit_admin_a)
    page = web.get(f"/admin/units/{WARD_A}")
    assert page.status_code == 200
    assert "Đổi tên đơn vị" in page.text  # the "renamed" event, in words
    # admin.a, admin.tinh15, khong.phai and nguyen.van.an have their profile in A.
    assert f'href="/admin/officials?unit={WARD_A}">4</a>' in page.text


# --------------------------------------------------------------------------------------------
# Officials: actions


def test_disable_and_enable_are_audited(web, runtime, world):
    sign_in(web, runtime, world.unit_admin_a)
    detail = f"/admin/officials/{world.in_a}"
    response = post(web, f"{detail}/disable", form_page=f"{detail}/disable")
    assert response.status_code == 303 and response.headers["location"] == f"{detail}?done=disable"
    assert "Tài khoản đã bị khóa" in web.get(response.headers["location"]).text
    with transaction(runtime.session_factory) as session:
        assert accounts.get_by_username(session, world.in_a).status == "disabled"
    response = post(web, f"{detail}/enable", form_page=f"{detail}/enable")
    assert response.status_code == 303
    entries = audit_actions(runtime, "account.")
    acted = [(e.actor, e.action, e.target) for e in entries if e.actor == "user:admin.a"]
    assert acted == [
        ("user:admin.a", "account.disable", f"account:{world.in_a}"),
        ("user:admin.a", "account.enable", f"account:{world.in_a}"),
    ]


def test_an_admin_cannot_disable_themselves(web, runtime, world):
    sign_in(web, runtime, world.unit_admin_a)
    path = f"/admin/officials/{world.unit_admin_a}/disable"
    response = post(web, path, form_page="/admin/imports")
    assert response.status_code == 409
    assert "Bạn không thể khóa tài khoản của chính mình" in response.text


def test_missing_or_stale_csrf_gets_the_friendly_page(web, runtime, world):
    sign_in(web, runtime, world.system)
    path = f"/admin/officials/{world.in_a}/disable"
    web.get(path)  # the CSRF cookie is set
    for data in ({}, {"csrf_token": "stale-token-from-another-browser"}):
        response = web.post(path, data=data)
        assert response.status_code == 403
        assert "text/html" in response.headers["content-type"]
        assert "Biểu mẫu đã hết hạn" in response.text
    with transaction(runtime.session_factory) as session:
        assert accounts.get_by_username(session, world.in_a).status == "active"


def test_new_activation_code_is_shown_once_and_replaces_the_old(web, runtime, world):
    sign_in(web, runtime, world.province_admin_15)
    path = f"/admin/officials/{world.in_b}/activation"
    first = post(web, path, form_page=path)
    assert first.status_code == 200
    code = re.search(r'id="activation-code"><code>([^<]+)</code>', first.text).group(1)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", code)
    with transaction(runtime.session_factory) as session:
        row = session.scalar(
            select(ActivationCode).where(
                ActivationCode.code_digest == stored_digest(session, world.in_b, code)
            )
        )
        assert row is not None and row.expires_at > runtime.clock.now()
    detail = web.get(f"/admin/officials/{world.in_b}")
    assert code not in detail.text
    second = post(web, path, form_page=path)
    new_code = re.search(r'id="activation-code"><code>([^<]+)</code>', second.text).group(1)
    assert new_code != code
    with transaction(runtime.session_factory) as session:
        old = session.scalar(
            select(ActivationCode).where(
                ActivationCode.code_digest == stored_digest(session, world.in_b, code)
            )
        )
        assert old is not None and old.expires_at <= runtime.clock.now()
    issued = audit_actions(runtime, "account.activation_code_issued")
    assert [e.actor for e in issued] == ["user:admin.tinh15", "user:admin.tinh15"]
    # An official who already has a password gets no activation code.
    refused = post(web, f"/admin/officials/{world.in_a}/activation", form_page="/admin/imports")
    assert refused.status_code == 409


def test_sign_out_everywhere_ends_sessions(web, runtime, world):
    other = TestClient(web.app, base_url=str(web.base_url), follow_redirects=False)
    sign_in(other, runtime, world.in_a)
    sign_in(web, runtime, world.system)
    path = f"/admin/officials/{world.in_a}/sign-out"
    response = post(web, path, form_page=path)
    assert response.status_code == 303
    assert "count=1" in response.headers["location"]
    with transaction(runtime.session_factory) as session:
        account = accounts.get_by_username(session, world.in_a)
        live = session.scalar(
            select(func.count())
            .select_from(BrowserSession)
            .where(BrowserSession.account_id == account.id, BrowserSession.ended_at.is_(None))
        )
    assert live == 0
    assert [e.target for e in audit_actions(runtime, "account.sign_out_everywhere")] == [
        f"account:{world.in_a}"
    ]


def test_reset_mfa_without_enrolment_is_refused_gracefully(web, runtime, world):
    sign_in(web, runtime, world.system)
    path = f"/admin/officials/{world.in_a}/reset-mfa"
    page = web.get(path)
    assert page.status_code == 200
    response = post(web, path, form_page="/admin/imports")
    assert response.status_code == 409
    assert "xác thực hai bước" in response.text.lower()


def test_reset_mfa_removes_the_authenticator_and_recovery_codes(web, runtime, world):
    now = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        account = accounts.get_by_username(session, world.in_a)
        session.add(
            TotpCredential(
                account_id=account.id, sealed_secret="x", created_at=now, confirmed_at=now
            )
        )
        session.add_all(
            RecoveryCode(account_id=account.id, code_digest=f"{n:064d}", created_at=now)
            for n in range(3)
        )
    sign_in(web, runtime, world.unit_admin_a)
    detail = web.get(f"/admin/officials/{world.in_a}")
    assert "Đã thiết lập" in detail.text and f"/officials/{world.in_a}/reset-mfa" in detail.text
    path = f"/admin/officials/{world.in_a}/reset-mfa"
    response = post(web, path, form_page=path)
    assert response.status_code == 303
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(TotpCredential)) == 0
        assert session.scalar(select(func.count()).select_from(RecoveryCode)) == 0
    [entry] = audit_actions(runtime, "account.totp_disabled")
    assert (entry.actor, entry.target) == ("user:admin.a", f"account:{world.in_a}")


# --------------------------------------------------------------------------------------------
# Apps


def test_register_app_shows_the_secret_once(web, runtime, world):
    sign_in(web, runtime, world.system)
    form_page = web.get("/admin/clients/new").text
    form = {
        "csrf_token": CSRF_FIELD.search(form_page).group(1),
        "form_id": re.search(r'name="form_id" value="([^"]+)"', form_page).group(1),
        "name": "Hệ thống một cửa",
        "grant_types": "authorization_code",
        "redirect_uris": "https://motcua.laocai.gov.vn/cb\nhttps://motcua.laocai.gov.vn/cb2",
        "post_logout_redirect_uris": "https://motcua.laocai.gov.vn/bye",
        "backchannel_logout_uri": "https://motcua.laocai.gov.vn/bcl",
        "frontchannel_logout_uri": "",
        "scope": "openid profile",
        "first_party": "on",
    }
    response = web.post("/admin/clients/new", data=form)
    assert response.status_code == 200, response.text
    client_id = re.search(r'id="client-id">([^<]+)<', response.text).group(1)
    secret = re.search(r'id="client-secret">([^<]+)<', response.text).group(1)
    with transaction(runtime.session_factory) as session:
        client = session.scalars(select(Client).where(Client.client_id == client_id)).one()
        assert client.secret_digest == digest(secret)
        assert client.redirect_uris == [
            "https://motcua.laocai.gov.vn/cb",
            "https://motcua.laocai.gov.vn/cb2",
        ]
        assert client.backchannel_logout_uri == "https://motcua.laocai.gov.vn/bcl"
        assert client.first_party
    detail = web.get(client_path(client_id))
    assert detail.status_code == 200
    assert secret not in detail.text and client_id in detail.text
    # The same form sent again (a double click) registers nothing more and shows no secret.
    again = web.post("/admin/clients/new", data=form)
    assert again.status_code == 303 and again.headers["location"] == client_path(client_id)
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Client)) == 1
    assert [e.actor for e in audit_actions(runtime, "client.create")] == ["user:quan.tri"]


def test_register_form_errors_are_next_to_the_field_and_keep_the_values(web, runtime, world):
    sign_in(web, runtime, world.system)
    response = post(
        web,
        "/admin/clients/new",
        {
            "name": "Ứng dụng thử",
            "grant_types": "authorization_code",
            "redirect_uris": "https://ok.example.vn/cb\nhttp://insecure.example.vn/cb",
            "backchannel_logout_uri": "https://ok.example.vn/bcl#frag",
        },
        form_page="/admin/clients/new",
    )
    assert response.status_code == 400
    assert 'value="Ứng dụng thử"' in response.text
    assert "http://insecure.example.vn/cb</textarea>" in response.text
    assert 'id="redirect_uris-error">⚠' not in response.text  # the marker is CSS, not text
    assert re.search(r'id="redirect_uris-error">Dòng 2:', response.text)
    assert 'aria-describedby="backchannel_logout_uri-error"' in response.text
    english = web.post(
        "/admin/clients/new?lang=en",
        data={"csrf_token": csrf_of(web, "/admin/clients/new"), "name": ""},
    )
    assert "Enter the app's name (at most 200 characters)." in english.text
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Client)) == 0


QUOTED_CLIENT_ID = "urn:laocai:motcua/v2"


def service_app(runtime: IdpRuntime, *, method: str = "client_secret_basic") -> tuple[str, str]:
    """A confidential service client (client_credentials) with a client_id to percent-encode."""
    client, secret = register_client(
        runtime,
        client_id=QUOTED_CLIENT_ID,
        name="Đồng bộ một cửa",
        grant_types=["client_credentials"],
        redirect_uris=[],
        post_logout_redirect_uris=[],
        scope="profile",
        auth_method=method,
        first_party=False,
    )
    assert secret is not None
    return client.client_id, secret


def as_client(
    web: TestClient, path: str, data: dict[str, str], client_id: str, secret: str, method: str
) -> httpx.Response:
    """A POST to an OAuth endpoint, the client authenticated by ``method`` (RFC 6749 §2.3.1)."""
    if method == "client_secret_basic":
        # Form-urlencoded before Base64: the client_id holds ":" and "/".
        auth = (quote(client_id, safe=""), quote(secret, safe=""))
        return web.post(path, data=data, auth=auth)
    return web.post(path, data={**data, "client_id": client_id, "client_secret": secret})


def token_status(web: TestClient, client_id: str, secret: str, method: str) -> int:
    grant = {"grant_type": "client_credentials"}
    return as_client(web, "/oauth2/token", grant, client_id, secret, method).status_code


def secret_shown(page: str) -> str:
    match = re.search(r'id="client-secret">([^<]+)<', page)
    assert match, "no secret on the page"
    return match.group(1)


def test_apps_are_addressed_by_client_id_percent_encoded(web, runtime, world, rp):
    numeric, _ = rp
    client_id, _ = service_app(runtime)
    page = "/admin/clients/urn%3Alaocai%3Amotcua%2Fv2"
    assert client_path(client_id) == page
    sign_in(web, runtime, world.system)
    listing = web.get("/admin/clients")
    assert f'href="{page}"' in listing.text
    detail = web.get(page)
    assert detail.status_code == 200 and "Đồng bộ một cửa" in detail.text
    assert f'action="{page}"' in detail.text
    assert f'href="{page}?action=rotate"' in detail.text
    # The language switch keeps the address (its path is the decoded one, the same route).
    english = web.get(f"{page}?lang=en")
    assert english.status_code == 200 and "Other actions" in english.text
    assert web.get(f"{page}?action=rotate").status_code == 200
    # The numeric row id of before is no address any more, nor an unknown action.
    assert web.get(f"/admin/clients/{numeric.id}").status_code == 404
    assert web.get(f"{page}?action=explode").status_code == 404
    assert web.get(f"{page}/rotate").status_code == 404


def test_the_page_offers_save_as_the_only_main_button_and_confirms_the_rest(web, runtime, world):
    client_id, _ = service_app(runtime)
    page = client_path(client_id)
    sign_in(web, runtime, world.system)
    detail = web.get(page).text
    assert "button--danger" not in detail
    assert re.findall(r'<button type="submit" class="button button--primary">([^<]+)<', detail) == [
        "Lưu"
    ]
    for action in ("rotate", "remove"):
        assert re.search(
            rf'<a class="button button--secondary" href="{re.escape(page)}\?action={action}">',
            detail,
        )
    confirm = web.get(f"{page}?action=remove")
    assert confirm.status_code == 200 and f'action="{page}?action=remove"' in confirm.text
    # Reaching the confirmation changes nothing; confirming removes, audited.
    with transaction(runtime.session_factory) as session:
        assert clients.find_active(session, client_id) is not None
    removed = post(web, f"{page}?action=remove", form_page=f"{page}?action=remove")
    assert removed.status_code == 303 and removed.headers["location"] == "/admin/clients?removed=1"
    assert web.get(page).status_code == 404
    [entry] = audit_actions(runtime, "client.remove")
    assert (entry.actor, entry.target) == ("user:quan.tri", f"client:{client_id}")


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_rotation_keeps_the_old_secret_until_the_chosen_time(web, runtime, world, method):
    client_id, old_secret = service_app(runtime, method=method)
    page = client_path(client_id)
    sign_in(web, runtime, world.system)
    confirm = web.get(f"{page}?action=rotate").text
    assert re.search(r'<input type="radio" name="overlap" value="24h" checked>', confirm)
    rotated = post(web, f"{page}?action=rotate", {"overlap": "1h"}, form_page=page)
    assert rotated.status_code == 200
    new_secret = secret_shown(rotated.text)
    until = runtime.clock.now() + timedelta(hours=1)
    shown_until = until.astimezone(DISPLAY_TIMEZONE).strftime("%d/%m/%Y %H:%M")
    assert shown_until in rotated.text
    detail = web.get(page).text
    assert "Còn hiệu lực đến" in detail and shown_until in detail
    assert f'href="{page}?action=revoke-old-secret"' in detail
    with transaction(runtime.session_factory) as session:
        row = clients.get_active(session, client_id)
        assert row.secret_digest == digest(new_secret)
        assert row.previous_secret_digest == digest(old_secret)  # hashed as the current one
    [entry] = audit_actions(runtime, "client.rotate_secret")
    assert entry.actor == "user:quan.tri"
    assert json.loads(entry.details) == {"old_secret_valid_until": until.isoformat()}
    # Both secrets work during the overlap, at the token endpoint and the introspection one.
    for secret in (old_secret, new_secret, old_secret):
        assert token_status(web, client_id, secret, method) == 200
    grant = {"grant_type": "client_credentials"}
    token = as_client(web, "/oauth2/token", grant, client_id, new_secret, method).json()
    for endpoint in ("/oauth2/introspect", "/oauth2/revoke"):
        answer = as_client(
            web, endpoint, {"token": token["access_token"]}, client_id, old_secret, method
        )
        assert answer.status_code == 200, endpoint
    introspected = as_client(
        web, "/oauth2/introspect", {"token": token["access_token"]}, client_id, new_secret, method
    )
    assert introspected.json() == {"active": False}  # revoked with the old secret
    runtime.clock.advance(hours=1, seconds=-1)
    assert token_status(web, client_id, old_secret, method) == 200
    runtime.clock.advance(seconds=1)
    assert token_status(web, client_id, old_secret, method) == 401
    assert token_status(web, client_id, new_secret, method) == 200
    assert "Còn hiệu lực đến" not in web.get(page).text


def test_revoke_the_old_secret_early(web, runtime, world):
    method = "client_secret_basic"
    client_id, old_secret = service_app(runtime)
    page = client_path(client_id)
    sign_in(web, runtime, world.system)
    new_secret = secret_shown(
        post(web, f"{page}?action=rotate", {"overlap": "24h"}, form_page=page).text
    )
    assert token_status(web, client_id, old_secret, method) == 200
    confirm = web.get(f"{page}?action=revoke-old-secret")
    assert confirm.status_code == 200 and "Thu hồi khóa bí mật cũ ngay" in confirm.text
    revoked = post(web, f"{page}?action=revoke-old-secret", form_page=page)
    assert revoked.status_code == 303
    assert revoked.headers["location"] == f"{page}?done=old-secret-revoked"
    assert "Khóa bí mật cũ đã ngừng hoạt động." in web.get(revoked.headers["location"]).text
    assert token_status(web, client_id, old_secret, method) == 401
    assert token_status(web, client_id, new_secret, method) == 200
    [entry] = audit_actions(runtime, "client.revoke_old_secret")
    assert (entry.actor, entry.target) == ("user:quan.tri", f"client:{client_id}")
    # Nothing left to revoke: the confirmation says so, a replayed form is refused.
    assert "không còn khóa bí mật cũ" in web.get(f"{page}?action=revoke-old-secret").text
    again = post(web, f"{page}?action=revoke-old-secret", form_page=page)
    assert again.status_code == 409
    assert len(audit_actions(runtime, "client.revoke_old_secret")) == 1


def test_rotation_without_overlap_and_a_bad_overlap(web, runtime, world):
    method = "client_secret_basic"
    client_id, old_secret = service_app(runtime)
    page = client_path(client_id)
    sign_in(web, runtime, world.system)
    refused = post(web, f"{page}?action=rotate", {"overlap": "5y"}, form_page=page)
    assert refused.status_code == 400 and 'id="client-secret"' not in refused.text
    assert token_status(web, client_id, old_secret, method) == 200
    assert audit_actions(runtime, "client.rotate_secret") == []
    rotated = post(web, f"{page}?action=rotate", {"overlap": "0"}, form_page=page)
    new_secret = secret_shown(rotated.text)
    assert token_status(web, client_id, old_secret, method) == 401
    assert token_status(web, client_id, new_secret, method) == 200
    assert "Còn hiệu lực đến" not in web.get(page).text


def client_row(runtime: IdpRuntime, client_id: str) -> dict[str, object]:
    with transaction(runtime.session_factory) as session:
        return clients.ClientSettings.of(clients.get_active(session, client_id)).as_dict()


def test_invalid_settings_are_shown_by_field_and_nothing_is_saved(web, runtime, world, rp):
    client, _ = rp
    page = client_path(client.client_id)
    before = client_row(runtime, client.client_id)
    sign_in(web, runtime, world.system)
    form = {
        "name": "Hệ thống quản lý văn bản",
        "grant_types": "authorization_code",
        "redirect_uris": "http://127.0.0.1:9/cb\nhttp://vanban.laocai.gov.vn/cb",
        "post_logout_redirect_uris": "",
        "backchannel_logout_uri": "https://vanban.laocai.gov.vn/bcl#x",
        "frontchannel_logout_uri": "https://other.laocai.gov.vn/fcl",
        "scope": "openid root",
        "id_token_signed_response_alg": "HS256",
        "access_token_signed_response_alg": "RS256",
    }
    bad = post(web, page, form, form_page=page)
    assert bad.status_code == 400
    assert "Chưa có thay đổi nào được lưu." in bad.text
    assert "http://vanban.laocai.gov.vn/cb</textarea>" in bad.text  # what was typed, kept
    errors = dict(re.findall(r'<p class="field__error" id="([a-z_]+)-error">([^<]+)</p>', bad.text))
    assert errors == {
        "redirect_uris": "Dòng 2: URI chuyển hướng phải dùng https (chỉ dùng http thường với "
        "127.0.0.1 hoặc localhost).",
        "backchannel_logout_uri": "URI đăng xuất không được có phần “#…”.",
        "frontchannel_logout_uri": "URI đăng xuất front-channel phải có cùng giao thức, máy chủ "
        "và cổng với một URI chuyển hướng.",
        "scope": "Không có phạm vi “root”; máy chủ này có các phạm vi: "
        "openid profile email phone offline_access unit citizen_id scim ca:read ca:request "
        "ca:approve ca:revoke ca:validate admin.",
        "id_token_signed_response_alg": "Thuật toán ký phải là một trong: RS256, ES256, EdDSA.",
    }
    without_grants = {k: v for k, v in form.items() if k != "grant_types"}
    english = web.post(
        f"{page}?lang=en", data={"csrf_token": csrf_of(web, page), **without_grants, "name": ""}
    )
    assert english.status_code == 400
    assert "Enter the app's name (at most 200 characters)." in english.text
    assert "Choose at least one way the app signs in." in english.text
    assert "Line 2: A redirect URI must use https" in english.text
    assert client_row(runtime, client.client_id) == before
    assert audit_actions(runtime, "client.update") == []


def test_settings_are_edited_and_audited(web, runtime, world, rp):
    client, _ = rp
    page = client_path(client.client_id)
    sign_in(web, runtime, world.system)
    detail = web.get(page).text
    assert '<option value="RS256" selected>' in detail
    form = {
        "name": "Quản lý văn bản (mới)",
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "redirect_uris": "http://127.0.0.1:9/cb\nhttp://127.0.0.1:9/cb-new",
        "post_logout_redirect_uris": "http://127.0.0.1:9/bye",
        "backchannel_logout_uri": "",
        "frontchannel_logout_uri": "http://127.0.0.1:9/fcl",
        "scope": "openid  profile unit profile",
        "id_token_signed_response_alg": "ES256",
        "access_token_signed_response_alg": "EdDSA",
    }
    saved = post(web, page, form, form_page=page)
    assert saved.status_code == 303 and saved.headers["location"] == f"{page}?done=saved"
    assert "Đã lưu cấu hình của ứng dụng." in web.get(saved.headers["location"]).text
    assert client_row(runtime, client.client_id) == {
        "name": "Quản lý văn bản (mới)",
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scope": "openid profile unit",
        "redirect_uris": ["http://127.0.0.1:9/cb", "http://127.0.0.1:9/cb-new"],
        "post_logout_redirect_uris": ["http://127.0.0.1:9/bye"],
        "id_token_signed_response_alg": "ES256",
        "access_token_signed_response_alg": "EdDSA",
        "backchannel_logout_uri": None,
        "frontchannel_logout_uri": "http://127.0.0.1:9/fcl",
        "minimum_acr": None,
        # The FAPI 2.0 parts, untouched (tests/idp/fapi/test_client_registration_page.py).
        "jwks": None,
        "jwks_uri": None,
        "require_pushed_authorization_requests": False,
        "require_signed_request_object": False,
        "dpop_bound_access_tokens": False,
        "tls_client_auth_subject_dn": None,
        "tls_client_auth_san_dns": None,
        "tls_client_auth_san_uri": None,
        "tls_client_auth_san_ip": None,
        "tls_client_auth_san_email": None,
        "tls_client_certificate_bound_access_tokens": False,
        "fapi2_profile": False,
    }
    [entry] = audit_actions(runtime, "client.update")
    details = json.loads(entry.details)
    assert entry.actor == "user:quan.tri"
    assert details["before"]["id_token_signed_response_alg"] == "RS256"
    assert details["after"]["scope"] == "openid profile unit"
    assert "redirect_uris" in details["after"]
    # The same form again changes nothing, and records nothing.
    assert post(web, page, form, form_page=page).status_code == 303
    assert len(audit_actions(runtime, "client.update")) == 1


# --------------------------------------------------------------------------------------------
# Audit log and deliveries


def test_audit_viewer_filters_and_verifies_the_chain(web, runtime, world):
    sign_in(web, runtime, world.system)
    page = web.get("/admin/audit", params={"action": "admin."})
    assert "admin.grant" in page.text and "account.create" not in page.text
    assert "&#34;role&#34;: &#34;unit_admin&#34;" in page.text  # pretty-printed details
    assert "chưa được kiểm tra" in page.text
    response = post(web, "/admin/audit/verify", form_page="/admin/audit")
    assert response.status_code == 303
    checked = web.get("/admin/audit")
    assert "Chuỗi băm nguyên vẹn" in checked.text
    bad_date = web.get("/admin/audit", params={"from": "2026-13-01"})
    assert bad_date.status_code == 400 and 'id="from-error"' in bad_date.text
    today = runtime.clock.now().astimezone(DISPLAY_TIMEZONE).date().isoformat()
    in_range = web.get("/admin/audit", params={"from": today, "to": today, "actor": "test"})
    assert "admin.grant" in in_range.text
    [verified] = audit_actions(runtime, "audit.verify")
    assert verified.actor == "user:quan.tri"
    assert json.loads(verified.details)["ok"] is True


def test_audit_viewer_pages_newest_first(web, runtime, world):
    sign_in(web, runtime, world.system)
    first = web.get("/admin/audit")
    seqs = [int(s) for s in re.findall(r"<code>#(\d+)</code>", first.text)]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) <= 50


def test_delivery_log_lists_with_status_filter(web, runtime, world, rp):
    client, _ = rp
    for status, code in (("failed", 500), ("delivered", 200)):
        add_delivery(runtime, client, subject="s", status=status, status_code=code)
    sign_in(web, runtime, world.system)
    everything = web.get("/admin/logout-deliveries")
    assert "HTTP 500" in everything.text and "HTTP 200" in everything.text
    failed = web.get("/admin/logout-deliveries", params={"status": "failed"})
    assert "HTTP 500" in failed.text and "HTTP 200" not in failed.text
    assert "status_code" in failed.text  # per-attempt details


# --------------------------------------------------------------------------------------------
# Import


def wait_done(web: TestClient, path: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = web.get(path)
        assert page.status_code == 200, page.text
        if 'id="job-status" class="badge badge--done"' in page.text:
            return page.text
        assert "badge--failed" not in page.text
        assert '<meta http-equiv="refresh"' in page.text
        time.sleep(0.1)
    raise AssertionError("the import did not finish")


def import_file() -> bytes:
    return csv_bytes(
        [
            [cccd(101), "Phạm Văn Dũng", "pham.van.dung", "", "", WARD_A, "", "Chuyên viên"],
            [cccd(102), "Hoàng Thị Em", "hoang.thi.em", "", "", WARD_B, "", "Văn thư"],
            ["12345", "Sai Số", "sai.so", "", "", WARD_A, "", ""],
        ]
    )


def test_import_dry_run_then_apply(web, runtime, world):
    sign_in(web, runtime, world.unit_admin_a)
    token = csrf_of(web, "/admin/imports")
    uploaded = web.post(
        "/admin/imports",
        data={"csrf_token": token},
        files={"file": ("can-bo.csv", import_file(), "text/csv")},
    )
    assert uploaded.status_code == 303, uploaded.text
    job_page = uploaded.headers["location"]
    text = wait_done(web, job_page)
    # Line 3 is refused for scope (unit B), line 4 for the citizen ID; in Vietnamese.
    assert re.search(r'<tr class="row--error">\s*<td data-label="Dòng">3</td>', text)
    assert re.search(r'<tr class="row--error">\s*<td data-label="Dòng">4</td>', text)
    assert "Bạn không có quyền quản trị đơn vị này" in text
    with transaction(runtime.session_factory) as session:
        assert accounts.find_by_username(session, "pham.van.dung") is None
    applied = post(web, f"{job_page}/apply", form_page=job_page)
    assert applied.status_code == 303
    apply_page = applied.headers["location"]
    assert apply_page != job_page
    # A second submit of the same form starts nothing new.
    again = web.post(f"{job_page}/apply", data={"csrf_token": csrf_of(web, "/admin/imports")})
    assert again.status_code == 303 and again.headers["location"] == apply_page
    text = wait_done(web, apply_page)
    assert 'value="100"' in text
    with transaction(runtime.session_factory) as session:
        assert accounts.find_by_username(session, "pham.van.dung") is not None
        assert accounts.find_by_username(session, "hoang.thi.em") is None
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 2
    results = web.get(f"{apply_page}/results.csv")
    assert results.status_code == 200 and "pham.van.dung" in results.text
    codes = post(web, f"{apply_page}/activation-codes", form_page=apply_page)
    assert codes.status_code == 200 and codes.headers["content-type"] == "application/zip"
    twice = web.post(
        f"{apply_page}/activation-codes", data={"csrf_token": csrf_of(web, "/admin/imports")}
    )
    assert twice.status_code == 409
    # Another unit's admin does not see the job at all.
    sign_in(web, runtime, world.province_admin_15)
    assert web.get(apply_page).status_code == 404
    actions = [(e.actor, e.action) for e in audit_actions(runtime, "import.")]
    assert actions.count(("user:admin.a", "import.submit")) == 2  # the dry run, then apply
    assert actions[-1] == ("user:admin.a", "import.activation_codes_downloaded")


def test_import_refuses_a_bad_file_next_to_the_field(web, runtime, world):
    sign_in(web, runtime, world.system)
    token = csrf_of(web, "/admin/imports")
    response = web.post(
        "/admin/imports",
        data={"csrf_token": token},
        files={"file": ("can-bo.csv", b"khong,phai,cot\n1,2,3\n", "text/csv")},
    )
    assert response.status_code == 400
    assert 'id="file-error"' in response.text
    stale = web.post(
        "/admin/imports",
        data={"csrf_token": "stale"},
        files={"file": ("can-bo.csv", import_file(), "text/csv")},
    )
    assert stale.status_code == 403 and "Biểu mẫu đã hết hạn" in stale.text
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 0
