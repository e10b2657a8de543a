"""OpenID Back-Channel Logout 1.0: the outbox written with the logout, the logout token checked
with an independent library (PyJWT), delivery to a real HTTP receiver, retries with backoff,
give-up audited, a dead receiver never holding up the official, account disabling and "sign
out everywhere" fanning out, the delivery log in the CLI. Time moves with the fixed clock; the
worker's round (``deliver_due``) is called directly instead of sleeping."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import jwt as pyjwt
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from core.audit import AuditEntry
from core.db import transaction
from core.errors import DomainError
from idp import accounts, sessions
from idp.logout import backchannel
from idp.logout.sign_out import sign_out_everywhere
from idp.models import BrowserSession, LogoutDelivery
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, RP_LOGOUT_REDIRECT, register_client
from tests.idp.oidc_flow import (
    authorize_params,
    exchange_code,
    follow_to_client,
    log_in,
    pkce_pair,
    query_of,
)

USERNAME = "nguyen.van.an"


# --- A real back-channel logout receiver -----------------------------------------------------


class Receiver:
    """A tiny HTTP server in a thread that records the logout tokens POSTed to it."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.content_types: list[str] = []
        self.status = 200
        self.hang = threading.Event()  # set: accept, never answer (a stuck receiver)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.content_types.append(self.headers.get("Content-Type", ""))
                receiver.tokens.extend(parse_qs(body.decode()).get("logout_token", []))
                if receiver.hang.is_set():
                    receiver.released.wait(10)
                    return
                self.send_response(receiver.status)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.released = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def uri(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/backchannel-logout"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def dead_uri() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/backchannel-logout"


@pytest.fixture
def browser(app) -> TestClient:
    """The official's browser, on an app whose lifespan (and delivery worker) is not running:
    these tests run the worker's rounds themselves."""
    return TestClient(app, base_url=ISSUER, follow_redirects=False)


def deliver(runtime) -> list[backchannel.DeliveryOutcome]:
    async def round_() -> list[backchannel.DeliveryOutcome]:
        async with httpx.AsyncClient() as http:
            return await backchannel.deliver_due(runtime, http)

    return asyncio.run(round_())


def sign_in(browser: TestClient, client, secret: str | None, *, first: bool) -> dict[str, str]:
    """Authorization code + PKCE; the first sign-in goes through the login form, the next ones
    ride on the SSO session. Returns the token response."""
    verifier, challenge = pkce_pair()
    params = authorize_params(client.client_id, challenge)
    if first:
        back = log_in(browser, params, USERNAME, OFFICIAL_PASSWORD)
    else:
        back = follow_to_client(browser, browser.get("/oauth2/authorize", params=params))
    code = query_of(back.headers["location"])["code"]
    tokens: dict[str, str] = exchange_code(browser, client.client_id, secret, code, verifier).json()
    return tokens


def deliveries(runtime) -> list[LogoutDelivery]:
    with transaction(runtime.session_factory) as session:
        return list(session.scalars(select(LogoutDelivery).order_by(LogoutDelivery.id)))


def audit_entries(runtime, action: str) -> list[tuple[str | None, dict]]:
    """(target, details) of the audit entries of ``action``."""
    with transaction(runtime.session_factory) as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == action))
        return [(row.target, json.loads(row.details)) for row in rows]


def verify_logout_token(runtime, token: str, client_id: str) -> dict:
    """Back-Channel Logout 1.0 §2.6 with PyJWT, against our published JWKS."""
    header = pyjwt.get_unverified_header(token)
    jwks = runtime.keyring.public_jwks(now=runtime.clock.now())
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims: dict = pyjwt.decode(
        token,
        pyjwt.PyJWK(key).key,
        algorithms=[key["alg"]],
        audience=client_id,
        issuer=ISSUER,
        options={"require": ["iss", "aud", "iat", "exp", "jti", "events"]},
    )
    assert header["typ"] == "logout+jwt"
    return claims


# --- Registration and discovery --------------------------------------------------------------


def test_discovery_advertises_back_and_front_channel_logout(browser):
    metadata = browser.get("/.well-known/openid-configuration").json()
    assert metadata["backchannel_logout_supported"] is True
    assert metadata["backchannel_logout_session_supported"] is True
    assert metadata["frontchannel_logout_supported"] is True
    assert metadata["frontchannel_logout_session_supported"] is True


