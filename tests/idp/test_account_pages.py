"""The official's own pages (issue 5) through the real ASGI app, on SQLite and PostgreSQL:
profile, change of password, activation of imported accounts, two-step sign-in (TOTP with
recovery codes) and the list of sessions, with every error path."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core import audit
from core.db import transaction
from core.opaque_tokens import digest
from idp import accounts, totp
from idp.bulk_import.activation import code_row, new_code
from idp.models import (
    Account,
    AccountProfile,
    ActivationCode,
    BrowserSession,
    LogoutDelivery,
    RecoveryCode,
    TotpCredential,
)
from idp.runtime import IdpRuntime
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, register_client
from tests.idp.oidc_flow import (
    authorize_params,
    exchange_code,
    open_login_form,
    pkce_pair,
    query_of,
)

NEW_PASSWORD = "một câu mật khẩu mới 2026"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"')
SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7 ]+)</code>')
RECOVERY = re.compile(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>")


# --- helpers ---------------------------------------------------------------------------------


def csrf_of(page: httpx.Response) -> str:
    tokens = CSRF_INPUT.findall(page.text)
    assert tokens, page.text
    return tokens[0]


def post_form(web: TestClient, page_path: str, action: str, **fields: str) -> httpx.Response:
    """GET the page (for its CSRF token), then POST the form to ``action``."""
    page = web.get(page_path)
    assert page.status_code == 200, page.text
    return web.post(action, data={"csrf_token": csrf_of(page), **fields})


def sign_in(
    web: TestClient, username: str, password: str, *, next_path: str = "/account"
) -> httpx.Response:
    """/account without a session -> direct login -> the POST's answer (303)."""
    started = web.get(next_path)
    assert started.status_code == 303
    assert started.headers["location"] == f"/login?next={next_path.replace('/', '%2F')}"
    login = web.get(started.headers["location"])
    assert login.status_code == 303 and login.headers["location"].startswith("/login?interaction=")
    form_page = web.get(login.headers["location"])
    assert form_page.status_code == 200
    fields = dict(HIDDEN_INPUT.findall(form_page.text))
    action = html.unescape(re.findall(r'<form[^>]* action="([^"]*)"', form_page.text)[0])
    return web.post(action, data={**fields, "username": username, "password": password})


def submit_code(web: TestClient, otp_location: str, code: str) -> httpx.Response:
    page = web.get(otp_location)
    assert page.status_code == 200, page.text
    fields = dict(HIDDEN_INPUT.findall(page.text))
    return web.post(otp_location, data={**fields, "code": code})


def audit_actions(runtime: IdpRuntime) -> list[str]:
    with transaction(runtime.session_factory) as session:
        return [entry.action for entry in audit.tail(session, limit=200)]


def session_rows(runtime: IdpRuntime, username: str) -> list[BrowserSession]:
    with transaction(runtime.session_factory) as session:
        account = accounts.get_by_username(session, username)
        rows = list(
            session.scalars(
                select(BrowserSession)
                .where(BrowserSession.account_id == account.id)
                .order_by(BrowserSession.id)
            )
        )
        session.expunge_all()
        return rows


@pytest.fixture
def new_browser(app: Starlette, web: TestClient) -> Callable[[], TestClient]:
    """Another browser (its own cookie jar) on the same provider; ``web`` runs the lifespan."""

    def open_one() -> TestClient:
        return TestClient(app, base_url=ISSUER, follow_redirects=False)

    return open_one


@pytest.fixture
def signed_in(web: TestClient, official: Account) -> TestClient:
    answer = sign_in(web, official.username, OFFICIAL_PASSWORD)
    assert answer.status_code == 303 and answer.headers["location"] == "/account"
    return web


def enrol_totp(web: TestClient, clock) -> tuple[bytes, list[str]]:
    """Turn TOTP on through the pages; returns the secret (read off the page) and the codes."""
    started = post_form(web, "/account/security", "/account/security/totp/start")
    assert started.status_code == 303
    page = web.get("/account/security")
    secret_b32 = SECRET.findall(page.text)[0].replace(" ", "")
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    confirmed = web.post(
        "/account/security/totp/confirm",
        data={"csrf_token": csrf_of(page), "code": totp.totp(key, clock.now())},
    )
    assert confirmed.status_code == 200, confirmed.text
    codes = RECOVERY.findall(confirmed.text)
    assert len(codes) == 10
    return key, codes


