"""OpenID Back-Channel Logout 1.0: logout tokens, the delivery outbox, sending with retries.

The outbox carries every protocol's server-to-server logout notices: OIDC logout tokens (signed
when sent), for CAS services the ``logoutRequest`` of ``idp.cas.single_logout`` (built
when queued, stored form-encoded in ``payload``), for SAML SPs with a SOAP logout endpoint the
LogoutRequest of ``idp.saml.single_logout`` (signed when sent); one worker, one retry
schedule, one log.

When a browser session ends (RP-initiated logout, an account disabled or deleted, "sign out
everywhere"), one delivery row per app to tell is written in the same transaction as the end
of the session (an outbox): there is never an ended session whose apps are not told, nor a
notice about a session that did not end. The delivery worker (``idp.logout.worker``) claims due
rows, POSTs a freshly signed logout token to each app (§2.5) and records the attempt:

* 200 or 204 is delivered (§2.8);
* anything else, a timeout or a network error is retried after ``RETRY_DELAYS``; after
  ``MAX_ATTEMPTS`` attempts the row is failed and the give-up is audited.

Several workers and hosts share the table: a worker claims rows for ``CLAIM_SECONDS``
(``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, a conditional UPDATE on SQLite), so no
two send the same notice; a worker that dies loses its claim when the lease runs out.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core import audit
from core.clock import Clock
from core.db import is_postgresql, transaction
from idp.cas import single_logout as cas_single_logout
from idp.logout.participants import clients_by_session
from idp.models import Account, BrowserSession, Client, LogoutDelivery
from idp.saml import single_logout as saml_single_logout
from keys.errors import KeyRingError
from keys.keyring import KeyRing

if TYPE_CHECKING:
    from idp.runtime import IdpRuntime

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"  # §2.4 recommends explicit typing (RFC 8725 §3.11)
# Short: the token is sent at once; a retry signs a new one.
LOGOUT_TOKEN_TTL = 120
# Seconds to wait after the 1st, 2nd, ... failed attempt; the attempt after the last delay is
# the last one.
RETRY_DELAYS: tuple[int, ...] = (5, 30, 120, 600, 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# Longer than a send can take (SEND_TIMEOUT), so a live worker never loses its claim mid-send.
CLAIM_SECONDS = 60
SEND_TIMEOUT = httpx.Timeout(5.0, connect=3.0)
BATCH_SIZE = 50

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
STATUSES = (PENDING, DELIVERED, FAILED)
OIDC = "oidc"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
FORM_HEADERS = {"Accept": "application/json", "Content-Type": FORM_CONTENT_TYPE}


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def logout_token(
    keyring: KeyRing,
    *,
    issuer: str,
    now: datetime,
    client_id: str,
    alg: str,
    subject: str,
    sid: str | None,
) -> str:
    """§2.4: iss, aud, iat, exp, jti, sub and/or sid, events; never a nonce (§2.4 forbids it,
    so a logout token can never pass for an ID token). Signed like the client's ID tokens,
    with ``typ: logout+jwt``."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client_id,
        "iat": epoch(now),
        "exp": epoch(now) + LOGOUT_TOKEN_TTL,
        "jti": secrets.token_urlsafe(16),
        "sub": subject,
        "events": {LOGOUT_EVENT: {}},
    }
    if sid:
        claims["sid"] = sid
    return keyring.sign_jwt(claims, alg=alg, now=now, typ=LOGOUT_TOKEN_TYPE)


# --- The outbox: written in the transaction that ends the sessions ---------------------------