def test_registration_validates_logout_uris(runtime):
    client, _ = register_client(runtime, backchannel_logout_uri="https://vanban.laocai.gov.vn/bcl")
    assert client.backchannel_logout_uri == "https://vanban.laocai.gov.vn/bcl"
    assert client.backchannel_logout_session_required is True
    assert client.frontchannel_logout_session_required is True
    for uri in ("http://vanban.laocai.gov.vn/bcl", "https://a.example/bcl#x", "/relative"):
        with pytest.raises(DomainError) as refused:
            register_client(runtime, backchannel_logout_uri=uri)
        assert refused.value.field == "backchannel_logout_uri"
    # Front-Channel Logout 1.0 §2: same scheme, host and port as a redirect URI.
    with pytest.raises(DomainError) as refused:
        register_client(runtime, frontchannel_logout_uri="http://127.0.0.1:10/fcl")
    assert refused.value.field == "frontchannel_logout_uri"


# --- The outbox ------------------------------------------------------------------------------


def test_logout_queues_a_delivery_in_the_logout_transaction(runtime, browser, official, receiver):
    client, secret = register_client(runtime, backchannel_logout_uri=receiver.uri)
    tokens = sign_in(browser, client, secret, first=True)
    sid = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})["sid"]

    # A logout whose transaction rolls back leaves neither an ended session nor a notice.
    with pytest.raises(RuntimeError), transaction(runtime.session_factory) as session:
        browser_session = sessions.find_by_sid(session, sid)
        assert browser_session is not None
        queued = backchannel.enqueue_for_sessions(
            session=session,
            clock=runtime.clock,
            browser_sessions=[browser_session],
            reason="logout",
        )
        assert queued == 1
        sessions.end(session=session, clock=runtime.clock, browser_session=browser_session)
        raise RuntimeError("the logout fails after the notice was queued")
    assert deliveries(runtime) == []

    out = browser.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})
    assert out.status_code == 200
    [row] = deliveries(runtime)
    assert (row.client_id, row.sid, row.subject) == (client.client_id, sid, official.subject)
    assert (row.status, row.attempts, row.reason) == ("pending", 0, "logout")
    [(_, logout)] = audit_entries(runtime, "logout")
    assert logout["backchannel_deliveries"] == 1
    assert receiver.tokens == []  # no worker in this app: nothing sent until a round runs


def test_delivered_logout_token_passes_an_independent_check(runtime, browser, official, receiver):
    client, secret = register_client(
        runtime, backchannel_logout_uri=receiver.uri, id_token_alg="ES256"
    )
    tokens = sign_in(browser, client, secret, first=True)
    id_claims = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
    browser.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})

    [outcome] = deliver(runtime)
    assert (outcome.status, outcome.attempts) == ("delivered", 1)
    [token] = receiver.tokens
    assert receiver.content_types == ["application/x-www-form-urlencoded"]
    assert pyjwt.get_unverified_header(token)["alg"] == "ES256"  # the client's ID token alg
    claims = verify_logout_token(runtime, token, client.client_id)
    assert claims["sub"] == official.subject == id_claims["sub"]
    assert claims["sid"] == id_claims["sid"]
    assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert "nonce" not in claims  # §2.4: prohibited
    assert 0 < claims["exp"] - claims["iat"] <= 120
    [row] = deliveries(runtime)
    assert row.status == "delivered" and row.next_attempt_at is None
    assert [entry["status_code"] for entry in row.log] == [200]
    assert deliver(runtime) == []  # delivered once, never again


def test_failing_receiver_is_retried_with_backoff_then_given_up_and_audited(
    runtime, browser, official, receiver, clock
):
    receiver.status = 500
    client, secret = register_client(runtime, backchannel_logout_uri=receiver.uri)
    tokens = sign_in(browser, client, secret, first=True)
    browser.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})

    for attempt, delay in enumerate(backchannel.RETRY_DELAYS, start=1):
        [outcome] = deliver(runtime)
        assert (outcome.status, outcome.attempts) == ("pending", attempt)
        [row] = deliveries(runtime)
        assert row.next_attempt_at == clock.now() + timedelta(seconds=delay)
        clock.advance(delay - 1)
        assert deliver(runtime) == []  # not due yet
        clock.advance(1)
    [outcome] = deliver(runtime)
    assert (outcome.status, outcome.attempts) == ("failed", backchannel.MAX_ATTEMPTS)
    assert len(receiver.tokens) == backchannel.MAX_ATTEMPTS
    jtis = {pyjwt.decode(t, options={"verify_signature": False})["jti"] for t in receiver.tokens}
    assert len(jtis) == len(receiver.tokens)  # a fresh token per attempt
    [row] = deliveries(runtime)
    assert row.status == "failed" and row.next_attempt_at is None
    assert [entry["status_code"] for entry in row.log] == [500] * backchannel.MAX_ATTEMPTS
    assert row.log[0]["next_attempt_at"] is not None and row.log[-1]["next_attempt_at"] is None
    [(target, given_up)] = audit_entries(runtime, "logout.delivery_failed")
    assert target == f"client:{client.client_id}"
    assert given_up["attempts"] == backchannel.MAX_ATTEMPTS
    assert given_up["last_status_code"] == 500
    clock.advance(86400)
    assert deliver(runtime) == []