# --- access and direct login -----------------------------------------------------------------


def test_account_pages_send_a_visitor_without_session_to_a_login_that_comes_back(
    web, official, runtime
):
    for path in ("/account", "/account/password", "/account/security", "/account/sessions"):
        answer = web.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=" + path.replace("/", "%2F")
    finished = sign_in(web, official.username, OFFICIAL_PASSWORD, next_path="/account/sessions")
    assert finished.status_code == 303
    assert finished.headers["location"] == "/account/sessions"
    assert web.get("/account/sessions").status_code == 200
    (row,) = session_rows(runtime, official.username)
    assert row.amr == ["pwd"]
    assert "login.success" in audit_actions(runtime)


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/account",
        "//evil.example/account",
        "/accountx",
        "/account/../x",
        "/admin/..",
        "/admin/./x",
        "/administrator",
        "/account\\evil",
        "/oauth2/authorize",
        "",
    ],
)
def test_direct_login_never_goes_anywhere_but_the_account_pages(web, next_path):
    answer = web.get("/login", params={"next": next_path})
    assert answer.status_code == 400
    assert "location" not in answer.headers


def test_a_direct_login_handle_is_no_authorization_request(web):
    started = web.get("/login?next=/account")
    handle = query_of(started.headers["location"])["interaction"]
    assert web.get(f"/oauth2/authorize/resume?interaction={handle}").status_code == 400
    assert web.get(f"/consent?interaction={handle}").status_code == 400


