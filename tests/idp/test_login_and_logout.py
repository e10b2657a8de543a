"""Login form, consent, brute-force protection, password upgrades and RP-initiated logout."""

from __future__ import annotations

import bcrypt
import jwt as pyjwt

from core import audit
from core.db import transaction
from idp import accounts, login_throttle
from idp.models import Account
from tests.conftest import (
    ISSUER,
    OFFICIAL_PASSWORD,
    RP_LOGOUT_REDIRECT,
    RP_REDIRECT,
    register_client,
)
from tests.idp.oidc_flow import (
    authorize_params,
    exchange_code,
    follow_to_client,
    hidden_inputs,
    log_in,
    open_login_form,
    pkce_pair,
    query_of,
    submit_login,
)

WRONG_VI = "Tên đăng nhập hoặc mật khẩu không đúng."


def open_login_page(web, client_id, **extra):
    _, challenge = pkce_pair()
    return open_login_form(web, authorize_params(client_id, challenge, **extra))


def test_login_page_is_vietnamese_with_the_expected_form(web, rp, official):
    page = open_login_page(web, rp[0].client_id)
    assert page.status_code == 200
    assert 'lang="vi"' in page.text and "Đăng nhập" in page.text
    for field in (
        'name="username"',
        'name="password"',
        'type="submit"',
        'for="username"',
        'for="password"',
        'name="csrf_token"',
    ):
        assert field in page.text
    assert "Hệ thống quản lý văn bản" in page.text  # the app the official is signing into


def test_authorize_shows_the_form_and_the_login_answers_with_the_code(web, rp, official, runtime):
    client, secret = rp
    verifier, challenge = pkce_pair()
    params = authorize_params(client.client_id, challenge)
    page = web.get("/oauth2/authorize", params=params)
    # The form is the authorization endpoint's own answer, posting to /login.
    assert page.status_code == 200 and 'name="password"' in page.text
    assert page.headers["cache-control"] == "no-store"
    handle = hidden_inputs(page.text)["interaction"]
    assert f'action="/login?interaction={handle}"' in page.text
    back = submit_login(web, page, "nguyen.van.an", OFFICIAL_PASSWORD)
    # Straight back to the application: 303 after a POST with the password (RFC 9700 §4.12).
    assert back.status_code == 303
    assert back.headers["location"].startswith(RP_REDIRECT + "?")
    reply = query_of(back.headers["location"])
    assert reply["state"] == params["state"] and reply["iss"] == ISSUER  # RFC 9207
    cookie = back.headers["set-cookie"]
    assert "sso_session=" in cookie and "HttpOnly" in cookie
    # The parked request is used up: it neither resumes nor takes the password again.
    assert web.get(f"/oauth2/authorize/resume?interaction={handle}").status_code == 400
    again = web.post("/login", data={**hidden_inputs(page.text), "username": "x", "password": "y"})
    assert again.status_code == 400
    with transaction(runtime.session_factory) as session:
        entries = audit.tail(session, limit=10)
    assert [e.action for e in entries].count("login.success") == 1
    token = exchange_code(web, client.client_id, secret, reply["code"], verifier)
    assert token.status_code == 200 and "id_token" in token.json()
    # The new session works: the next authorization needs no login.
    _, challenge = pkce_pair()
    silent = web.get("/oauth2/authorize", params=authorize_params(client.client_id, challenge))
    assert silent.status_code == 302 and "code=" in silent.headers["location"]


def test_a_posted_authorization_request_still_goes_through_the_login_page(web, rp, official):
    _, challenge = pkce_pair()
    started = web.post("/oauth2/authorize", data=authorize_params(rp[0].client_id, challenge))
    assert started.status_code == 303
    assert started.headers["location"].startswith("/login?interaction=")
    page = web.get(started.headers["location"])
    assert page.status_code == 200 and "Hệ thống quản lý văn bản" in page.text
    back = follow_to_client(web, submit_login(web, page, "nguyen.van.an", OFFICIAL_PASSWORD))
    assert back.headers["location"].startswith(RP_REDIRECT) and "code=" in back.headers["location"]


