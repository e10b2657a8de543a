"""The bridge from the IdP's account lifecycle outbox (idp.lifecycle) to the CA
(ca_admin.lifecycle): disabled, deleted or moved officials lose their certificates.

Each batch of events is handled and the CA's cursor (``ca_lifecycle_cursor``) advanced in ONE
transaction: either the certificates changed and the cursor moved past the events, or neither
did, so every event takes effect exactly once however often the feed runs or crashes. The
cursor row is locked (``FOR UPDATE``) while a batch runs: several workers and hosts all run
the feed, and they take turns instead of handling the same events twice.

Outbox gaps: ids come from a sequence, and on PostgreSQL a transaction holding id 10 may commit
after one holding id 11. Reading past 10 then would skip it forever, so the feed stops at a
gap and goes past it only once the event after it is :data:`GAP_PATIENCE` old (by then the
missing id belongs to a rolled-back transaction, not a slow one).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_admin import lifecycle as ca_lifecycle
from ca_admin import revocation
from ca_admin.models import IssuedCertificate, LifecycleCursor
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from core.db import transaction
from idp import lifecycle

log = logging.getLogger("commune_sso.ca_lifecycle_feed")

CURSOR_NAME = "idp-accounts"
BATCH_SIZE = 100
GAP_PATIENCE = timedelta(seconds=60)
DEFAULT_INTERVAL = 2.0


@dataclass
class FeedResult:
    events: int = 0
    batches: int = 0
    certificates_changed: int = 0
    cursor: int = 0
    changed_serials: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "events": self.events,
            "batches": self.batches,
            "certificates_changed": self.certificates_changed,
            "cursor": self.cursor,
            "changed_serials": [openssl_serial(serial) for serial in self.changed_serials],
        }


def _ensure_cursor(runtime: CaRuntime) -> None:
    with transaction(runtime.session_factory) as session:
        if session.get(LifecycleCursor, CURSOR_NAME) is not None:
            return
        try:
            with session.begin_nested():
                session.add(LifecycleCursor(name=CURSOR_NAME, last_event_id=0))
        except IntegrityError:
            pass  # another worker created it first


def _locked_cursor(session: Session) -> LifecycleCursor:
    cursor = session.get(LifecycleCursor, CURSOR_NAME, with_for_update=True)
    assert cursor is not None  # _ensure_cursor ran
    return cursor


def _contiguous(
    events: list[lifecycle.PublishedEvent], cursor: int, runtime: CaRuntime
) -> list[lifecycle.PublishedEvent]:
    """The events up to the first gap that may still be filled by a slow transaction."""
    kept = []
    expected = cursor + 1
    for event in events:
        if event.id != expected and runtime.clock.now() - event.at < GAP_PATIENCE:
            break
        kept.append(event)
        expected = event.id + 1
    return kept


def run_once(
    *, runtime: CaRuntime, batch_size: int = BATCH_SIZE, max_batches: int | None = None
) -> FeedResult:
    """Handle every committed event not handled yet, one transaction per batch."""
    _ensure_cursor(runtime)
    result = FeedResult()
    while max_batches is None or result.batches < max_batches:
        with transaction(runtime.session_factory) as session:
            cursor = _locked_cursor(session)
            result.cursor = cursor.last_event_id
            events = _contiguous(
                lifecycle.events_after(session, cursor=cursor.last_event_id, limit=batch_size),
                cursor.last_event_id,
                runtime,
            )
            if not events:
                return result
            changed_certificates: list[IssuedCertificate] = []
            for event in events:
                changed = ca_lifecycle.handle_account_event(
                    session=session,
                    runtime=runtime,
                    kind=event.kind,
                    subject_ref=event.account_subject,
                    payload=event.payload,
                    event_id=event.id,
                    republish=False,
                )
                changed_certificates += changed
                result.certificates_changed += len(changed)
                result.changed_serials += [c.serial for c in changed]
            # One CRL per issuer per batch, in the batch's transaction (signing a 67k-entry CRL
            # per affected official would cost a second each).
            revocation.publish_crls(session, runtime, ca_lifecycle.ACTOR, changed_certificates)
            cursor.last_event_id = events[-1].id
            result.cursor = cursor.last_event_id
            result.events += len(events)
            result.batches += 1
    return result


async def run_periodically(*, runtime: CaRuntime, interval: float = DEFAULT_INTERVAL) -> None:
    """Run the feed every ``interval`` seconds until cancelled; quiet on success.

    The work runs in a thread (CRL signing may wait on an HSM). A failure is logged and the
    same events are tried again next time: nothing was committed for them.
    """
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(run_once, runtime=runtime)
        except Exception:
            log.exception("certificate lifecycle feed failed; retrying in %s s", interval)


def start(runtime: CaRuntime, interval: float = DEFAULT_INTERVAL) -> asyncio.Task[None]:
    return asyncio.create_task(
        run_periodically(runtime=runtime, interval=interval), name="ca-lifecycle-feed"
    )
