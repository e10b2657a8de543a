"""Every time-stamp token recorded and audited before it is handed out, by group commit.

A token is a CA act like any other: its serial, the imprint it vouches for and the client that
asked go into ``ca_tsa_token`` and the hash-chained audit log (CONVENTIONS §6): one audit entry
per committed batch, listing each of its tokens with those three facts. One transaction
per token would serialise every request on the audit chain's head row (one commit each, about a
millisecond on PostgreSQL, more on SQLite), far below the ≥ 1,000 tokens/s the TSA must reach.
So requests that arrive together commit together: the first thread to find no commit running
takes every token queued so far, writes them and their audit entry in one transaction, and
wakes their threads; the others queue meanwhile and form the next batch. A reply leaves only
after its token's commit, so there is never a token without its record; a failed commit fails
every request of its batch (they answer systemFailure and their tokens are never seen).

The serial is the table's primary key, so two tokens with one serial, from any worker or host,
cannot both commit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session, sessionmaker

from ca_admin.models import TimeStampToken
from ca_admin.serials import serial_hex
from core import audit
from core.clock import Clock
from core.db import transaction

TOKEN_AUDIT_ACTION = "ca.timestamp.issued"
TOKEN_AUDIT_ACTOR = "tsa"
# A batch never holds more than this many tokens (one INSERT for their rows, one audit entry).
MAX_BATCH = 500
# Below this many queued tokens a commit first waits GATHER_SECONDS for more: under load a
# batch then holds tens of tokens; alone, a request waits one millisecond more.
GATHER_UP_TO = 32
GATHER_SECONDS = 0.001
# A token queued while another batch commits is looked at again after this long at most.
RETRY_SECONDS = 0.002

_TOKENS: Table = TimeStampToken.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class TokenRecord:
    """What is kept of one token (RFC 3161 §2.4.2 fields a dispute would ask about)."""

    serial: int
    unit_id: int
    unit_name: str
    gen_time: datetime
    policy: str
    hash_algorithm: str
    message_imprint: bytes
    client_address: str | None


@dataclass
class _Waiting:
    record: TokenRecord
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class TimeStampLedger:
    def __init__(self, *, session_factory: sessionmaker[Session], clock: Clock) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._queue: list[_Waiting] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()

    def record(self, token: TokenRecord) -> None:
        """Return once ``token`` is committed with its audit entry; raise what the commit
        raised if it failed (the token must then not be handed out)."""
        waiting = _Waiting(token)
        with self._queue_lock:
            self._queue.append(waiting)
        while not waiting.done.is_set():
            # Waiters sleep on their own event, not on the lock: the commit that takes their
            # token wakes them all at once. One that finds no commit running leads the next.
            if not self._commit_lock.acquire(blocking=False):
                waiting.done.wait(RETRY_SECONDS)
                continue
            try:
                if waiting.done.is_set():
                    break
                if len(self._queue) < GATHER_UP_TO:
                    # A commit costs about the same for 1 token or 100: let the requests being
                    # signed right now join this one (the sleep also yields the GIL to them).
                    time.sleep(GATHER_SECONDS)
                with self._queue_lock:
                    batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                self._commit(batch)
            finally:
                self._commit_lock.release()
        if waiting.error is not None:
            raise waiting.error

    def _commit(self, batch: list[_Waiting]) -> None:
        try:
            with transaction(self._session_factory) as session:
                write(session, self._clock, [waiting.record for waiting in batch])
        except Exception as error:  # every thread of the batch raises it (systemFailure)
            for waiting in batch:
                waiting.error = error
        for waiting in batch:
            waiting.done.set()


def write(session: Session, clock: Clock, records: list[TokenRecord]) -> None:
    """The tokens' rows and their audit entry, in the caller's transaction."""
    if not records:
        return
    session.execute(
        insert(_TOKENS),
        [
            {
                "serial": serial_hex(record.serial),
                "unit_id": record.unit_id,
                "gen_time": record.gen_time,
                "policy": record.policy,
                "hash_algorithm": record.hash_algorithm,
                "message_imprint": record.message_imprint.hex(),
                "client_address": record.client_address,
            }
            for record in records
        ],
    )
    # One audit entry per batch, naming every token: the chain's cost (canonical JSON, hash,
    # row) is paid once per commit instead of once per token.
    by_unit: dict[str, list[TokenRecord]] = {}
    for record in records:
        by_unit.setdefault(record.unit_name, []).append(record)
    for unit_name, tokens in by_unit.items():
        addresses = {token.client_address for token in tokens}
        audit.record(
            session,
            clock=clock,
            actor=TOKEN_AUDIT_ACTOR,
            action=TOKEN_AUDIT_ACTION,
            target=f"tsa:{unit_name}",
            # The column holds one address: the batch's when all its tokens share it.
            client_address=addresses.pop() if len(addresses) == 1 else None,
            details={
                "count": len(tokens),
                "tokens": [
                    {
                        "serial": serial_hex(token.serial),
                        "gen_time": token.gen_time.isoformat(),
                        "policy": token.policy,
                        "hash_algorithm": token.hash_algorithm,
                        "message_imprint": token.message_imprint.hex(),
                        "client_address": token.client_address,
                    }
                    for token in tokens
                ],
            },
        )
