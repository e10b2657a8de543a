"""Every time-stamp token recorded and audited before it is handed out, by group commit.

A token is a CA act like any other: its serial, the imprint it vouches for and the client that
asked go into ``ca_tsa_token`` and the hash-chained audit log (CONVENTIONS §6). One transaction
per token would serialise every request on the audit chain's head row (one commit each, about a
millisecond on PostgreSQL, more on SQLite), far below the ≥ 1,000 tokens/s the TSA must reach.
So requests that arrive together commit together: the first thread to find no commit running
takes every token queued so far, writes them and their audit entries in one transaction, and
wakes their threads; the others queue meanwhile and form the next batch. A reply leaves only
after its token's commit, so there is never a token without its record; a failed commit fails
every request of its batch (they answer systemFailure and their tokens are never seen).

The serial is the table's primary key, so two tokens with one serial, from any worker or host,
cannot both commit.
"""

from __future__ import annotations

import threading
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
# A batch never holds more than this many tokens (one INSERT each for tokens and audit rows).
MAX_BATCH = 500

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
            with self._commit_lock:
                if waiting.done.is_set():  # a commit that ran while we waited took it
                    break
                with self._queue_lock:
                    batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                self._commit(batch)
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
    """The tokens' rows and one audit entry per token, in the caller's transaction."""
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
    for record in records:
        audit.record(
            session,
            clock=clock,
            actor=TOKEN_AUDIT_ACTOR,
            action=TOKEN_AUDIT_ACTION,
            target=f"tsa:{record.unit_name}",
            client_address=record.client_address,
            details={
                "serial": serial_hex(record.serial),
                "gen_time": record.gen_time.isoformat(),
                "policy": record.policy,
                "hash_algorithm": record.hash_algorithm,
                "message_imprint": record.message_imprint.hex(),
            },
        )