def test_post_without_session_goes_to_login_and_changes_nothing(web, official, runtime):
    page = web.get("/activate")  # any page, for a CSRF cookie and token
    answer = web.post("/account/sessions/end-others", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


# --- profile ---------------------------------------------------------------------------------


def test_profile_shows_the_officials_data_read_only(signed_in, runtime, official):
    with transaction(runtime.session_factory) as session:
        session.add(
            AccountProfile(
                account_id=official.id, position="Chuyên viên văn phòng", search_name="x"
            )
        )
        session.get(Account, official.id).phone = "+84912345678"
    page = signed_in.get("/account")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    text = page.text
    for expected in (
        "Nguyễn Văn An",
        "nguyen.van.an",
        "an.nv@laocai.gov.vn",
        "+84912345678",
        "Chuyên viên văn phòng",
        "Họ và tên",
        "Chưa có thông tin",
    ):
        assert expected in text
    assert "<input" not in text.split("<main", 1)[1].split("</main>")[0]
    english = signed_in.get("/account?lang=en")
    assert "Full name" in english.text and "Not recorded" in english.text


# --- change of password ----------------------------------------------------------------------


def change_password(web: TestClient, current: str, new: str, again: str | None = None):
    return post_form(
        web,
        "/account/password",
        "/account/password",
        current_password=current,
        new_password=new,
        new_password_confirm=new if again is None else again,
    )


def test_password_change_rehashes_keeps_this_session_and_ends_the_others(
    signed_in, new_browser, official, runtime
):
    other = new_browser()
    assert sign_in(other, official.username, OFFICIAL_PASSWORD).status_code == 303
    answer = change_password(signed_in, OFFICIAL_PASSWORD, NEW_PASSWORD)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/account?done=password"
    shown = signed_in.get(answer.headers["location"])
    assert shown.status_code == 200 and "Đã đổi mật khẩu" in shown.text
    # The other browser was signed out; this one was not.
    assert other.get("/account").status_code == 303
    rows = session_rows(runtime, official.username)
    assert [row.ended_at is None for row in rows] == [True, False]
    with transaction(runtime.session_factory) as session:
        account = session.get(Account, official.id)
        assert account.password_hash.startswith("$argon2id$")
        assert runtime.passwords.check(NEW_PASSWORD, account.password_hash).ok
        assert not runtime.passwords.check(OFFICIAL_PASSWORD, account.password_hash).ok
        entry = next(
            e for e in audit.tail(session, limit=50) if e.action == "account.password_changed"
        )
        details = entry.details if isinstance(entry.details, dict) else json.loads(entry.details)
        assert details["sessions_ended"] == 1
    # The new password signs in.
    third = new_browser()
    assert sign_in(third, official.username, NEW_PASSWORD).headers["location"] == "/account"


@pytest.mark.parametrize(
    ("current", "new", "again", "field", "message"),
    [
        (
            "sai-mật-khẩu-cũ",
            NEW_PASSWORD,
            None,
            "current_password",
            "Mật khẩu hiện tại không đúng.",
        ),
        (OFFICIAL_PASSWORD, "password1", None, "new_password", "quá phổ biến"),
        (OFFICIAL_PASSWORD, "PassWord123", None, "new_password", "quá phổ biến"),
        (OFFICIAL_PASSWORD, "ngắn", None, "new_password", "ít nhất 8 ký tự"),
        (OFFICIAL_PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "new_password_confirm", "không khớp"),
        (OFFICIAL_PASSWORD, "xin-chao-nguyen.van.an", None, "new_password", "tên đăng nhập"),
        (OFFICIAL_PASSWORD, OFFICIAL_PASSWORD, None, "new_password", "khác mật khẩu hiện tại"),
        ("", NEW_PASSWORD, None, "current_password", "Vui lòng nhập mật khẩu hiện tại."),
    ],
)
def test_password_change_errors_are_shown_next_to_the_field_and_change_nothing(
    signed_in, official, runtime, current, new, again, field, message
):
    before = session_rows(runtime, official.username)
    with transaction(runtime.session_factory) as session:
        old_hash = session.get(Account, official.id).password_hash
    answer = change_password(signed_in, current, new, again)
    assert answer.status_code == 400
    error = re.search(rf'<p class="field-error" id="{field}-error">([^<]+)</p>', answer.text)
    assert error is not None and message in html.unescape(error.group(1))
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', answer.text)
    assert re.search(rf'id="{field}"[^>]*aria-describedby="[^"]*{field}-error', answer.text)
    with transaction(runtime.session_factory) as session:
        assert session.get(Account, official.id).password_hash == old_hash
    assert len(session_rows(runtime, official.username)) == len(before)
    assert "account.password_changed" not in audit_actions(runtime)


def test_password_errors_in_english(signed_in):
    answer = post_form(
        signed_in,
        "/account/password?lang=en",
        "/account/password",
        current_password=OFFICIAL_PASSWORD,
        new_password="password1",
        new_password_confirm="password1",
    )
    assert "This password is too common" in answer.text


def test_stale_csrf_token_gives_the_friendly_expired_form_page(signed_in, official, runtime):
    answer = signed_in.post(
        "/account/password",
        data={
            "csrf_token": "stale-token",
            "current_password": OFFICIAL_PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
        headers={"accept": "text/html"},
    )
    assert answer.status_code == 403
    assert "Biểu mẫu đã hết hạn" in answer.text
    assert "account.password_changed" not in audit_actions(runtime)
    for action in ("/account/sessions/end-others", "/account/security/totp/start", "/activate"):
        refused = signed_in.post(action, data={"csrf_token": "stale"})
        assert refused.status_code == 403 and "<html" in refused.text


def test_double_submitted_password_change_changes_it_once(signed_in, official, runtime):
    page = signed_in.get("/account/password")
    fields = {
        "csrf_token": csrf_of(page),
        "current_password": OFFICIAL_PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    }
    first = signed_in.post("/account/password", data=fields)
    second = signed_in.post("/account/password", data=fields)
    assert first.status_code == 303
    # The second one's "current password" is now the old one: refused, nothing changes.
    assert second.status_code == 400
    assert audit_actions(runtime).count("account.password_changed") == 1
    with transaction(runtime.session_factory) as session:
        assert runtime.passwords.check(
            NEW_PASSWORD, session.get(Account, official.id).password_hash
        ).ok


def test_wrong_current_passwords_are_throttled_like_logins(signed_in, runtime):
    runtime.settings.login_max_delay = 0
    for _ in range(runtime.settings.login_lock_after):
        change_password(signed_in, "sai", NEW_PASSWORD)
    locked = change_password(signed_in, OFFICIAL_PASSWORD, NEW_PASSWORD)
    assert locked.status_code == 429
    assert "account.password_changed" not in audit_actions(runtime)


# --- activation ------------------------------------------------------------------------------


@pytest.fixture
def imported(runtime) -> Callable[..., str]:
    """An imported official without password, with an activation code; returns the code."""

    def make(username: str = "tran.thi.binh", *, expired: bool = False) -> str:
        with transaction(runtime.session_factory) as session:
            account = accounts.find_by_username(session, username) or accounts.create(
                session=session,
                clock=runtime.clock,
                passwords=runtime.passwords,
                actor="import",
                username=username,
                full_name="Trần Thị Bình",
            )
            code, code_digest = new_code(account_id=account.id)
            created = runtime.clock.now() - (timedelta(days=15) if expired else timedelta(0))
            session.add(
                ActivationCode(
                    **code_row(account_id=account.id, code_digest=code_digest, now=created)
                )
            )
        return code

    return make


def activate(web: TestClient, username: str, code: str, password: str = NEW_PASSWORD, again=None):
    return post_form(
        web,
        "/activate",
        "/activate",
        username=username,
        code=code,
        new_password=password,
        new_password_confirm=password if again is None else again,
    )


def test_activation_sets_the_password_consumes_the_code_and_signs_in(web, imported, runtime):
    code = imported()
    page = web.get("/activate")
    assert page.status_code == 200 and "Kích hoạt tài khoản" in page.text
    answer = activate(web, "Tran.Thi.Binh", code)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/account?done=activated"
    profile = web.get("/account?done=activated")
    assert profile.status_code == 200 and "Trần Thị Bình" in profile.text
    with transaction(runtime.session_factory) as session:
        account = accounts.get_by_username(session, "tran.thi.binh")
        assert runtime.passwords.check(NEW_PASSWORD, account.password_hash).ok
        (row,) = session.scalars(
            select(ActivationCode).where(ActivationCode.account_id == account.id)
        )
        assert row.used_at is not None
    actions = audit_actions(runtime)
    assert "account.activated" in actions and actions[-1] == "login.success"
    # Used: the same code is refused in another browser, with the generic message.
    replay = activate(
        TestClient(web.app, base_url=ISSUER, follow_redirects=False), "tran.thi.binh", code
    )
    assert replay.status_code == 401
    assert "Tên đăng nhập hoặc mã kích hoạt không đúng" in replay.text


@pytest.mark.parametrize(
    "as_typed",
    [
        lambda code: code.lower(),  # read aloud, typed in lower case
        lambda code: code.replace("-", " "),
        lambda code: f" {code.replace('-', '')} ",
        lambda code: code.replace("1", "l").replace("0", "O"),  # Crockford's look-alikes
    ],
    ids=["lower", "spaces", "ungrouped", "look-alikes"],
)
def test_activation_code_as_people_type_it(web, imported, runtime, as_typed):
    code = imported()
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){2}", code)
    answer = activate(web, "tran.thi.binh", as_typed(code))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/account?done=activated"


def test_activation_code_of_the_old_format_still_works(web, imported, runtime):
    """Codes handed out before the readable format (22 base64url characters, stored as the
    plain SHA-256 of the code) work until they expire; their case matters."""
    imported()  # the account, with a current code that stays unused
    legacy = "hRnBLYchdVEfWf3JPysWUw"
    with transaction(runtime.session_factory) as session:
        account = accounts.get_by_username(session, "tran.thi.binh")
        session.add(
            ActivationCode(
                **code_row(
                    account_id=account.id, code_digest=digest(legacy), now=runtime.clock.now()
                )
            )
        )
    assert activate(web, "tran.thi.binh", legacy.lower()).status_code == 401
    assert activate(web, "tran.thi.binh", legacy).status_code == 303


def test_activation_double_submit_is_harmless(web, imported, runtime):
    code = imported()
    page = web.get("/activate")
    fields = {
        "csrf_token": csrf_of(page),
        "username": "tran.thi.binh",
        "code": code,
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    }
    first = web.post("/activate", data=fields)
    second = web.post("/activate", data=fields)
    assert first.status_code == 303
    assert second.status_code == 303 and second.headers["location"] == "/account"
    assert audit_actions(runtime).count("account.activated") == 1


@pytest.mark.parametrize("case", ["wrong", "expired", "used", "unknown_user", "other_users_code"])
def test_activation_failures_all_look_the_same(web, imported, runtime, case):
    code = imported()
    username = "tran.thi.binh"
    if case == "wrong":
        code = code[:-2] + ("AA" if not code.endswith("AA") else "BB")
    elif case == "expired":
        code = imported("le.van.cuong", expired=True)
        username = "le.van.cuong"
    elif case == "used":
        assert (
            activate(
                TestClient(web.app, base_url=ISSUER, follow_redirects=False), username, code
            ).status_code
            == 303
        )
    elif case == "unknown_user":
        username = "khong.ton.tai"
    elif case == "other_users_code":
        username = "pham.van.dung"
        imported(username)
    answer = activate(web, username, code, password="một mật khẩu khác 2026")
    assert answer.status_code == 401
    assert (
        "Tên đăng nhập hoặc mã kích hoạt không đúng, hoặc mã đã hết hạn hay đã được dùng."
        in html.unescape(answer.text)
    )
    # What the official typed is kept (not the passwords).
    assert f'value="{username}"' in answer.text and f'value="{code}"' in answer.text
    assert "một mật khẩu khác" not in html.unescape(answer.text)
    assert "sso_session" not in answer.headers.get("set-cookie", "")
    assert audit_actions(runtime)[-1] == "account.activation_failed"


def test_activation_field_errors_come_before_the_code_is_tried(web, imported, runtime):
    code = imported()
    answer = activate(web, "tran.thi.binh", code, password="password1")
    assert answer.status_code == 400
    assert 'id="new_password-error"' in answer.text
    mismatch = activate(web, "tran.thi.binh", code, password=NEW_PASSWORD, again="khác hẳn 2026")
    assert 'id="new_password_confirm-error"' in mismatch.text
    empty = activate(web, "", "", password=NEW_PASSWORD)
    assert 'id="username-error"' in empty.text and 'id="code-error"' in empty.text
    # The code was not spent by these attempts.
    assert activate(web, "tran.thi.binh", code).status_code == 303


def test_activation_is_throttled_like_the_login_form(web, imported, runtime):
    runtime.settings.login_max_delay = 0
    code = imported()
    for _ in range(runtime.settings.login_lock_after):
        activate(web, "tran.thi.binh", "sai-ma-kich-hoat")
    locked = activate(web, "tran.thi.binh", code)
    assert locked.status_code == 429
    assert "Bạn đã nhập sai quá nhiều lần" in locked.text
    assert "account.activated" not in audit_actions(runtime)


# --- two-step sign-in ------------------------------------------------------------------------


def test_totp_enrolment_shows_qr_and_secret_then_recovery_codes_once(
    signed_in, official, runtime, clock
):
    off = signed_in.get("/account/security")
    assert "Thiết lập đăng nhập hai bước" in off.text
    post_form(signed_in, "/account/security", "/account/security/totp/start")
    page = signed_in.get("/account/security")
    assert page.status_code == 200
    assert '<svg class="qr"' in page.text and "<path" in page.text
    uri = html.unescape(re.search(r'<code id="otpauth-uri">([^<]+)</code>', page.text).group(1))
    assert uri.startswith("otpauth://totp/127.0.0.1:nguyen.van.an?")
    secret = SECRET.findall(page.text)[0].replace(" ", "")
    assert parse_qs(urlsplit(uri).query)["secret"] == [secret]
    # Not yet asked at login: the secret is unconfirmed.
    with transaction(runtime.session_factory) as session:
        credential = session.scalar(select(TotpCredential))
        assert credential.confirmed_at is None
        assert secret not in credential.sealed_secret
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))

    wrong = signed_in.post(
        "/account/security/totp/confirm", data={"csrf_token": csrf_of(page), "code": "000000"}
    )
    assert wrong.status_code == 400 and 'id="code-error"' in wrong.text
    good = totp.totp(key, clock.now())
    if good == "000000":  # pragma: no cover - one chance in a million
        pytest.skip("the wrong code happened to be right")
    confirmed = signed_in.post(
        "/account/security/totp/confirm", data={"csrf_token": csrf_of(page), "code": good}
    )
    assert confirmed.status_code == 200
    codes = RECOVERY.findall(confirmed.text)
    assert len(codes) == len(set(codes)) == 10
    again = signed_in.post(
        "/account/security/totp/confirm", data={"csrf_token": csrf_of(page), "code": good}
    )
    assert again.status_code == 303 and again.headers["location"] == "/account/security"
    with transaction(runtime.session_factory) as session:
        digests = set(session.scalars(select(RecoveryCode.code_digest)))
    assert len(digests) == 10 and not any(code in digests for code in codes)
    assert audit_actions(runtime).count("account.totp_enabled") == 1
    on = signed_in.get("/account/security")
    assert "Mã khôi phục chưa dùng: 10" in on.text and 'id="totp-secret"' not in on.text