def enqueue_for_sessions(
    *, session: Session, clock: Clock, browser_sessions: Sequence[BrowserSession], reason: str
) -> int:
    """Queue a notice to every app that took part in ``browser_sessions``, whatever its
    protocol: OIDC apps that registered a back-channel logout URI, CAS services registered for
    single logout; returns how many were queued. Call it in the transaction that ends the
    sessions."""
    now = clock.now()
    by_session = clients_by_session(session, browser_sessions)
    queued: set[tuple[int, str | None]] = set()
    for browser_session in browser_sessions:
        for client in by_session.get(browser_session.id, []):
            if not client.backchannel_logout_uri:
                continue
            # §2.2: the sid goes to the apps that asked for it; the others get sub alone, which
            # ends all of the official's sessions there (so one notice per app is enough).
            sid = browser_session.sid if client.backchannel_logout_session_required else None
            if (client.id, sid) in queued:
                continue
            queued.add((client.id, sid))
            session.add(
                _due_now(
                    now,
                    client_pk=client.id,
                    client_id=client.client_id,
                    uri=client.backchannel_logout_uri,
                    subject=browser_session.account.subject,
                    sid=sid,
                    reason=reason,
                )
            )
    notices = cas_single_logout.notices_for_sessions(
        session, clock=clock, browser_sessions=browser_sessions
    ) + saml_single_logout.notices_for_sessions(session, browser_sessions=browser_sessions)
    for notice in notices:
        session.add(
            _due_now(
                now,
                client_pk=None,
                client_id=notice.participant,
                protocol=notice.protocol,
                payload=notice.payload if notice.payload is not None else urlencode(notice.form),
                uri=notice.uri,
                subject=notice.subject,
                sid=notice.session_index,
                reason=reason,
            )
        )
    return len(queued) + len(notices)


def _due_now(now: datetime, **fields: Any) -> LogoutDelivery:
    return LogoutDelivery(
        status=PENDING, attempts=0, created_at=now, next_attempt_at=now, log=[], **fields
    )


def live_sessions_of(session: Session, clock: Clock, account: Account) -> list[BrowserSession]:
    """Sessions not yet ended and not past their absolute lifetime: the ones apps may still
    hold local sessions for."""
    return list(
        session.scalars(
            select(BrowserSession).where(
                BrowserSession.account_id == account.id,
                BrowserSession.ended_at.is_(None),
                BrowserSession.expires_at > clock.now(),
            )
        )
    )


def enqueue_for_account(*, session: Session, clock: Clock, account: Account, reason: str) -> int:
    """Queue notices for every live session of ``account``; call it before ending them."""
    return enqueue_for_sessions(
        session=session,
        clock=clock,
        browser_sessions=live_sessions_of(session, clock, account),
        reason=reason,
    )


# --- Claiming, sending and recording ----------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    claim_token: str
    uri: str
    client_id: str
    # The form-encoded body: a logout token, or another protocol's notice. None when no token
    # could be signed (no active key of the client's alg): the attempt fails without a request
    # and is retried like any other failure.
    body: str | None
    signing_error: str | None = None
    # A form, except for SAML's SOAP messages.
    headers: Mapping[str, str] = field(default_factory=lambda: dict(FORM_HEADERS))


@dataclass(frozen=True)
class AttemptResult:
    delivered: bool
    status_code: int | None
    error: str | None


@dataclass(frozen=True)
class DeliveryOutcome:
    id: int
    client_id: str
    status: str
    attempts: int


def _due(now: datetime) -> Any:
    return (
        (LogoutDelivery.status == PENDING)
        & (LogoutDelivery.next_attempt_at <= now)
        & or_(LogoutDelivery.claimed_until.is_(None), LogoutDelivery.claimed_until <= now)
    )


