"""A lockout that cannot be turned against officials (issue 16): failures are throttled per
(account, client address), per account from devices it does not know (at most 100, NIST SP
800-63B §5.2.2), and per device cookie; a stranger's guesses never stop the official on the
device they signed in on before. Admins see the throttles and clear them (audited)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core import audit
from core.db import transaction
from core.settings import Settings
from core.web.client_address import parse_networks
from idp import device_cookies, login_throttle
from idp.models import LoginThrottle
from idp.runtime import IdpRuntime
from tests.conftest import ISSUER, OFFICIAL_PASSWORD
from tests.idp.oidc_flow import submit_login
from tests.idp.test_admin_pages import CSRF_FIELD, make_account, sign_in

OFFICE = "203.0.113.7"  # the official's own address
Browser = Callable[[str], TestClient]


@pytest.fixture
def browser(app: Starlette, runtime: IdpRuntime, web: TestClient) -> Browser:
    """Browsers behind our (trusted) proxy, each at the client address it is given, each with
    its own cookie jar; ``web`` runs the lifespan."""
    runtime.settings.trusted_proxies = parse_networks(["127.0.0.1"])
    runtime.settings.login_max_delay = 0  # the growing delay itself is tested on assess()

    def open_at(address: str) -> TestClient:
        client = TestClient(
            app, base_url=ISSUER, follow_redirects=False, client=("127.0.0.1", 40000)
        )
        client.headers["x-forwarded-for"] = address
        return client

    return open_at


def try_password(web: TestClient, username: str, password: str) -> httpx.Response:
    """The direct login form (no application), as an official opens it."""
    started = web.get("/login")
    assert started.status_code == 303, started.text
    page = web.get(started.headers["location"])
    assert page.status_code == 200, page.text
    return submit_login(web, page, username, password)


def signed_in(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"] == "/"


def test_a_strangers_wrong_passwords_do_not_stop_the_official_on_their_device(
    browser, official, runtime
):
    device = browser(OFFICE)
    assert signed_in(try_password(device, official.username, OFFICIAL_PASSWORD))
    assert device.cookies.get("sso_device")  # the sealed device cookie
    # 50 wrong passwords, each from another address (a botnet: no address is stopped).
    for n in range(50):
        stranger = browser(f"198.51.{n // 200}.{n % 200 + 1}")
        assert try_password(stranger, official.username, "sai").status_code == 401
    # The official signs in on their device, and also on a new one at their office.
    assert signed_in(try_password(device, official.username, OFFICIAL_PASSWORD))
    assert signed_in(try_password(browser(OFFICE), official.username, OFFICIAL_PASSWORD))


def test_ten_wrong_passwords_from_one_address_stop_that_address_only(browser, official, runtime):
    stranger = browser("198.51.100.9")
    for _ in range(runtime.settings.login_lock_after):
        assert try_password(stranger, official.username, "sai").status_code == 401
    refused = try_password(stranger, official.username, OFFICIAL_PASSWORD)
    assert refused.status_code == 429 and "Bạn đã nhập sai quá nhiều lần" in refused.text
    assert signed_in(try_password(browser(OFFICE), official.username, OFFICIAL_PASSWORD))


def test_past_the_account_limit_only_unknown_devices_are_stopped(browser, official, runtime):
    runtime.settings.login_account_lock_after = 30  # the default is NIST's ceiling, 100
    device = browser(OFFICE)
    assert signed_in(try_password(device, official.username, OFFICIAL_PASSWORD))
    for n in range(30):
        try_password(browser(f"198.51.100.{n + 1}"), official.username, "sai")
    # A device the account has never signed in on is stopped, wherever it is...
    refused = try_password(browser(OFFICE), official.username, OFFICIAL_PASSWORD)
    assert refused.status_code == 429
    # ...the official's own device is not: it has its own budget.
    assert signed_in(try_password(device, official.username, OFFICIAL_PASSWORD))


def test_a_known_device_has_a_budget_of_its_own(browser, official, runtime):
    device = browser(OFFICE)
    assert signed_in(try_password(device, official.username, OFFICIAL_PASSWORD))
    for _ in range(runtime.settings.login_lock_after):
        assert try_password(device, official.username, "sai").status_code == 401
    assert try_password(device, official.username, OFFICIAL_PASSWORD).status_code == 429
    with transaction(runtime.session_factory) as session:
        kinds = set(session.scalars(select(LoginThrottle.kind)))
        entries = audit.tail(session, limit=30)
    # Its failures counted on the device only: nothing against the account from elsewhere.
    assert kinds == {login_throttle.DEVICE}
    failures = [e for e in entries if e.action == "login.failure"]
    assert failures and all(json.loads(e.details)["known_device"] for e in failures)


def test_the_delay_per_account_and_address_grows(runtime, clock):
    runtime.settings.login_max_delay = 60
    here = login_throttle.Attempt("nguyen.van.an", "198.51.100.9")
    elsewhere = login_throttle.Attempt("nguyen.van.an", "192.0.2.44")
    delays = []
    with transaction(runtime.session_factory) as session:
        for _ in range(runtime.settings.login_lock_after - 1):
            login_throttle.record_failure(
                session=session, clock=clock, settings=runtime.settings, attempt=here
            )
            state = login_throttle.assess(
                session=session, clock=clock, settings=runtime.settings, attempt=here
            )
            delays.append(state.delay_seconds)
        other = login_throttle.assess(
            session=session, clock=clock, settings=runtime.settings, attempt=elsewhere
        )
    slowdown = runtime.settings.login_slowdown_after
    assert delays[: slowdown - 1] == [0.0] * (slowdown - 1)
    growing = delays[slowdown - 1 :]
    assert growing == [0.25 * 2**n for n in range(len(growing))]  # doubles each failure
    # From another address the same account is not slowed down (fewer than 10 failures).
    assert other.delay_seconds == 0 and not other.locked


def test_nist_ceiling_on_consecutive_failures_per_account(tmp_path):
    with pytest.raises(ValidationError):
        Settings(var_dir=tmp_path, login_account_lock_after=101)


def test_a_forged_device_cookie_gives_no_budget(browser, official, runtime):
    stranger = browser("198.51.100.9")
    stranger.cookies.set("sso_device", "AAAA" + "B" * 60)
    for _ in range(runtime.settings.login_lock_after):
        try_password(stranger, official.username, "sai")
    assert try_password(stranger, official.username, OFFICIAL_PASSWORD).status_code == 429
    assert device_cookies.devices_in("AAAA", server_secret=runtime.server_secret) == []


def test_admin_sees_and_clears_a_throttle(browser, official, runtime, web):
    stranger = browser("198.51.100.9")
    for _ in range(runtime.settings.login_lock_after):
        try_password(stranger, official.username, "sai")
    assert try_password(stranger, official.username, OFFICIAL_PASSWORD).status_code == 429

    make_account(runtime, "quan.tri", "Quản trị hệ thống", system=True)
    sign_in(web, runtime, "quan.tri")
    page = web.get("/admin/login-throttles", params={"account": official.username})
    assert page.status_code == 200, page.text
    assert "198.51.100.9" in page.text and "Tài khoản này từ địa chỉ này" in page.text
    with transaction(runtime.session_factory) as session:
        stopped = session.scalars(
            select(LoginThrottle).where(LoginThrottle.kind == login_throttle.ACCOUNT_ADDRESS)
        ).one()
    token = CSRF_FIELD.search(page.text)
    assert token is not None
    cleared = web.post(
        "/admin/login-throttles/clear", data={"csrf_token": token.group(1), "key": stopped.key}
    )
    assert cleared.status_code == 303
    after = web.get(cleared.headers["location"])
    assert "Đã gỡ giới hạn." in after.text
    # That counter is gone; the account's and the address's own counters stay listed.
    assert "Tài khoản này từ địa chỉ này" not in after.text
    with transaction(runtime.session_factory) as session:
        entries = audit.tail(session, limit=5)
    entry = next(e for e in entries if e.action == "login_throttle.cleared")
    assert entry.actor == "user:quan.tri" and entry.target == f"account:{official.username}"
    details = json.loads(entry.details)
    assert details["client_address"] == "198.51.100.9"
    assert details["failures"] == runtime.settings.login_lock_after
    # The official at that address signs in again.
    assert signed_in(try_password(stranger, official.username, OFFICIAL_PASSWORD))


def test_only_system_admins_see_the_throttles(web, runtime, official):
    sign_in(web, runtime, official.username)
    assert web.get("/admin/login-throttles").status_code in (403, 404)