def test_login_hint_fills_the_form_shown_by_authorize(web, rp, official):
    page = open_login_page(web, rp[0].client_id, login_hint="nguyen.van.an")
    assert 'value="nguyen.van.an"' in page.text


def test_ui_locales_en_gives_english(web, rp, official):
    page = open_login_page(web, rp[0].client_id, ui_locales="en-US vi")
    assert 'lang="en"' in page.text and "Sign in" in page.text


def test_wrong_password_and_unknown_user_look_the_same(web, rp, official):
    wrong = submit_login(
        web, open_login_page(web, rp[0].client_id), "nguyen.van.an", "sai-mat-khau"
    )
    unknown = submit_login(
        web, open_login_page(web, rp[0].client_id), "khong.ton.tai", "sai-mat-khau"
    )
    assert wrong.status_code == unknown.status_code == 401
    assert WRONG_VI in wrong.text and WRONG_VI in unknown.text
    assert 'value="nguyen.van.an"' in wrong.text  # what the user typed is kept


def test_missing_csrf_token_gets_a_friendly_page(web, rp, official):
    page = open_login_page(web, rp[0].client_id)
    fields = hidden_inputs(page.text)
    del fields["csrf_token"]
    response = web.post(
        "/login", data={**fields, "username": "nguyen.van.an", "password": OFFICIAL_PASSWORD}
    )
    assert response.status_code == 403
    assert "<html" in response.text and "Traceback" not in response.text
    assert (
        "set-cookie" not in response.headers or "sso_session" not in response.headers["set-cookie"]
    )


def test_session_cookie_is_httponly_lax_and_new_at_each_login(web, rp, official):
    page = open_login_page(web, rp[0].client_id)
    first = submit_login(web, page, "nguyen.van.an", OFFICIAL_PASSWORD)
    cookie = first.headers["set-cookie"]
    assert (
        "sso_session=" in cookie
        and "HttpOnly" in cookie
        and "SameSite=lax" in cookie.replace("Lax", "lax")
    )
    first_id = web.cookies.get("sso_session")
    second = submit_login(
        web,
        open_login_page(web, rp[0].client_id, prompt="login"),
        "nguyen.van.an",
        OFFICIAL_PASSWORD,
    )
    assert second.status_code == 303
    assert web.cookies.get("sso_session") != first_id


def test_repeated_failures_lock_known_and_unknown_names_alike(web, rp, official, runtime):
    runtime.settings.login_max_delay = 0  # the growing delay itself is tested on assess()
    for _ in range(runtime.settings.login_lock_after):
        submit_login(web, open_login_page(web, rp[0].client_id), "nguyen.van.an", "sai")
        submit_login(web, open_login_page(web, rp[0].client_id), "ma.ten", "sai")
    locked = submit_login(
        web, open_login_page(web, rp[0].client_id), "nguyen.van.an", OFFICIAL_PASSWORD
    )
    phantom = submit_login(web, open_login_page(web, rp[0].client_id), "ma.ten", "sai")
    assert locked.status_code == phantom.status_code == 429
    assert "Bạn đã nhập sai quá nhiều lần" in locked.text
    with transaction(runtime.session_factory) as session:
        actions = [e.action for e in audit.tail(session, limit=100)]
    # Each name is stopped from this address on its own count; the address itself only slows
    # down (officials share addresses), it never stops every name.
    assert actions.count("login.failure") == 2 * runtime.settings.login_lock_after
    assert "login.refused_locked" in actions


def test_failures_slow_down_before_they_lock(runtime, clock):
    attempt = login_throttle.Attempt("nguyen.van.an", "203.0.113.7")
    delays = []
    with transaction(runtime.session_factory) as session:
        for _ in range(runtime.settings.login_lock_after - 1):
            login_throttle.record_failure(
                session=session, clock=clock, settings=runtime.settings, attempt=attempt
            )
            state = login_throttle.assess(
                session=session, clock=clock, settings=runtime.settings, attempt=attempt
            )
            assert not state.locked
            delays.append(state.delay_seconds)
    assert delays[0] == 0 and delays[-1] == runtime.settings.login_max_delay
    assert delays == sorted(delays)


