"""Account lifecycle events: the one interface through which other parts learn that an
official was disabled, deleted or moved to another unit.

Events are written to an outbox table in the same transaction as the change, so there is
never an event without its change or a change without its event. Consumers (the CA module,
logout fan-out to shared apps) read them in order with a cursor — the id of the last event
they handled — so a consumer that was down catches up instead of missing events. The CA module
does not import this package (DESIGN): it reads the same feed over HTTP like any shared app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import Clock
from idp.models import LifecycleEvent

ACCOUNT_DISABLED = "account.disabled"
ACCOUNT_ENABLED = "account.enabled"
ACCOUNT_DELETED = "account.deleted"
ACCOUNT_MOVED = "account.moved"
KINDS = frozenset({ACCOUNT_DISABLED, ACCOUNT_ENABLED, ACCOUNT_DELETED, ACCOUNT_MOVED})
MAX_BATCH = 1000


@dataclass(frozen=True)
class PublishedEvent:
    id: int
    kind: str
    account_subject: str
    at: datetime
    payload: Mapping[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "sub": self.account_subject,
            "at": self.at.isoformat(),
            "payload": dict(self.payload),
        }


def publish(
    *,
    session: Session,
    clock: Clock,
    kind: str,
    subject: str,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Record an event in the caller's transaction (it becomes visible when that commits)."""
    if kind not in KINDS:
        raise ValueError(f"unknown lifecycle event kind {kind!r}")
    session.add(
        LifecycleEvent(
            kind=kind, account_subject=subject, at=clock.now(), payload=dict(payload or {})
        )
    )


def events_after(session: Session, *, cursor: int, limit: int = 100) -> list[PublishedEvent]:
    """Committed events with an id greater than ``cursor``, oldest first."""
    rows = session.scalars(
        select(LifecycleEvent)
        .where(LifecycleEvent.id > cursor)
        .order_by(LifecycleEvent.id)
        .limit(max(1, min(limit, MAX_BATCH)))
    )
    return [
        PublishedEvent(
            id=r.id, kind=r.kind, account_subject=r.account_subject, at=r.at, payload=r.payload
        )
        for r in rows
    ]
