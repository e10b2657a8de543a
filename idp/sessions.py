"""Browser SSO sessions and pending authorization interactions (server-side, in the database).

All state lives in the database so any worker on any host can serve the next request.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from core.clock import Clock
from core.opaque_tokens import digest, new_opaque_token
from core.settings import Settings
from idp.models import Account, BrowserSession, Interaction

SESSION_TABLE = cast(Table, BrowserSession.__table__)
# Built once: building the INSERT per login cost more than executing it (see idp.token_store).
_INSERT_SESSION = insert(SESSION_TABLE).returning(SESSION_TABLE.c.id)
_SESSION_BY_DIGEST = select(BrowserSession).where(BrowserSession.id_digest == bindparam("digest"))
INTERACTION_TABLE = cast(Table, Interaction.__table__)
_INSERT_INTERACTION = insert(INTERACTION_TABLE)
_INTERACTION_BY_DIGEST = select(Interaction).where(Interaction.handle_digest == bindparam("digest"))

# Writing last_seen_at on every request would turn every page view into a write.
LAST_SEEN_GRANULARITY = timedelta(seconds=60)


def create(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    account: Account,
    amr: list[str],
    client_address: str | None,
    user_agent: str | None,
) -> tuple[BrowserSession, str]:
    """Start a new session (a fresh id at every login: no session fixation)."""
    now = clock.now()
    cookie_value = new_opaque_token()
    row: dict[str, Any] = {
        "id_digest": digest(cookie_value),
        "sid": secrets.token_urlsafe(24),
        "account_id": account.id,
        "auth_time": now,
        "amr": amr,
        "created_at": now,
        "last_seen_at": now,
        "expires_at": now + timedelta(seconds=settings.session_ttl),
        "ended_at": None,
        "client_address": client_address,
        "user_agent": (user_agent or "")[:300] or None,
    }
    # A plain INSERT (it runs on every login): the ORM's unit of work would cost more than the
    # statement. The object returned is not in the session; it only carries the new row.
    new_id = session.execute(_INSERT_SESSION, row).scalar_one()
    browser_session = BrowserSession(id=new_id, **row)
    browser_session.account = account
    return browser_session, cookie_value


def find_active(
    *, session: Session, clock: Clock, settings: Settings, cookie_value: str | None
) -> BrowserSession | None:
    if not cookie_value or len(cookie_value) > 100:
        return None
    browser_session = session.scalar(_SESSION_BY_DIGEST, {"digest": digest(cookie_value)})
    now = clock.now()
    if browser_session is None or not is_alive(browser_session, now=now, settings=settings):
        return None
    if now - browser_session.last_seen_at >= LAST_SEEN_GRANULARITY:
        browser_session.last_seen_at = now
    return browser_session


def is_alive(browser_session: BrowserSession, *, now: datetime, settings: Settings) -> bool:
    """Not ended, within its absolute and idle lifetimes, its official still active."""
    idle_limit = browser_session.last_seen_at + timedelta(seconds=settings.session_idle_ttl)
    return (
        browser_session.ended_at is None
        and now < browser_session.expires_at
        and now < idle_limit
        and browser_session.account.is_active
    )


def end(*, session: Session, clock: Clock, browser_session: BrowserSession) -> None:
    if browser_session.ended_at is None:
        browser_session.ended_at = clock.now()


def end_all_for_account(*, session: Session, clock: Clock, account: Account) -> int:
    result = session.execute(
        update(BrowserSession)
        .where(BrowserSession.account_id == account.id, BrowserSession.ended_at.is_(None))
        .values(ended_at=clock.now())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def last_sign_in(session: Session, account: Account) -> datetime | None:
    """When the account last signed in: the newest session's authentication time."""
    return session.scalar(
        select(func.max(BrowserSession.auth_time)).where(BrowserSession.account_id == account.id)
    )


def find_by_sid(session: Session, sid: str) -> BrowserSession | None:
    return session.scalar(select(BrowserSession).where(BrowserSession.sid == sid))


def start_interaction(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    client_id: str,
    params: dict[str, Any],
    authenticated_session_id: int | None = None,
) -> str:
    """Park a validated authorization request while the official logs in; returns its handle."""
    handle = new_opaque_token()
    now = clock.now()
    # A plain INSERT: every sign-in starts one, and the ORM's unit of work cost more.
    session.execute(
        _INSERT_INTERACTION,
        {
            "handle_digest": digest(handle),
            "client_id": client_id,
            "params": params,
            "created_at": now,
            "expires_at": now + timedelta(seconds=settings.interaction_ttl),
            "authenticated_session_id": authenticated_session_id,
            "consented_at": None,
            "completed_at": None,
            "mfa_account_id": None,
        },
    )
    return handle


def find_interaction(*, session: Session, clock: Clock, handle: str | None) -> Interaction | None:
    if not handle or len(handle) > 100:
        return None
    interaction = session.scalar(_INTERACTION_BY_DIGEST, {"digest": digest(handle)})
    if interaction is None or interaction.completed_at is not None:
        return None
    if clock.now() >= interaction.expires_at:
        return None
    return interaction