def test_lock_expires(web, rp, official, runtime, clock):
    runtime.settings.login_max_delay = 0
    for _ in range(runtime.settings.login_lock_after):
        submit_login(web, open_login_page(web, rp[0].client_id), "nguyen.van.an", "sai")
    clock.advance(runtime.settings.login_lock_seconds + 1)
    ok = submit_login(
        web, open_login_page(web, rp[0].client_id), "nguyen.van.an", OFFICIAL_PASSWORD
    )
    assert ok.status_code == 303


def test_imported_bcrypt_hash_is_rehashed_to_argon2id_on_login(web, rp, runtime):
    legacy = bcrypt.hashpw(b"mat-khau-cu-2019", bcrypt.gensalt(rounds=4)).decode()
    with transaction(runtime.session_factory) as session:
        account = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="tran.thi.binh",
            full_name="Trần Thị Bình",
        )
        account.password_hash = legacy
    response = submit_login(
        web, open_login_page(web, rp[0].client_id), "tran.thi.binh", "mat-khau-cu-2019"
    )
    assert response.status_code == 303
    with transaction(runtime.session_factory) as session:
        stored = accounts.get_by_username(session, "tran.thi.binh").password_hash
    assert stored is not None and stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_password_longer_than_bcrypt_limit_is_a_failed_login_not_a_500(web, rp, runtime):
    with transaction(runtime.session_factory) as session:
        account = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="le.van.cuong",
            full_name="Lê Văn Cường",
        )
        account.password_hash = bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=4)).decode()
    response = submit_login(web, open_login_page(web, rp[0].client_id), "le.van.cuong", "x" * 100)
    assert response.status_code == 401


def test_disabled_account_cannot_log_in_and_loses_its_tokens(web, rp, official, runtime):
    client, secret = rp
    verifier, challenge = pkce_pair()
    back = log_in(
        web, authorize_params(client.client_id, challenge), "nguyen.van.an", OFFICIAL_PASSWORD
    )
    tokens = exchange_code(
        web, client.client_id, secret, query_of(back.headers["location"])["code"], verifier
    ).json()
    with transaction(runtime.session_factory) as session:
        accounts.disable(
            session=session,
            clock=runtime.clock,
            actor="admin:test",
            account=session.get(Account, official.id),
        )
    info = web.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 401
    # The session is gone too: authorize shows the login form again.
    _, challenge = pkce_pair()
    again = open_login_form(web, authorize_params(client.client_id, challenge))
    refused = submit_login(web, again, "nguyen.van.an", OFFICIAL_PASSWORD)
    assert refused.status_code == 401 and WRONG_VI in refused.text


def test_third_party_app_asks_consent_once(web, runtime, official):
    client, secret = register_client(runtime, name="Cổng dịch vụ công", first_party=False)
    verifier, challenge = pkce_pair()
    page = open_login_page(web, client.client_id)
    consent_redirect = submit_login(web, page, "nguyen.van.an", OFFICIAL_PASSWORD)
    # Straight to the consent page, or there through /oauth2/authorize/resume.
    for _ in range(2):
        if consent_redirect.headers["location"].startswith("/consent"):
            break
        consent_redirect = web.get(consent_redirect.headers["location"])
    assert consent_redirect.status_code == 303
    assert consent_redirect.headers["location"].startswith("/consent")
    consent = web.get(consent_redirect.headers["location"])
    assert consent.status_code == 200 and "Cổng dịch vụ công" in consent.text
    allowed = web.post("/consent", data={**hidden_inputs(consent.text), "decision": "allow"})
    back = follow_to_client(web, web.get(allowed.headers["location"]))
    assert back.headers["location"].startswith(RP_REDIRECT) and "code=" in back.headers["location"]
    # Remembered: the next authorization needs neither login nor consent.
    _, challenge = pkce_pair()
    again = web.get("/oauth2/authorize", params=authorize_params(client.client_id, challenge))
    assert again.status_code == 302 and "code=" in again.headers["location"]
    # prompt=consent asks again; denying sends access_denied with state and iss.
    params = authorize_params(client.client_id, challenge, prompt="consent")
    asked = web.get("/oauth2/authorize", params=params)
    consent = web.get(asked.headers["location"])
    denied = web.post("/consent", data={**hidden_inputs(consent.text), "decision": "deny"})
    reply = query_of(denied.headers["location"])
    assert reply["error"] == "access_denied" and reply["state"] == params["state"]
    assert "iss" in reply
    del verifier, secret