def test_login_requires_the_totp_code_after_enrolment(
    signed_in, new_browser, official, runtime, clock
):
    key, _ = enrol_totp(signed_in, clock)
    browser = new_browser()
    after_password = sign_in(browser, official.username, OFFICIAL_PASSWORD)
    assert after_password.status_code == 303
    otp_location = after_password.headers["location"]
    assert otp_location.startswith("/login/otp?interaction=")
    assert "sso_session" not in after_password.headers.get("set-cookie", "")
    assert browser.get("/account").status_code == 303  # not signed in yet

    wrong = submit_code(
        browser, otp_location, "123456" if totp.totp(key, clock.now()) != "123456" else "654321"
    )
    assert wrong.status_code == 401 and "Mã không đúng" in wrong.text
    # The code used to confirm the enrolment (same time step) is a replay: refused, and the
    # official is told it was already used and to wait for the next one (not "wrong code").
    replay = submit_code(browser, otp_location, totp.totp(key, clock.now()))
    assert replay.status_code == 401
    assert "Mã này đã được dùng" in replay.text and "chờ mã tiếp theo" in replay.text
    assert "Mã không đúng" not in replay.text
    replay_en = submit_code(browser, otp_location + "&lang=en", totp.totp(key, clock.now()))
    assert "already been used" in replay_en.text and "wait for the next code" in replay_en.text
    clock.advance(30)
    accepted = submit_code(browser, otp_location, totp.totp(key, clock.now()))
    assert accepted.status_code == 303 and accepted.headers["location"] == "/account"
    assert browser.get("/account").status_code == 200
    assert session_rows(runtime, official.username)[-1].amr == ["pwd", "otp"]
    # Used now: the same code again, in a third browser, is refused.
    third = new_browser()
    otp_again = sign_in(third, official.username, OFFICIAL_PASSWORD).headers["location"]
    used = submit_code(third, otp_again, totp.totp(key, clock.now()))
    assert used.status_code == 401 and "Mã này đã được dùng" in used.text
    actions = audit_actions(runtime)
    assert actions.count("login.second_factor_failure") == 1
    assert actions.count("login.second_factor_replayed") == 3
    assert "login.second_factor_required" in actions


