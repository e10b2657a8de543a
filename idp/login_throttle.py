"""Brute-force protection for the sign-in forms (password, second factor, activation code,
password re-entry on the account pages) that a stranger cannot turn against an official.

Failures are counted in rows of the database, so every worker and host sees the same counts.
Four kinds of counter (:data:`KINDS`):

* ``account_address``: one account name from one client address. Delays grow, then the name is
  stopped *from that address only* for a while;
* ``account``: one account name from devices that never signed in to it, from any address.
  Delays grow, and after at most 100 consecutive failures (NIST SP 800-63B §5.2.2) such devices
  are stopped for a while;
* ``device``: a browser that signed in to this account before carries a sealed device cookie
  (:mod:`idp.device_cookies`; OWASP "Slow Down Online Guessing Attacks with Device Cookies").
  It has a budget of its own and the two counters above do not apply to it, so a stranger's
  failures from elsewhere never stop the official on their own device;
* ``address``: one client address whatever the account. Delays only, never a lock: officials
  share proxy and NAT addresses. This slows down trying one password on many names.

Names are counted whether or not such an account exists, so the answer reveals nothing. The
address is the one computed from trusted proxies only (:mod:`core.web.client_address`), so a
forged X-Forwarded-For names no one else's address. Delays are awaited asynchronously by the
caller (:func:`idp.web.login.run_throttled`), so they never hold a worker thread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.settings import Settings
from idp.models import LoginThrottle

ACCOUNT_ADDRESS, ACCOUNT, DEVICE, ADDRESS = "account_address", "account", "device", "address"
# Password reset e-mails asked for (idp.password_reset): per account name and per address.
RESET_ACCOUNT, RESET_ADDRESS = "reset_account", "reset_address"
KINDS = (ACCOUNT_ADDRESS, ACCOUNT, DEVICE, ADDRESS, RESET_ACCOUNT, RESET_ADDRESS)
# A client address asks for this many times an account's reset e-mails.
RESET_ADDRESS_FACTOR = 10
MAX_NAME_LENGTH = 150
# The first delay, doubled for every further failure up to ``login_max_delay``.
FIRST_DELAY_SECONDS = 0.25


@dataclass(frozen=True)
class ThrottleState:
    locked: bool
    delay_seconds: float
    # Any counter row exists: only then is there something to clear after a success.
    has_failures: bool = False


@dataclass(frozen=True)
class Rule:
    """When a counter of one kind delays and stops attempts."""

    slowdown_after: int
    lock_after: int | None  # None: delays only
    window: timedelta
    lock_for: timedelta


def rule_for(kind: str, settings: Settings) -> Rule:
    if kind == ACCOUNT:
        return Rule(
            slowdown_after=settings.login_account_slowdown_after,
            lock_after=settings.login_account_lock_after,
            window=timedelta(seconds=settings.login_account_failure_window),
            lock_for=timedelta(seconds=settings.login_account_lock_seconds),
        )
    window = timedelta(seconds=settings.login_failure_window)
    if kind in (RESET_ACCOUNT, RESET_ADDRESS):
        limit = settings.password_reset_requests * (
            RESET_ADDRESS_FACTOR if kind == RESET_ADDRESS else 1
        )
        return Rule(slowdown_after=limit, lock_after=limit, window=window, lock_for=window)
    if kind == ADDRESS:
        return Rule(settings.login_address_slowdown_after, None, window, timedelta(0))
    return Rule(
        slowdown_after=settings.login_slowdown_after,
        lock_after=settings.login_lock_after,
        window=window,
        lock_for=timedelta(seconds=settings.login_lock_seconds),
    )


@dataclass(frozen=True)
class Counter:
    key: str
    kind: str
    account_name: str | None
    client_address: str | None


def _counter(kind: str, *parts: str, name: str | None, address: str | None) -> Counter:
    # A digest keeps the key short whatever the name and address; both stay readable beside it.
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()
    return Counter(f"{kind}:{digest}", kind, name, address)


def normalised_name(username: str) -> str:
    return username.strip().lower()[:MAX_NAME_LENGTH]


@dataclass(frozen=True)
class Attempt:
    """Who is trying: the account name typed, the client address, and the device id of this
    account's device cookie when the browser carries a valid one. With no name (a passkey
    sign-in whose credential names no account), only the address is counted."""

    username: str
    client_address: str | None
    device: str | None = None

    def counters(self) -> list[Counter]:
        name, address = normalised_name(self.username), self.client_address
        if self.device is not None:
            return [_counter(DEVICE, name, self.device, name=name, address=address)]
        counters = (
            [
                _counter(ACCOUNT_ADDRESS, name, address or "", name=name, address=address),
                _counter(ACCOUNT, name, name=name, address=None),
            ]
            if name
            else []
        )
        if address:
            counters.append(_counter(ADDRESS, address, name=None, address=address))
        return counters


# Read at every sign-in: built once (issue 15: building it per call cost more than running it).
_ROWS_OF_KEYS = select(LoginThrottle).where(
    LoginThrottle.key.in_(bindparam("keys", expanding=True))
)


def _rows(session: Session, counters: list[Counter]) -> list[LoginThrottle]:
    return list(session.scalars(_ROWS_OF_KEYS, {"keys": [c.key for c in counters]}))


def _counting(row: LoginThrottle, rule: Rule, now: datetime) -> int:
    """The row's failures that still count: none once its window or its lock has passed."""
    if row.locked_until is not None and row.locked_until <= now:
        return 0
    return row.failures if now - row.window_started_at < rule.window else 0