def log_in_and_get_tokens(web, client, secret):
    verifier, challenge = pkce_pair()
    back = log_in(
        web, authorize_params(client.client_id, challenge), "nguyen.van.an", OFFICIAL_PASSWORD
    )
    return exchange_code(
        web, client.client_id, secret, query_of(back.headers["location"])["code"], verifier
    ).json()


def test_logout_with_id_token_hint_ends_session_and_tokens(web, rp, official):
    client, secret = rp
    tokens = log_in_and_get_tokens(web, client, secret)
    sid = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})["sid"]
    out = web.get(
        "/oauth2/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": RP_LOGOUT_REDIRECT,
            "state": "tro-ve",
        },
    )
    assert out.status_code == 303
    assert out.headers["location"] == f"{RP_LOGOUT_REDIRECT}?state=tro-ve"
    assert sid
    refreshed = web.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(client.client_id, secret),
    )
    assert refreshed.json()["error"] == "invalid_grant"
    _, challenge = pkce_pair()
    silent = web.get(
        "/oauth2/authorize", params=authorize_params(client.client_id, challenge, prompt="none")
    )
    assert query_of(silent.headers["location"])["error"] == "login_required"


def test_logout_without_hint_asks_first(web, rp, official):
    client, secret = rp
    log_in_and_get_tokens(web, client, secret)
    page = web.get(
        "/oauth2/logout",
        params={"client_id": client.client_id, "post_logout_redirect_uri": RP_LOGOUT_REDIRECT},
    )
    assert page.status_code == 200 and 'name="decision"' in page.text
    done = web.post(
        "/oauth2/logout/confirm", data={**hidden_inputs(page.text), "decision": "logout"}
    )
    assert done.status_code == 303 and done.headers["location"] == RP_LOGOUT_REDIRECT


def test_unregistered_post_logout_redirect_is_never_followed(web, rp, official):
    client, secret = rp
    tokens = log_in_and_get_tokens(web, client, secret)
    out = web.get(
        "/oauth2/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://evil.example/",
        },
    )
    assert out.status_code == 400 and "location" not in out.headers


def test_forged_id_token_hint_is_refused(web, rp, official):
    client, secret = rp
    tokens = log_in_and_get_tokens(web, client, secret)
    head, body, signature = tokens["id_token"].split(".")
    forged = f"{head}.{body}.{signature[::-1]}"
    out = web.get("/oauth2/logout", params={"id_token_hint": forged})
    assert out.status_code == 400


def test_language_switch_still_works_after_a_failed_login(web, rp, official):
    failed = submit_login(web, open_login_page(web, rp[0].client_id), "nguyen.van.an", "sai")
    switch = failed.text.split('hreflang="en"')[0].rsplit('href="', 1)[1].split('"')[0]
    english = web.get(switch.replace("&amp;", "&"))
    assert english.status_code == 200
    assert 'lang="en"' in english.text and 'name="password"' in english.text


def test_a_successful_login_clears_the_name_counter(web, rp, official, runtime):
    for _ in range(2):
        submit_login(web, open_login_page(web, rp[0].client_id), "nguyen.van.an", "sai")
    ok = submit_login(
        web, open_login_page(web, rp[0].client_id), "nguyen.van.an", OFFICIAL_PASSWORD
    )
    assert ok.status_code == 303
    with transaction(runtime.session_factory) as session:
        left = login_throttle.current(
            session=session, clock=runtime.clock, settings=runtime.settings
        )
    # The name's counters are gone; the address keeps its own (other names may follow).
    assert [row.kind for row in left] == [login_throttle.ADDRESS]