def test_oauth_login_with_totp_puts_otp_in_the_id_token_amr(
    signed_in, new_browser, official, runtime, clock, rp
):
    key, _ = enrol_totp(signed_in, clock)
    clock.advance(30)
    client, secret = rp
    browser = new_browser()
    verifier, challenge = pkce_pair()
    login_page = open_login_form(browser, authorize_params(client.client_id, challenge))
    fields = dict(HIDDEN_INPUT.findall(login_page.text))
    action = html.unescape(re.findall(r'<form[^>]* action="([^"]*)"', login_page.text)[0])
    to_otp = browser.post(
        action, data={**fields, "username": official.username, "password": OFFICIAL_PASSWORD}
    )
    assert to_otp.headers["location"].startswith("/login/otp?")
    done = submit_code(browser, to_otp.headers["location"], totp.totp(key, clock.now()))
    assert done.headers["location"].startswith("/oauth2/authorize/resume?")
    back = browser.get(done.headers["location"])
    code = query_of(back.headers["location"])["code"]
    tokens = exchange_code(browser, client.client_id, secret, code, verifier).json()
    payload = tokens["id_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["amr"] == ["pwd", "otp"]


def test_a_recovery_code_signs_in_once(signed_in, new_browser, official, runtime, clock):
    _, codes = enrol_totp(signed_in, clock)
    browser = new_browser()
    otp_location = sign_in(browser, official.username, OFFICIAL_PASSWORD).headers["location"]
    used = submit_code(browser, otp_location, codes[3].upper().replace("-", " "))
    assert used.status_code == 303 and used.headers["location"] == "/account"
    assert session_rows(runtime, official.username)[-1].amr == ["pwd", "otp"]
    again_browser = new_browser()
    otp_again = sign_in(again_browser, official.username, OFFICIAL_PASSWORD).headers["location"]
    assert submit_code(again_browser, otp_again, codes[3]).status_code == 401
    assert submit_code(again_browser, otp_again, codes[4]).status_code == 303
    actions = audit_actions(runtime)
    assert actions.count("account.recovery_code_used") == 2
    assert "Mã khôi phục chưa dùng: 8" in signed_in.get("/account/security").text


def test_turning_totp_off_needs_the_password(signed_in, new_browser, official, runtime, clock):
    enrol_totp(signed_in, clock)
    wrong = post_form(
        signed_in, "/account/security", "/account/security/totp/disable", password="sai"
    )
    assert wrong.status_code == 400 and 'id="password-error"' in wrong.text
    assert "account.totp_disabled" not in audit_actions(runtime)
    off = post_form(
        signed_in,
        "/account/security",
        "/account/security/totp/disable",
        password=OFFICIAL_PASSWORD,
    )
    assert off.status_code == 303
    assert "account.totp_disabled" in audit_actions(runtime)
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(TotpCredential)) is None
        assert session.scalar(select(RecoveryCode)) is None
    browser = new_browser()
    assert sign_in(browser, official.username, OFFICIAL_PASSWORD).headers["location"] == "/account"