def test_receiver_that_is_down_is_retried_and_then_delivered(runtime, browser, official, clock):
    with Receiver() as later:
        client, secret = register_client(runtime, backchannel_logout_uri=dead_uri())
        tokens = sign_in(browser, client, secret, first=True)
        out = browser.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})
        assert out.status_code == 200  # the official is signed out whatever the app does
        [outcome] = deliver(runtime)
        assert outcome.status == "pending"
        [row] = deliveries(runtime)
        assert row.last_status_code is None and "ConnectError" in (row.last_error or "")
        # The app comes back (here: at another address, registered by the admins).
        with transaction(runtime.session_factory) as session:
            session.get(LogoutDelivery, row.id).uri = later.uri
        clock.advance(backchannel.RETRY_DELAYS[0])
        [outcome] = deliver(runtime)
        assert (outcome.status, outcome.attempts) == ("delivered", 2)
        assert len(later.tokens) == 1


def test_logout_response_does_not_wait_for_a_stuck_receiver(app, runtime, official, receiver):
    receiver.hang.set()
    client, secret = register_client(runtime, backchannel_logout_uri=receiver.uri)
    # This browser runs the app's lifespan: the delivery worker is live and woken by the logout.
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as live:
        tokens = sign_in(live, client, secret, first=True)
        started = time.monotonic()
        out = live.get(
            "/oauth2/logout",
            params={
                "id_token_hint": tokens["id_token"],
                "post_logout_redirect_uri": RP_LOGOUT_REDIRECT,
            },
        )
        elapsed = time.monotonic() - started
        assert out.status_code == 303
        deadline = time.monotonic() + 5
        while not receiver.tokens and time.monotonic() < deadline:
            time.sleep(0.05)
        # The worker did send (woken at once, not after a poll) and is still waiting for an
        # answer, while the official already got the response.
        assert len(receiver.tokens) == 1
        # Waiting for the receiver would have taken the whole send timeout.
        assert elapsed < backchannel.SEND_TIMEOUT.read - 1
        assert deliveries(runtime)[0].status == "pending"


def test_claims_keep_two_workers_from_sending_the_same_notice(runtime, browser, official, clock):
    client, secret = register_client(runtime, backchannel_logout_uri=dead_uri())
    tokens = sign_in(browser, client, secret, first=True)
    browser.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})

    def claim() -> list[backchannel.ClaimedDelivery]:
        with transaction(runtime.session_factory) as session:
            return backchannel.claim_due(
                session=session, clock=clock, keyring=runtime.keyring, issuer=ISSUER
            )

    [first] = claim()
    assert claim() == []  # the other worker finds it taken
    clock.advance(backchannel.CLAIM_SECONDS)
    [second] = claim()  # the first worker died: its lease ran out, another takes over
    stale = backchannel.AttemptResult(delivered=True, status_code=200, error=None)
    with transaction(runtime.session_factory) as session:
        assert (
            backchannel.record_attempt(session=session, clock=clock, delivery=first, result=stale)
            is None
        )
        recorded = backchannel.record_attempt(
            session=session, clock=clock, delivery=second, result=stale
        )
    assert recorded is not None and recorded.status == "delivered"
    assert deliveries(runtime)[0].attempts == 1


# --- Sessions ended by administrators ----------------------------------------------------------


