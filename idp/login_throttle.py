"""Brute-force protection for the login form.

Failures are counted per account *name* (whether or not such an account exists, so the
answer never reveals existence) and per client address. After a few failures every further
attempt is delayed, growing exponentially; past a limit the name or address is locked for a
while. Delays are awaited asynchronously by the caller, so they never hold a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.settings import Settings
from idp.models import LoginThrottle


@dataclass(frozen=True)
class ThrottleState:
    locked: bool
    delay_seconds: float
    # Any counter row exists: only then is there something to clear after a success.
    has_failures: bool = False


def keys_for(username: str, client_address: str | None) -> list[str]:
    keys = [f"name:{username.strip().lower()[:150]}"]
    if client_address:
        keys.append(f"addr:{client_address}")
    return keys


def _current_rows(session: Session, keys: list[str]) -> list[LoginThrottle]:
    return list(session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys))))


def assess(*, session: Session, clock: Clock, settings: Settings, keys: list[str]) -> ThrottleState:
    now = clock.now()
    window = timedelta(seconds=settings.login_failure_window)
    failures = 0
    rows = _current_rows(session, keys)
    for row in rows:
        if row.locked_until is not None and row.locked_until > now:
            return ThrottleState(locked=True, delay_seconds=0.0, has_failures=True)
        if now - row.window_started_at < window:
            failures = max(failures, row.failures)
    excess = failures - settings.login_slowdown_after
    if excess < 0:
        return ThrottleState(locked=False, delay_seconds=0.0, has_failures=bool(rows))
    return ThrottleState(
        locked=False,
        delay_seconds=min(settings.login_max_delay, 0.25 * 2**excess),
        has_failures=True,
    )


def record_failure(*, session: Session, clock: Clock, settings: Settings, keys: list[str]) -> bool:
    """Count one failure under every key; returns True if this failure locked one of them."""
    now = clock.now()
    window = timedelta(seconds=settings.login_failure_window)
    existing = {row.key: row for row in _current_rows(session, keys)}
    newly_locked = False
    for key in keys:
        row = existing.get(key)
        if row is None:
            row = _insert_or_load(session, key, now)
        if now - row.window_started_at >= window or (
            row.locked_until is not None and row.locked_until <= now
        ):
            row.failures, row.window_started_at, row.locked_until = 0, now, None
        row.failures += 1
        if row.failures >= settings.login_lock_after and row.locked_until is None:
            row.locked_until = now + timedelta(seconds=settings.login_lock_seconds)
            newly_locked = True
    session.flush()
    return newly_locked


def record_audited_failure(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    keys: list[str],
    actor: str,
    action: str,
    target: str,
    client_address: str | None,
) -> None:
    """Count one failed attempt (password, activation code, second factor) and audit it in
    the same transaction, noting whether it locked the account name or the address."""
    locked_now = record_failure(session=session, clock=clock, settings=settings, keys=keys)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action=action,
        target=target,
        client_address=client_address,
        details={"locked": locked_now},
    )


def _insert_or_load(session: Session, key: str, now: datetime) -> LoginThrottle:
    """Two failed attempts at once for a new name must not collide on the primary key."""
    try:
        with session.begin_nested():
            row = LoginThrottle(key=key, failures=0, window_started_at=now)
            session.add(row)
        return row
    except IntegrityError:
        loaded = session.get(LoginThrottle, key, populate_existing=True)
        assert loaded is not None
        return loaded


def clear(*, session: Session, key: str) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