def test_new_recovery_codes_replace_the_old_ones(signed_in, new_browser, official, clock, runtime):
    _, old_codes = enrol_totp(signed_in, clock)
    answer = post_form(
        signed_in,
        "/account/security",
        "/account/security/recovery-codes",
        password=OFFICIAL_PASSWORD,
    )
    new_codes = RECOVERY.findall(answer.text)
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    browser = new_browser()
    otp_location = sign_in(browser, official.username, OFFICIAL_PASSWORD).headers["location"]
    assert submit_code(browser, otp_location, old_codes[0]).status_code == 401
    assert submit_code(browser, otp_location, new_codes[0]).status_code == 303


def test_second_factor_failures_are_throttled(signed_in, new_browser, official, runtime, clock):
    key, _ = enrol_totp(signed_in, clock)
    runtime.settings.login_max_delay = 0
    browser = new_browser()
    otp_location = sign_in(browser, official.username, OFFICIAL_PASSWORD).headers["location"]
    for _ in range(runtime.settings.login_lock_after):
        submit_code(browser, otp_location, "abcdefghij")
    clock.advance(30)
    locked = submit_code(browser, otp_location, totp.totp(key, clock.now()))
    assert locked.status_code == 429


def test_the_second_step_needs_a_password_checked_first(web, official):
    started = web.get("/login?next=/account")
    handle = query_of(started.headers["location"])["interaction"]
    assert web.get(f"/login/otp?interaction={handle}").status_code == 400


