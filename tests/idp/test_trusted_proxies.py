"""Behind a proxy: the throttle, the audit log and the session list all see the address the
proxy appended, never the one a client wrote into X-Forwarded-For (issue 14, item 3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from core import audit
from core.db import transaction
from core.web.client_address import parse_networks
from idp import login_throttle
from idp.models import BrowserSession, LoginThrottle
from tests.conftest import ISSUER, OFFICIAL_PASSWORD
from tests.idp.oidc_flow import authorize_params, open_login_form, pkce_pair, submit_login

REAL_CLIENT = "203.0.113.7"


@pytest.fixture
def behind_proxy(app, runtime) -> Iterator[TestClient]:
    """The app as a local proxy reaches it: TCP peer 127.0.0.1, a trusted proxy."""
    runtime.settings.trusted_proxies = parse_networks(["127.0.0.1"])
    runtime.settings.login_max_delay = 0  # the growing delay itself is tested elsewhere
    with TestClient(
        app, base_url=ISSUER, follow_redirects=False, client=("127.0.0.1", 40123)
    ) as client:
        yield client


def forwarded(spoofed: str) -> dict[str, str]:
    # What nginx's $proxy_add_x_forwarded_for sends: the client's header, then the real peer.
    return {"x-forwarded-for": f"{spoofed}, {REAL_CLIENT}"}


def attempt(web: TestClient, client_id: str, username: str, password: str, spoofed: str):
    web.headers.update(forwarded(spoofed))
    _, challenge = pkce_pair()
    page = open_login_form(web, authorize_params(client_id, challenge))
    return submit_login(web, page, username, password)


def test_a_fresh_spoofed_address_per_guess_is_still_counted_on_the_real_one(
    behind_proxy, rp, official, runtime
):
    client_id = rp[0].client_id
    runtime.settings.login_address_slowdown_after = 3
    for n in range(runtime.settings.login_lock_after):
        # A different user name each time: only the address counts them together.
        attempt(behind_proxy, client_id, f"doan.ten.{n}", "sai", spoofed=f"198.51.100.{n}")
    with transaction(runtime.session_factory) as session:
        entries = audit.tail(session, limit=50)
        address_counter = session.scalars(
            select(LoginThrottle).where(LoginThrottle.kind == login_throttle.ADDRESS)
        ).one()
    failures = [e for e in entries if e.action == "login.failure"]
    assert len(failures) == runtime.settings.login_lock_after
    assert {e.client_address for e in failures} == {REAL_CLIENT}
    # The real address is slowed down, never locked: officials behind it still sign in.
    assert address_counter.client_address == REAL_CLIENT
    assert address_counter.failures == runtime.settings.login_lock_after
    assert address_counter.locked_until is None
    ok = attempt(behind_proxy, client_id, official.username, OFFICIAL_PASSWORD, "192.0.2.1")
    assert ok.status_code == 303


def test_a_spoofed_header_cannot_lock_out_an_address_of_its_choice(behind_proxy, rp, official):
    client_id = rp[0].client_id
    victim = "198.51.100.50"
    # Ten guesses that name the victim's address in the header...
    for n in range(10):
        attempt(behind_proxy, client_id, f"doan.ten.{n}", "sai", spoofed=victim)
    # ...lock only the attacker's real address, not the victim coming through the same proxy.
    behind_proxy.headers["x-forwarded-for"] = victim
    _, challenge = pkce_pair()
    page = open_login_form(behind_proxy, authorize_params(client_id, challenge))
    ok = submit_login(behind_proxy, page, official.username, OFFICIAL_PASSWORD)
    assert ok.status_code == 303


def test_the_session_records_the_address_the_proxy_appended(behind_proxy, rp, official, runtime):
    response = attempt(
        behind_proxy, rp[0].client_id, official.username, OFFICIAL_PASSWORD, "6.6.6.6"
    )
    assert response.status_code == 303
    with transaction(runtime.session_factory) as session:
        addresses = {row.client_address for row in session.query(BrowserSession).all()}
        success = [e for e in audit.tail(session, limit=20) if e.action == "login.success"]
    assert addresses == {REAL_CLIENT}
    assert [e.client_address for e in success] == [REAL_CLIENT]


def test_without_trusted_proxies_the_header_is_ignored(app, runtime, rp, official):
    assert runtime.settings.trusted_proxies == ()
    with TestClient(app, base_url=ISSUER, follow_redirects=False, client=("127.0.0.1", 1)) as web:
        attempt(web, rp[0].client_id, official.username, OFFICIAL_PASSWORD, "6.6.6.6")
    with transaction(runtime.session_factory) as session:
        success = [e for e in audit.tail(session, limit=20) if e.action == "login.success"]
    assert [e.client_address for e in success] == ["127.0.0.1"]
