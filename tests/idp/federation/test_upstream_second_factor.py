"""Our own second factor after an upstream sign-in: when the upstream's ``amr`` shows one
factor and the official has our TOTP, the login's TOTP step comes before the login finishes,
and ``amr`` is then ["fed", <the upstream's>..., "otp"]; when the upstream did multi-factor
itself, ours is not asked again. Against a second commune-sso (whose own TOTP is its MFA)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from core.db import transaction
from idp import mfa, totp
from idp.federation.endpoints.callback import did_multi_factor
from idp.models import Account, UpstreamSession
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD, RP_REDIRECT
from tests.idp.federation.broker_flow import Browser, urljoin_origin
from tests.idp.federation.conftest import UPSTREAM_ID, UPSTREAM_USERNAME, Upstream
from tests.idp.federation.test_upstream_sign_in import (
    OUR_USERNAME,
    audit_entries,
    exchange,
    id_token_claims,
)
from tests.idp.federation.test_upstream_sign_in import (
    linked_official as linked_official,  # the fixture
)
from tests.idp.live_server import LiveServer
from tests.idp.oidc_flow import FORM_ACTION, hidden_inputs, query_of


@pytest.fixture
def browser(live_server: LiveServer) -> Iterator[Browser]:
    opened = Browser(live_server)
    yield opened
    opened.close()


def enrol_totp(runtime: IdpRuntime, username: str) -> bytes:
    """TOTP turned on a minute ago (so the sign-in's code is of a later time step)."""
    runtime.clock.advance(-60)  # type: ignore[attr-defined]
    with transaction(runtime.session_factory) as session:
        account = session.scalars(select(Account).where(Account.username == username)).one()
        kwargs = {"session": session, "server_secret": runtime.server_secret, "account": account}
        mfa.start_enrolment(clock=runtime.clock, **kwargs)  # type: ignore[arg-type]
        pending = mfa.pending_enrolment(issuer_name="x", **kwargs)  # type: ignore[arg-type]
        assert pending is not None
        code = totp.totp(pending.secret, runtime.clock.now())
        assert mfa.confirm_enrolment(clock=runtime.clock, code=code, **kwargs)  # type: ignore[arg-type]
    runtime.clock.advance(60)  # type: ignore[attr-defined]
    return pending.secret


def submit_code(browser: Browser, page: httpx.Response, secret: bytes, now) -> httpx.Response:  # type: ignore[no-untyped-def]
    """The TOTP form ``page`` (ours or the upstream's), answered with the current code."""
    action = html.unescape(FORM_ACTION.findall(page.text)[0])
    return browser.http.post(
        urljoin_origin(str(page.url), action),
        data={**hidden_inputs(page.text), "code": totp.totp(secret, now)},
    )


def test_our_totp_is_asked_after_a_one_factor_upstream_sign_in(
    browser: Browser, rp, runtime: IdpRuntime, registered, linked_official
) -> None:
    secret = enrol_totp(runtime, OUR_USERNAME)
    started = browser.to_upstream(rp[0].client_id)
    back = browser.sign_in_upstream(started.headers["location"])
    asked = browser.get(back.headers["location"])
    assert asked.status_code == 303 and asked.headers["location"].startswith("/login/otp?")
    # No session yet: the upstream's password alone does not sign in here.
    with transaction(runtime.session_factory) as session:
        assert session.scalars(select(UpstreamSession)).all() == []
    otp_page = browser.get(asked.headers["location"])
    assert otp_page.status_code == 200 and 'name="code"' in otp_page.text
    assert '<html lang="vi">' in otp_page.text

    answered = browser.follow_to_client(submit_code(browser, otp_page, secret, runtime.clock.now()))

    location = answered.headers["location"]
    assert location.startswith(RP_REDIRECT), location
    claims = id_token_claims(runtime, exchange(browser, rp, query_of(location)["code"])["id_token"])
    assert claims["sub"] == linked_official.subject
    assert claims["amr"] == ["fed", "pwd", "otp"]
    [asked_entry] = audit_entries(runtime, "login.second_factor_required")
    assert json.loads(asked_entry.details or "{}")["upstream"] == UPSTREAM_ID
    [success] = audit_entries(runtime, "login.success")
    details = json.loads(success.details or "{}")
    assert (details["upstream"], details["second_factor"]) == (UPSTREAM_ID, "otp")
    assert details["amr"] == ["fed", "pwd", "otp"]
    # The upstream's sign-in is remembered for its logout, as without our TOTP.
    with transaction(runtime.session_factory) as session:
        [record] = session.scalars(select(UpstreamSession)).all()
        assert record.upstream_pk == registered.id


def test_a_wrong_code_after_the_upstream_is_refused_and_signs_in_nobody(
    browser: Browser, rp, runtime: IdpRuntime, registered, linked_official
) -> None:
    enrol_totp(runtime, OUR_USERNAME)
    back = browser.sign_in_upstream(browser.to_upstream(rp[0].client_id).headers["location"])
    otp_page = browser.get(browser.get(back.headers["location"]).headers["location"])
    action = html.unescape(FORM_ACTION.findall(otp_page.text)[0])
    refused = browser.http.post(
        browser.ours.url(action), data={**hidden_inputs(otp_page.text), "code": "000000"}
    )
    assert refused.status_code == 401
    with transaction(runtime.session_factory) as session:
        assert session.scalars(select(UpstreamSession)).all() == []
    assert audit_entries(runtime, "login.success") == []


def test_no_totp_here_when_the_upstream_did_multi_factor(
    browser: Browser, rp, runtime: IdpRuntime, upstream: Upstream, registered, linked_official
) -> None:
    enrol_totp(runtime, OUR_USERNAME)
    upstream_secret = enrol_totp(upstream.runtime, UPSTREAM_USERNAME)
    authorize_url = browser.to_upstream(rp[0].client_id).headers["location"]
    # At the upstream: its login form, then its own TOTP.
    page = browser.get(authorize_url)
    if page.status_code == 303:
        page = browser.get(urljoin_origin(authorize_url, page.headers["location"]))
    action = html.unescape(FORM_ACTION.findall(page.text)[0])
    submitted = browser.http.post(
        urljoin_origin(authorize_url, action),
        data={
            **hidden_inputs(page.text),
            "username": UPSTREAM_USERNAME,
            "password": OFFICIAL_PASSWORD,
        },
    )
    assert submitted.headers["location"].startswith("/login/otp?")
    upstream_otp = browser.get(urljoin_origin(authorize_url, submitted.headers["location"]))
    answered = submit_code(browser, upstream_otp, upstream_secret, upstream.clock.now())
    location = answered.headers["location"]
    while "/login/upstream/" not in location:
        answered = browser.get(urljoin_origin(authorize_url, location))
        location = answered.headers["location"]

    ours = browser.follow_to_client(browser.get(location))

    assert ours.headers["location"].startswith(RP_REDIRECT), ours.headers["location"]
    code = query_of(ours.headers["location"])["code"]
    claims = id_token_claims(runtime, exchange(browser, rp, code)["id_token"])
    # The upstream's own "otp": ours was not asked.
    assert claims["amr"] == ["fed", "pwd", "otp"]
    assert audit_entries(runtime, "login.second_factor_required") == []
    [success] = audit_entries(runtime, "login.success")
    assert "second_factor" not in json.loads(success.details or "{}")


@pytest.mark.parametrize(
    ("amr", "multi"),
    [
        (["fed", "pwd"], False),
        (["fed"], False),
        (["fed", "face"], False),
        (["fed", "pwd", "otp"], True),
        (["fed", "mfa"], True),
        (["fed", "hwk", "user"], True),
        (["fed", "swk"], True),
    ],
)
def test_which_upstream_amr_counts_as_multi_factor(amr: list[str], multi: bool) -> None:
    assert did_multi_factor(amr) is multi