# --- sessions --------------------------------------------------------------------------------


def test_sessions_list_and_ending_one_with_back_channel_logout(
    signed_in, new_browser, official, runtime
):
    app_client, _ = register_client(
        runtime, name="Ứng dụng A", backchannel_logout_uri="http://127.0.0.1:9/bcl"
    )
    other = new_browser()
    other.headers["user-agent"] = (
        "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/130.0 Mobile Safari/537.36"
    )
    assert sign_in(other, official.username, OFFICIAL_PASSWORD).status_code == 303
    # The other session signs in to an app, so ending it must tell that app.
    _, challenge = pkce_pair()
    resumed = other.get(
        "/oauth2/authorize", params=authorize_params(app_client.client_id, challenge)
    )
    assert "code=" in resumed.headers["location"]

    page = signed_in.get("/account/sessions")
    assert page.status_code == 200
    assert page.text.count('class="session') >= 2 and "Thiết bị này" in page.text
    assert "Chrome · Android" in page.text
    # Each session names the apps it signed in to: none for this one, the app for the other.
    apps = re.findall(
        r'<div class="session__apps"><dt>Ứng dụng đã dùng</dt><dd>([^<]*)</dd></div>', page.text
    )
    assert sorted(apps) == ["Chưa có", "Ứng dụng A"]
    current = re.search(r'<li class="session session--current">.*?</li>', page.text, re.S)
    assert current is not None and "Chưa có" in current.group(0)
    other_sid = session_rows(runtime, official.username)[1].sid
    assert f'value="{other_sid}"' in page.text
    current_sid = session_rows(runtime, official.username)[0].sid
    assert f'value="{current_sid}"' not in page.text  # no button to end this one here

    ended = signed_in.post(
        "/account/sessions/end", data={"csrf_token": csrf_of(page), "sid": other_sid}
    )
    assert ended.status_code == 303 and ended.headers["location"].endswith("done=session-ended")
    again = signed_in.post(
        "/account/sessions/end", data={"csrf_token": csrf_of(page), "sid": other_sid}
    )
    assert again.status_code == 303 and "done" not in again.headers["location"]
    assert other.get("/account").status_code == 303
    assert signed_in.get("/account").status_code == 200
    with transaction(runtime.session_factory) as session:
        deliveries = list(session.scalars(select(LogoutDelivery)))
    assert [(d.client_id, d.sid) for d in deliveries] == [(app_client.client_id, other_sid)]
    assert audit_actions(runtime).count("account.session_ended") == 1