def claim_due(
    *, session: Session, clock: Clock, keyring: KeyRing, issuer: str, limit: int = BATCH_SIZE
) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries for this worker and sign their logout tokens.

    Commit before sending: the claim must be visible to the other workers while this one
    waits on the network.
    """
    now = clock.now()
    claim_token = secrets.token_hex(16)
    lease = now + timedelta(seconds=CLAIM_SECONDS)
    order = (LogoutDelivery.next_attempt_at, LogoutDelivery.id)
    rows: list[LogoutDelivery]
    if is_postgresql(session):
        rows = list(
            session.scalars(
                select(LogoutDelivery)
                .where(_due(now))
                .order_by(*order)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for row in rows:
            row.claimed_until = lease
            row.claim_token = claim_token
        session.flush()
    else:
        # SQLite has no row locks: a compare-and-set per row decides which worker wins it.
        candidates = list(
            session.scalars(
                select(LogoutDelivery.id).where(_due(now)).order_by(*order).limit(limit)
            )
        )
        won = [
            row_id
            for row_id in candidates
            if getattr(
                session.execute(
                    update(LogoutDelivery)
                    .where(LogoutDelivery.id == row_id, _due(now))
                    .values(claimed_until=lease, claim_token=claim_token)
                ),
                "rowcount",
                0,
            )
        ]
        rows = (
            list(session.scalars(select(LogoutDelivery).where(LogoutDelivery.id.in_(won))))
            if won
            else []
        )
    if not rows:
        return []
    algs: dict[int, str] = {
        client_pk: alg
        for client_pk, alg in session.execute(
            select(Client.id, Client.id_token_signed_response_alg).where(
                Client.id.in_({row.client_pk for row in rows if row.client_pk is not None})
            )
        )
    }
    claimed = []
    for row in rows:
        body, error, headers = row.payload, None, FORM_HEADERS
        if row.protocol == saml_single_logout.PROTOCOL:
            try:
                body = saml_single_logout.soap_logout_request(
                    row.payload or "{}", keyring=keyring, issuer=issuer, now=now
                )
                headers = saml_single_logout.SOAP_HEADERS
            except KeyRingError as problem:
                body, error = None, f"cannot sign the LogoutRequest: {problem}"[:300]
        if row.protocol == OIDC:
            try:
                token = logout_token(
                    keyring,
                    issuer=issuer,
                    now=now,
                    client_id=row.client_id,
                    alg=algs.get(row.client_pk or 0, "RS256"),
                    subject=row.subject,
                    sid=row.sid,
                )
                body = urlencode({"logout_token": token})
            except KeyRingError as problem:
                error = f"cannot sign the logout token: {problem}"[:300]
        claimed.append(
            ClaimedDelivery(
                id=row.id,
                claim_token=claim_token,
                uri=row.uri,
                client_id=row.client_id,
                body=body,
                signing_error=error,
                headers=headers,
            )
        )
    return claimed


async def send(http: httpx.AsyncClient, delivery: ClaimedDelivery) -> AttemptResult:
    """§2.5: POST ``logout_token`` form-encoded (CAS: ``logoutRequest``; SAML: a SOAP
    envelope); no redirects followed (§2.8 answers 200)."""
    if delivery.body is None:
        return AttemptResult(delivered=False, status_code=None, error=delivery.signing_error)
    try:
        response = await http.post(
            delivery.uri,
            content=delivery.body,
            headers=dict(delivery.headers),
            timeout=SEND_TIMEOUT,
            follow_redirects=False,
        )
    except httpx.HTTPError as error:
        return AttemptResult(
            delivered=False, status_code=None, error=f"{type(error).__name__}: {error}"[:300]
        )
    if response.status_code in (200, 204):
        return AttemptResult(delivered=True, status_code=response.status_code, error=None)
    # §2.8: a refusing RP answers 400 with an error body; keep a little of it for the admins.
    snippet = " ".join(response.text[:200].split())
    return AttemptResult(
        delivered=False,
        status_code=response.status_code,
        error=(f"HTTP {response.status_code}: {snippet}" if snippet else None),
    )


def record_attempt(
    *, session: Session, clock: Clock, delivery: ClaimedDelivery, result: AttemptResult
) -> DeliveryOutcome | None:
    """Write one attempt into the delivery log. Returns None when this worker's claim was
    lost (its lease ran out and another worker took the row over): that worker records."""
    row = session.get(LogoutDelivery, delivery.id)
    if row is None or row.claim_token != delivery.claim_token or row.status != PENDING:
        return None
    now = clock.now()
    row.attempts += 1
    row.last_attempt_at = now
    row.last_status_code = result.status_code
    row.last_error = result.error
    row.claimed_until = None
    row.claim_token = None
    if result.delivered:
        # Nothing audited for a success: the row is the record, and an audit entry per app per
        # logout would bury the entries that matter.
        row.status, row.next_attempt_at, row.finished_at = DELIVERED, None, now
    elif row.attempts >= MAX_ATTEMPTS:
        row.status, row.next_attempt_at, row.finished_at = FAILED, None, now
        audit.record(
            session,
            clock=clock,
            actor="system",
            action="logout.delivery_failed",
            target=f"client:{row.client_id}",
            details={
                "delivery": row.id,
                "sid": row.sid,
                "reason": row.reason,
                "attempts": row.attempts,
                "last_status_code": row.last_status_code,
                "last_error": row.last_error,
            },
        )
    else:
        row.next_attempt_at = now + timedelta(seconds=RETRY_DELAYS[row.attempts - 1])
    # A new list, not an in-place append: the JSON column only notices reassignment.
    row.log = [
        *row.log,
        {
            "at": now.isoformat(),
            "status_code": result.status_code,
            "error": result.error,
            "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        },
    ]
    return DeliveryOutcome(
        id=row.id, client_id=row.client_id, status=row.status, attempts=row.attempts
    )


async def deliver_due(
    runtime: IdpRuntime, http: httpx.AsyncClient, *, limit: int = BATCH_SIZE
) -> list[DeliveryOutcome]:
    """One round of the worker: claim what is due, send it all concurrently, record.

    Tests call this directly with a fixed clock instead of waiting for the worker.
    """

    def claim() -> list[ClaimedDelivery]:
        with transaction(runtime.session_factory) as session:
            return claim_due(
                session=session,
                clock=runtime.clock,
                keyring=runtime.keyring,
                issuer=runtime.settings.issuer,
                limit=limit,
            )

    claimed = await run_in_threadpool(claim)
    if not claimed:
        return []
    results = await asyncio.gather(*(send(http, delivery) for delivery in claimed))

    def record() -> list[DeliveryOutcome]:
        with transaction(runtime.session_factory) as session:
            outcomes = [
                record_attempt(
                    session=session, clock=runtime.clock, delivery=delivery, result=result
                )
                for delivery, result in zip(claimed, results, strict=True)
            ]
        return [outcome for outcome in outcomes if outcome is not None]

    return await run_in_threadpool(record)


# --- The delivery log, for the CLI and the admin pages ----------------------------------------


@dataclass(frozen=True)
class DeliveryView:
    id: int
    client_id: str
    uri: str
    subject: str
    sid: str | None
    reason: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    finished_at: datetime | None
    log: tuple[dict[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "id": self.id,
            "client_id": self.client_id,
            "uri": self.uri,
            "sub": self.subject,
            "sid": self.sid,
            "reason": self.reason,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": iso(self.created_at),
            "next_attempt_at": iso(self.next_attempt_at),
            "last_attempt_at": iso(self.last_attempt_at),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "finished_at": iso(self.finished_at),
            "attempts_log": [dict(entry) for entry in self.log],
        }


def list_deliveries(
    session: Session,
    *,
    client_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[DeliveryView]:
    """The delivery log, newest first: every attempt's time, status code or error and the
    next attempt. For the CLI (``client logout-deliveries``) and the admin pages."""
    query = select(LogoutDelivery).order_by(LogoutDelivery.id.desc()).limit(max(1, limit))
    if client_id is not None:
        query = query.where(LogoutDelivery.client_id == client_id)
    if status is not None:
        query = query.where(LogoutDelivery.status == status)
    return [
        DeliveryView(
            id=r.id,
            client_id=r.client_id,
            uri=r.uri,
            subject=r.subject,
            sid=r.sid,
            reason=r.reason,
            status=r.status,
            attempts=r.attempts,
            created_at=r.created_at,
            next_attempt_at=r.next_attempt_at,
            last_attempt_at=r.last_attempt_at,
            last_status_code=r.last_status_code,
            last_error=r.last_error,
            finished_at=r.finished_at,
            log=tuple(r.log),
        )
        for r in session.scalars(query)
    ]
