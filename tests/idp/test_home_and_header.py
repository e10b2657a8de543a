"""The home page, the shared header, the direct login and the language choice, through the real
ASGI app on SQLite and PostgreSQL (issue 19, "no dead ends")."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from commune_sso.app import build_runtime, create_app
from core.clock import FixedClock
from core.db import transaction
from core.settings import Settings
from idp import mfa, totp
from idp.models import Account
from idp.runtime import IdpRuntime
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, register_client, settings_for
from tests.idp.oidc_flow import (
    RP_REDIRECT,
    authorize_params,
    follow_to_client,
    hidden_inputs,
    pkce_pair,
    query_of,
    submit_login,
)
from tests.idp.test_admin_pages import World
from tests.idp.test_admin_pages import sign_in as with_session
from tests.idp.test_admin_pages import world as world  # the same units, admins, officials

FORM_ACTION = re.compile(r'<form[^>]* action="([^"]*)"')
HTML_LANG = re.compile(r'<html lang="(\w+)">')
SIGN_OUT = 'href="/oauth2/logout"'
AREA_LINK = re.compile(r'<ul class="site-nav__areas">(.*?)</ul>', re.S)


def header_areas(page: httpx.Response) -> list[str]:
    found = AREA_LINK.search(page.text)
    assert found is not None, page.text[:2000]
    return re.findall(r'href="([^"]+)"', found.group(1))


def follow(web: TestClient, response: httpx.Response, limit: int = 10) -> httpx.Response:
    for _ in range(limit):
        if response.status_code not in (302, 303):
            return response
        response = web.get(response.headers["location"])
    raise AssertionError("redirect loop")


# --- home page -------------------------------------------------------------------------------


def test_home_page_invites_a_stranger_to_sign_in(web: TestClient) -> None:
    page = web.get("/")
    assert page.status_code == 200
    assert "Đăng nhập" in page.text
    assert 'href="/login?next=%2F"' in page.text
    assert 'href="/activate"' in page.text
    assert "site-nav" not in page.text and SIGN_OUT not in page.text  # nobody to name
    assert "Không tìm thấy trang" not in page.text


def test_home_page_leads_an_official_to_the_account_and_certificates(
    web: TestClient, runtime: IdpRuntime, world: World
) -> None:
    with_session(web, runtime, world.in_a)
    page = web.get("/")
    assert page.status_code == 200
    assert "Nguyễn Văn An" in page.text
    assert 'class="home__area" href="/account"' in page.text
    assert 'class="home__area" href="/ca/pages/"' in page.text
    assert 'href="/admin"' not in page.text  # not an admin: no way into administration
    assert header_areas(page) == ["/account", "/ca/pages/"]
    assert SIGN_OUT in page.text


@pytest.mark.parametrize("who", ["system", "province_admin_15", "unit_admin_a"])
def test_home_page_shows_administration_to_admins(
    web: TestClient, runtime: IdpRuntime, world: World, who: str
) -> None:
    with_session(web, runtime, getattr(world, who))
    page = web.get("/")
    assert 'class="home__area" href="/admin"' in page.text
    assert header_areas(page) == ["/account", "/ca/pages/", "/admin"]


def test_unknown_paths_keep_the_not_found_page(web: TestClient) -> None:
    missing = web.get("/no-such-page", headers={"accept": "text/html"})
    assert missing.status_code == 404
    assert "Không tìm thấy trang" in missing.text


# --- direct login ----------------------------------------------------------------------------


def test_login_opened_directly_shows_the_form_and_then_goes_home(
    web: TestClient, official: Account
) -> None:
    started = web.get("/login")
    assert started.status_code == 303
    assert started.headers["location"].startswith("/login?interaction=")
    form = web.get(started.headers["location"])
    assert form.status_code == 200
    assert 'name="password"' in form.text and "Lỗi đăng nhập" not in form.text
    signed_in = submit_login(web, form, official.username, OFFICIAL_PASSWORD)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/"
    home = web.get("/")
    assert "Nguyễn Văn An" in home.text and 'href="/account"' in home.text


@pytest.mark.parametrize("next_path", ["https://evil.example/", "//evil.example/", "/\\evil"])
def test_login_still_refuses_to_go_elsewhere(web: TestClient, next_path: str) -> None:
    answer = web.get("/login", params={"next": next_path})
    assert answer.status_code == 400
    assert "location" not in answer.headers


# --- the shared header on every area ---------------------------------------------------------


def test_account_pages_link_to_the_other_areas_and_sign_out(
    web: TestClient, runtime: IdpRuntime, world: World
) -> None:
    with_session(web, runtime, world.in_a)
    page = web.get("/account")
    assert header_areas(page) == ["/account", "/ca/pages/"]
    assert 'href="/account" aria-current="true"' in page.text
    assert page.text.count(SIGN_OUT) == 1
    assert "Đăng xuất" in page.text


def test_admin_pages_link_to_the_other_areas_and_sign_out(
    web: TestClient, runtime: IdpRuntime, world: World
) -> None:
    with_session(web, runtime, world.unit_admin_a)
    for path in ("/admin", "/admin/officials", "/account"):
        page = web.get(path)
        assert page.status_code == 200, path
        assert header_areas(page) == ["/account", "/ca/pages/", "/admin"], path
        assert SIGN_OUT in page.text and "Đăng xuất" in page.text, path
        assert "Quản trị Cam Đường" in page.text, path


def test_a_non_admin_refused_at_the_admin_pages_still_has_a_way_back(
    web: TestClient, runtime: IdpRuntime, world: World
) -> None:
    with_session(web, runtime, world.nobody)
    refused = web.get("/admin")
    assert refused.status_code == 403
    assert header_areas(refused) == ["/account", "/ca/pages/"]
    assert SIGN_OUT in refused.text


def test_admin_menu_is_also_a_disclosure_for_phones(
    web: TestClient, runtime: IdpRuntime, world: World
) -> None:
    with_session(web, runtime, world.system)
    page = web.get("/admin")
    wide, narrow = page.text.split('<details class="admin-nav admin-nav--narrow">')
    assert 'class="admin-nav admin-nav--wide"' in wide
    assert "<summary>Menu quản trị</summary>" in narrow
    # The same links in both, so a phone reaches every page.
    assert re.findall(r'href="(/admin[^"]*)"', narrow.split("</details>")[0]) == re.findall(
        r'href="(/admin[^"]*)"', wide.split('class="admin-nav admin-nav--wide"')[1]
    )


# --- the language choice survives the redirects ------------------------------------------------


def test_lang_query_sets_the_cookie_on_redirects_too(web: TestClient) -> None:
    redirected = web.get("/account", params={"lang": "en"})
    assert redirected.status_code == 303
    cookie = redirected.headers["set-cookie"]
    assert cookie.startswith("lang=en;")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    assert "Secure" not in cookie  # an http issuer (tests): a Secure cookie would be dropped
    # An unsupported language sets nothing.
    assert "lang=" not in web.get("/account", params={"lang": "fr"}).headers.get("set-cookie", "")


def test_english_chosen_before_signing_in_stays_through_login_otp_and_consent(
    web: TestClient, runtime: IdpRuntime, official: Account, clock: FixedClock
) -> None:
    """An app's sign-in link opened with ?lang=en: the login form, the second factor and the
    consent page are English, and so is the account page afterwards."""
    client, _secret = register_client(runtime, first_party=False)  # asks for consent
    with transaction(runtime.session_factory) as session:
        stored = session.get(Account, official.id)
        assert stored is not None
        kwargs = {"session": session, "server_secret": runtime.server_secret, "account": stored}
        mfa.start_enrolment(clock=runtime.clock, **kwargs)
        pending = mfa.pending_enrolment(issuer_name="test", **kwargs)
        assert pending is not None
        secret = pending.secret
        code = totp.totp(secret, runtime.clock.now())
        assert mfa.confirm_enrolment(clock=runtime.clock, code=code, **kwargs)
    clock.advance(60)  # the enrolment's code is spent
    _verifier, challenge = pkce_pair()
    params = authorize_params(client.client_id, challenge)
    params["lang"] = "en"
    login_page = follow(web, web.get("/oauth2/authorize", params=params))
    assert HTML_LANG.search(login_page.text).group(1) == "en"  # type: ignore[union-attr]
    submitted = submit_login(web, login_page, official.username, OFFICIAL_PASSWORD)
    assert submitted.status_code == 303
    assert submitted.headers["location"].startswith("/login/otp")
    otp_page = web.get(submitted.headers["location"])
    assert HTML_LANG.search(otp_page.text).group(1) == "en"  # type: ignore[union-attr]
    code = totp.totp(secret, runtime.clock.now())
    action = html.unescape(FORM_ACTION.findall(otp_page.text)[0])
    after_otp = web.post(action, data={**hidden_inputs(otp_page.text), "code": code})
    assert after_otp.status_code == 303
    consent = follow(web, after_otp)
    assert consent.request.url.path == "/consent"
    assert HTML_LANG.search(consent.text).group(1) == "en"  # type: ignore[union-attr]
    allowed = web.post(
        "/consent",
        data={**hidden_inputs(consent.text), "decision": "allow"},
    )
    back_on_app = follow_to_client(web, allowed)
    assert back_on_app.headers["location"].startswith(RP_REDIRECT)
    assert "code" in query_of(back_on_app.headers["location"])
    account_page = web.get("/account")
    assert HTML_LANG.search(account_page.text).group(1) == "en"  # type: ignore[union-attr]


# --- the province's name ---------------------------------------------------------------------


@pytest.fixture
def named_web(
    tmp_path: Path, database_url: str, key_dir: Path, clock: FixedClock
) -> Iterator[TestClient]:
    settings = settings_for(tmp_path=tmp_path, database_url=database_url, key_dir=key_dir)
    named = Settings(
        **{
            **settings.model_dump(),
            "organisation_name": "Sở Khoa học và Công nghệ tỉnh Lào Cai",
            "organisation_name_en": "Lao Cai Department of Science and Technology",
        }
    )
    runtime = build_runtime(named, clock)
    app = create_app(named, runtime=runtime)
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as client:
        yield client
    runtime.session_factory.kw["bind"].dispose()


def test_the_province_name_heads_every_page_in_its_language(named_web: TestClient) -> None:
    for path in ("/", "/login", "/activate", "/ca/pages/"):
        vietnamese = follow(named_web, named_web.get(path, params={"lang": "vi"}))
        assert vietnamese.status_code == 200, path
        assert vietnamese.text.count("Sở Khoa học và Công nghệ tỉnh Lào Cai") == 2, path
        english = follow(named_web, named_web.get(path, params={"lang": "en"}))
        assert english.text.count("Lao Cai Department of Science and Technology") == 2, path
        assert "tỉnh Lào Cai" not in english.text, path


def test_without_a_name_pages_keep_the_generic_department(web: TestClient) -> None:
    assert "Sở Khoa học và Công nghệ" in web.get("/").text
    assert "Department of Science and Technology" in web.get("/?lang=en").text