def test_sign_out_everywhere_else_keeps_this_session(signed_in, new_browser, official, runtime):
    others = [new_browser() for _ in range(2)]
    for browser in others:
        assert sign_in(browser, official.username, OFFICIAL_PASSWORD).status_code == 303
    answer = post_form(signed_in, "/account/sessions", "/account/sessions/end-others")
    assert answer.status_code == 303
    assert (
        "Tất cả các phiên khác đã được đăng xuất" in signed_in.get(answer.headers["location"]).text
    )
    assert all(browser.get("/account").status_code == 303 for browser in others)
    assert signed_in.get("/account").status_code == 200
    assert [row.ended_at is None for row in session_rows(runtime, official.username)] == [
        True,
        False,
        False,
    ]
    assert "account.other_sessions_ended" in audit_actions(runtime)


def test_a_session_of_another_account_cannot_be_ended(signed_in, new_browser, runtime):
    with transaction(runtime.session_factory) as session:
        accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="le.thi.hoa",
            full_name="Lê Thị Hoa",
            password=OFFICIAL_PASSWORD,
        )
    victim = new_browser()
    assert sign_in(victim, "le.thi.hoa", OFFICIAL_PASSWORD).status_code == 303
    victim_sid = session_rows(runtime, "le.thi.hoa")[0].sid
    answer = post_form(signed_in, "/account/password", "/account/sessions/end", sid=victim_sid)
    assert answer.status_code == 303 and "done" not in answer.headers["location"]
    assert victim.get("/account").status_code == 200