def assess(
    *, session: Session, clock: Clock, settings: Settings, attempt: Attempt
) -> ThrottleState:
    """Whether ``attempt`` is stopped, or how long it waits first (the longest delay of its
    counters: 0.25 s after ``slowdown_after`` failures, doubling up to ``login_max_delay``)."""
    now = clock.now()
    rows = _rows(session, attempt.counters())
    delay = 0.0
    for row in rows:
        if row.locked_until is not None and row.locked_until > now:
            return ThrottleState(locked=True, delay_seconds=0.0, has_failures=True)
        rule = rule_for(row.kind, settings)
        excess = _counting(row, rule, now) - rule.slowdown_after
        if excess >= 0:
            delay = max(delay, min(settings.login_max_delay, FIRST_DELAY_SECONDS * 2**excess))
    return ThrottleState(locked=False, delay_seconds=delay, has_failures=bool(rows))


def record_failure(*, session: Session, clock: Clock, settings: Settings, attempt: Attempt) -> bool:
    """Count one failure on every counter of ``attempt``; True if this failure stopped one."""
    return _count(session=session, now=clock.now(), settings=settings, counters=attempt.counters())


def _count(*, session: Session, now: datetime, settings: Settings, counters: list[Counter]) -> bool:
    existing = {row.key: row for row in _rows(session, counters)}
    newly_locked = False
    for counter in counters:
        rule = rule_for(counter.kind, settings)
        row = existing.get(counter.key) or _insert_or_load(session, counter, now)
        if _counting(row, rule, now) == 0:
            row.failures, row.window_started_at, row.locked_until = 0, now, None
        row.failures += 1
        row.last_failure_at = now
        locks = rule.lock_after is not None and row.failures >= rule.lock_after
        if locks and row.locked_until is None:
            row.locked_until = now + rule.lock_for
            newly_locked = True
    session.flush()
    return newly_locked


def record_audited_failure(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    attempt: Attempt,
    actor: str,
    action: str,
    target: str,
) -> None:
    """Count one failed attempt (password, activation code, second factor) and audit it in
    the same transaction, noting whether it stopped the name from this address or device."""
    locked_now = record_failure(session=session, clock=clock, settings=settings, attempt=attempt)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action=action,
        target=target,
        client_address=attempt.client_address,
        details={"locked": locked_now, "known_device": attempt.device is not None},
    )


def _insert_or_load(session: Session, counter: Counter, now: datetime) -> LoginThrottle:
    """Two failed attempts at once for a new counter must not collide on the primary key."""
    try:
        with session.begin_nested():
            row = LoginThrottle(
                key=counter.key,
                kind=counter.kind,
                account_name=counter.account_name,
                client_address=counter.client_address,
                failures=0,
                window_started_at=now,
            )
            session.add(row)
        return row
    except IntegrityError:
        loaded = session.get(LoginThrottle, counter.key, populate_existing=True)
        assert loaded is not None
        return loaded


def clear_after_success(*, session: Session, attempt: Attempt) -> None:
    """A success ends the run of consecutive failures of this name (from this address, this
    device, and from unknown devices); the address's own counter stays (other names)."""
    keys = [c.key for c in attempt.counters() if c.kind != ADDRESS]
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(keys)))


def current(
    *, session: Session, clock: Clock, settings: Settings, account_name: str = "", limit: int = 200
) -> list[LoginThrottle]:
    """Counters that still delay or stop someone (for the admin page), most recent first."""
    now = clock.now()
    longest = max(settings.login_failure_window, settings.login_account_failure_window)
    query = select(LoginThrottle).where(
        or_(
            LoginThrottle.locked_until > now,
            LoginThrottle.window_started_at > now - timedelta(seconds=longest),
        )
    )
    if account_name:
        query = query.where(LoginThrottle.account_name == normalised_name(account_name))
    rows = session.scalars(query.order_by(LoginThrottle.last_failure_at.desc()).limit(limit))
    return [row for row in rows if is_active(row, settings=settings, now=now)]


def is_active(row: LoginThrottle, *, settings: Settings, now: datetime) -> bool:
    if row.locked_until is not None and row.locked_until > now:
        return True
    return _counting(row, rule_for(row.kind, settings), now) > 0


def clear(*, session: Session, key: str) -> LoginThrottle | None:
    """Remove one counter (an administrator's decision, audited by the caller); the row as it
    was, or None if it had already gone."""
    row = session.get(LoginThrottle, key)
    if row is not None:
        session.delete(row)
        session.flush()
    return row


def allow_reset_request(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    account_name: str,
    client_address: str | None,
) -> bool:
    """Count one password reset request for ``account_name`` (whether or not it exists) and
    from ``client_address``; False when either has asked too often within the window."""
    name = normalised_name(account_name)
    counters = [_counter(RESET_ACCOUNT, name, name=name, address=None)]
    if client_address:
        counters.append(_counter(RESET_ADDRESS, client_address, name=None, address=client_address))
    now = clock.now()
    if any(
        row.locked_until is not None and row.locked_until > now for row in _rows(session, counters)
    ):
        return False
    _count(session=session, now=now, settings=settings, counters=counters)
    return True