def test_disabling_an_account_tells_every_app_of_its_sessions(runtime, browser, official, receiver):
    app_a, secret_a = register_client(runtime, backchannel_logout_uri=receiver.uri)
    app_b, secret_b = register_client(
        runtime,
        name="Báo cáo",
        backchannel_logout_uri=receiver.uri + "?app=b",
        backchannel_logout_session_required=False,
    )
    silent, secret_s = register_client(runtime, name="Không đăng ký đăng xuất")
    tokens_a = sign_in(browser, app_a, secret_a, first=True)
    sign_in(browser, app_b, secret_b, first=False)  # single sign-on: no second password
    sign_in(browser, silent, secret_s, first=False)
    sid = pyjwt.decode(tokens_a["id_token"], options={"verify_signature": False})["sid"]

    with transaction(runtime.session_factory) as session:
        accounts.disable(
            session=session,
            clock=runtime.clock,
            actor="admin:tran.thi.binh",
            account=accounts.get_by_username(session, USERNAME),
        )
    rows = deliveries(runtime)
    assert {(r.client_id, r.sid, r.reason) for r in rows} == {
        (app_a.client_id, sid, "account_disabled"),
        (app_b.client_id, None, "account_disabled"),
    }
    [(_, disabled)] = audit_entries(runtime, "account.disable")
    assert disabled["backchannel_deliveries"] == 2

    assert {o.status for o in deliver(runtime)} == {"delivered"}
    by_client = {
        claims["aud"]: claims
        for claims in (
            pyjwt.decode(t, options={"verify_signature": False}) for t in receiver.tokens
        )
    }
    assert by_client[app_a.client_id]["sid"] == sid
    # Not session-required: sub alone, which ends all of the official's sessions at that app.
    assert "sid" not in by_client[app_b.client_id]
    assert by_client[app_b.client_id]["sub"] == official.subject


def test_sign_out_everywhere_ends_every_session_and_tells_the_apps(
    app, runtime, official, receiver
):
    client, secret = register_client(runtime, backchannel_logout_uri=receiver.uri)
    office = TestClient(app, base_url=ISSUER, follow_redirects=False)
    phone = TestClient(app, base_url=ISSUER, follow_redirects=False)
    sids = {
        pyjwt.decode(
            sign_in(device, client, secret, first=True)["id_token"],
            options={"verify_signature": False},
        )["sid"]
        for device in (office, phone)
    }
    assert len(sids) == 2
    with transaction(runtime.session_factory) as session:
        ended = sign_out_everywhere(
            session=session,
            clock=runtime.clock,
            actor="admin:tran.thi.binh",
            account=accounts.get_by_username(session, USERNAME),
        )
    assert ended == 2
    assert {r.sid for r in deliveries(runtime)} == sids
    with transaction(runtime.session_factory) as session:
        assert all(s.ended_at is not None for s in session.scalars(select(BrowserSession)))
    [(_, entry)] = audit_entries(runtime, "account.sign_out_everywhere")
    assert entry == {"sessions_ended": 2, "grants_revoked": 2, "backchannel_deliveries": 2}
    assert len(deliver(runtime)) == 2 and len(receiver.tokens) == 2
    # Neither browser is signed in any more.
    _, challenge = pkce_pair()
    again = office.get(
        "/oauth2/authorize", params=authorize_params(client.client_id, challenge, prompt="none")
    )
    assert query_of(again.headers["location"])["error"] == "login_required"


# --- The CLI -----------------------------------------------------------------------------------


def test_cli_registers_logout_uris_and_shows_the_delivery_log(cli, database_url):
    created = cli.json(
        "client",
        "add",
        "--name",
        "Một cửa",
        "--redirect-uri",
        "https://motcua.laocai.gov.vn/cb",
        "--backchannel-logout-uri",
        "https://motcua.laocai.gov.vn/backchannel-logout",
        "--frontchannel-logout-uri",
        "https://motcua.laocai.gov.vn/frontchannel-logout",
        "--no-frontchannel-logout-session-required",
    )
    assert created["backchannel_logout_uri"] == "https://motcua.laocai.gov.vn/backchannel-logout"
    assert created["backchannel_logout_session_required"] is True
    assert created["frontchannel_logout_session_required"] is False
    refused = cli(
        "client", "add", "--name", "X", "--redirect-uri", "https://x.example/cb",
        "--backchannel-logout-uri", "http://x.example/bcl",
    )  # fmt: skip
    assert refused.exit_code != 0 and "https" in refused.stderr
    assert cli.json("client", "logout-deliveries") == []
    bad = cli("client", "logout-deliveries", "--status", "lost")
    assert bad.exit_code != 0


def test_cli_delivery_log_lists_attempts(cli, runtime, browser, official, receiver):
    receiver.status = 503
    client, secret = register_client(runtime, backchannel_logout_uri=receiver.uri)
    tokens = sign_in(browser, client, secret, first=True)
    browser.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})
    deliver(runtime)
    [row] = cli.json("client", "logout-deliveries", "--client-id", client.client_id)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, 503)
    assert row["attempts_log"][0]["status_code"] == 503
    assert row["attempts_log"][0]["next_attempt_at"] == row["next_attempt_at"]
    assert cli.json("client", "logout-deliveries", "--status", "delivered") == []
    table = cli.ok("client", "logout-deliveries").stdout
    assert "pending" in table and "503" in table  # rich wraps the long client_id
    assert json.dumps(row)  # plain JSON for scripts
