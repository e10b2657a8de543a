"""Self-service password reset (issue 16), through the ASGI app, the e-mail read from the mail
sink (no SMTP host: ``<var_dir>/mail/*.eml``, core.mail): "Quên mật khẩu?" on the login form,
the same answer whether or not the account exists, a single-use link valid 30 minutes sent to
the verified e-mail only, throttled, stored hashed; the new password follows the policy, ends
every session with back-channel logout, and is audited."""

from __future__ import annotations

import email
import re
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from core import audit
from core.db import transaction
from idp import accounts
from idp.models import Account, BrowserSession, LogoutDelivery, PasswordReset
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD, register_client
from tests.idp.oidc_flow import authorize_params, hidden_inputs, log_in, pkce_pair
from tests.idp.test_login_throttle import signed_in, try_password

NEW_PASSWORD = "ngày mới ở xã Bát Xát 2026"
LINK = re.compile(r"http://127\.0\.0\.1:8000/login/reset\?token=([A-Za-z0-9_-]+)")


def mail_sink(runtime: IdpRuntime) -> Path:
    return runtime.settings.var_dir / "mail"


def messages(runtime: IdpRuntime) -> list[EmailMessage]:
    directory = mail_sink(runtime)
    if not directory.exists():
        return []
    return [
        email.message_from_bytes(path.read_bytes(), policy=default)  # type: ignore[misc]
        for path in sorted(directory.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    ]


@pytest.fixture
def verified(runtime: IdpRuntime, official: Account) -> Account:
    with transaction(runtime.session_factory) as session:
        row = session.get(Account, official.id)
        assert row is not None
        row.email_verified = True
    return official


def ask_for_link(web: TestClient, identifier: str) -> httpx.Response:
    page = web.get("/login/forgot")
    assert page.status_code == 200, page.text
    return web.post("/login/forgot", data={**hidden_inputs(page.text), "identifier": identifier})


def token_in(message: EmailMessage) -> str:
    found = LINK.search(message.get_content())
    assert found, message.get_content()
    return found.group(1)


def set_new_password(
    web: TestClient, token: str, password: str, again: str | None = None
) -> httpx.Response:
    page = web.get("/login/reset", params={"token": token})
    assert page.status_code == 200, page.text
    fields = hidden_inputs(page.text)
    return web.post(
        "/login/reset",
        data={
            **fields,
            "new_password": password,
            "new_password_confirm": password if again is None else again,
        },
    )


def test_the_login_form_links_to_the_reset(web):
    started = web.get("/login")
    page = web.get(started.headers["location"])
    assert 'href="/login/forgot"' in page.text and "Quên mật khẩu?" in page.text
    english = web.get("/login/forgot", params={"lang": "en"})
    assert "Forgot your password?" in english.text


def test_the_same_answer_whether_or_not_the_account_exists(web, runtime, verified):
    answers = [
        ask_for_link(web, name)
        for name in ("nguyen.van.an", "khong.ton.tai", "an.nv@laocai.gov.vn", "ai@dau.vn")
    ]
    assert {a.status_code for a in answers} == {200}
    bodies = {
        re.sub(r'name="csrf_token" value="[^"]+"', "", a.text)
        .replace("nguyen.van.an", "X")
        .replace("khong.ton.tai", "X")
        .replace("an.nv@laocai.gov.vn", "X")
        .replace("ai@dau.vn", "X")
        for a in answers
    }
    assert len(bodies) == 1 and 'id="reset-sent"' in answers[0].text
    # Mail went out for the two that name the official (by username and by e-mail) only.
    sent = messages(runtime)
    assert [m["To"] for m in sent] == ["an.nv@laocai.gov.vn"] * 2
    assert str(sent[0]["Subject"]) == "Đặt lại mật khẩu tài khoản đăng nhập nguyen.van.an"
    body = sent[0].get_content()
    assert body.index("Kính gửi Nguyễn Văn An") < body.index("Dear Nguyễn Văn An")


def test_no_link_to_an_unverified_email(web, runtime, official):
    assert ask_for_link(web, official.username).status_code == 200
    assert messages(runtime) == []


def test_the_link_is_stored_hashed_single_use_and_ends_every_session(
    web, runtime, verified, clock, app
):
    # The official is signed in somewhere with an app that takes back-channel logout.
    app_client, _ = register_client(
        runtime, name="Một cửa", backchannel_logout_uri="https://motcua.example/bcl"
    )
    elsewhere = TestClient(app, base_url=str(web.base_url), follow_redirects=False)
    _, challenge = pkce_pair()
    back = log_in(
        elsewhere,
        authorize_params(app_client.client_id, challenge),
        verified.username,
        OFFICIAL_PASSWORD,
    )
    assert "code=" in back.headers["location"]

    ask_for_link(web, verified.username)
    (message,) = messages(runtime)
    token = token_in(message)
    with transaction(runtime.session_factory) as session:
        stored = session.scalars(select(PasswordReset)).one()
        assert token not in stored.token_digest and len(stored.token_digest) == 64
        assert (stored.expires_at - stored.created_at).total_seconds() == 30 * 60

    # The password policy applies: a mismatch and a short one are refused, nothing used up.
    assert set_new_password(web, token, NEW_PASSWORD, "khác").status_code == 400
    short = set_new_password(web, token, "ngắn")
    assert short.status_code == 400 and 'id="new_password-error"' in short.text

    done = set_new_password(web, token, NEW_PASSWORD)
    assert done.status_code == 200 and 'id="reset-done"' in done.text
    with transaction(runtime.session_factory) as session:
        account = session.get(Account, verified.id)
        assert runtime.passwords.check(NEW_PASSWORD, account.password_hash).ok
        live = session.scalars(
            select(BrowserSession).where(
                BrowserSession.account_id == verified.id, BrowserSession.ended_at.is_(None)
            )
        ).all()
        deliveries = session.scalars(select(LogoutDelivery)).all()
        actions = [e.action for e in audit.tail(session, limit=20)]
    assert live == []  # every session ended
    assert elsewhere.get("/account").status_code == 303
    assert "account.password_reset" in actions and "account.password_reset_requested" in actions
    # The app the official used there is told (OpenID Back-Channel Logout 1.0).
    assert [d.client_id for d in deliveries] == [app_client.client_id]
    assert deliveries[0].reason == "password_changed"

    # Used: the link does not work again.
    again = web.get("/login/reset", params={"token": token})
    assert again.status_code == 400 and "không còn hiệu lực" in again.text
    assert signed_in(try_password(web, verified.username, NEW_PASSWORD))


def test_the_link_expires_after_30_minutes(web, runtime, verified, clock):
    ask_for_link(web, verified.username)
    token = token_in(messages(runtime)[0])
    clock.advance(minutes=30, seconds=1)
    assert web.get("/login/reset", params={"token": token}).status_code == 400


def test_a_newer_link_retires_the_older_one(web, runtime, verified):
    ask_for_link(web, verified.username)
    ask_for_link(web, verified.username)
    first, second = (token_in(m) for m in messages(runtime))
    assert web.get("/login/reset", params={"token": first}).status_code == 400
    assert web.get("/login/reset", params={"token": second}).status_code == 200


def test_requests_are_throttled_per_account_and_per_address(web, runtime, verified):
    limit = runtime.settings.password_reset_requests
    for _ in range(limit + 2):
        assert ask_for_link(web, verified.username).status_code == 200  # same answer
    assert len(messages(runtime)) == limit
    # From this address, other names are still allowed up to ten times the account limit.
    with transaction(runtime.session_factory) as session:
        accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="tran.thi.binh",
            full_name="Trần Thị Bình",
            email="binh.tt@laocai.gov.vn",
            password=OFFICIAL_PASSWORD,
        ).email_verified = True
    ask_for_link(web, "tran.thi.binh")
    assert messages(runtime)[-1]["To"] == "binh.tt@laocai.gov.vn"
    for n in range(10 * limit):
        ask_for_link(web, f"doan.bua.{n}")
    ask_for_link(web, "binh.tt@laocai.gov.vn")
    assert len(messages(runtime)) == limit + 1  # the address has asked too often


def test_a_forged_token_is_refused(web, verified):
    assert web.get("/login/reset", params={"token": "x" * 43}).status_code == 400
    page = web.get("/login/forgot")
    refused = web.post(
        "/login/reset",
        data={
            **hidden_inputs(page.text),
            "token": "x" * 43,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )
    assert refused.status_code == 400
