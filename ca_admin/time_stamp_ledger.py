"""Every time-stamp token recorded and audited before it is handed out, by group commit.

A token is a CA act like any other: its serial, the imprint it vouches for and the client that
asked go into ``ca_tsa_token`` and the hash-chained audit log (CONVENTIONS §6): one audit entry
per committed batch, listing each of its tokens with those three facts. One transaction
per token would serialise every request on the audit chain's head row (one commit each, about a
millisecond on PostgreSQL, more on SQLite), far below the ≥ 1,000 tokens/s the TSA must reach.
So requests that arrive together commit together: the first thread to find no commit running
takes every token queued so far, writes them and their audit entry in one transaction, and
wakes their threads; the others queue meanwhile and form the next batch. The HTTP endpoint
answers on the event loop (issue 18) and awaits :meth:`TimeStampLedger.record_from_loop`
instead: its tokens join the same queue, and one drain thread commits batch after batch
while the loop keeps answering, so there is no thread per request. A reply leaves only
after its token's commit, so there is never a token without its record; a failed commit fails
every request of its batch (they answer systemFailure and their tokens are never seen).

The serial is the table's primary key, so two tokens with one serial, from any worker or host,
cannot both commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
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
    """A token waiting for its commit, and how its caller learns the outcome: a thread waits
    on ``done``; a coroutine awaits ``future`` (resolved on ``loop``)."""

    record: TokenRecord
    done: threading.Event | None = None
    future: asyncio.Future[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    error: BaseException | None = None


class TimeStampLedger:
    def __init__(self, *, session_factory: sessionmaker[Session], clock: Clock) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._queue: list[_Waiting] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        # A drain (below) is running or scheduled; guarded by _queue_lock.
        self._draining = False

    def record(self, token: TokenRecord) -> None:
        """Return once ``token`` is committed with its audit entry; raise what the commit
        raised if it failed (the token must then not be handed out). For a caller in a
        thread; on an event loop, await :meth:`record_from_loop`."""
        waiting = _Waiting(token, done=threading.Event())
        assert waiting.done is not None
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
                self._commit(self._take_batch())
            finally:
                self._commit_lock.release()
        if waiting.error is not None:
            raise waiting.error

    async def record_from_loop(self, token: TokenRecord) -> None:
        """:meth:`record` for a coroutine, without a thread per token: the token joins the
        queue and one thread (a *drain*, started by whichever request finds none running)
        commits batch after batch until the queue is empty. The tokens that arrive while a
        batch commits form the next one, so under load a batch holds every request the event
        loop answered meanwhile, and no request waits for a gathering delay."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(token, future=loop.create_future(), loop=loop)
        assert waiting.future is not None
        with self._queue_lock:
            self._queue.append(waiting)
            start_drain = not self._draining
            self._draining = True
        if start_drain:
            try:
                loop.run_in_executor(None, self._drain)
            except BaseException:
                with self._queue_lock:
                    self._draining = False
                raise
        await waiting.future

    def _take_batch(self) -> list[_Waiting]:
        with self._queue_lock:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        return batch

    def _drain(self) -> None:
        """Commit queued tokens until none is left (in a thread; see record_from_loop)."""
        batch: list[_Waiting] = []
        try:
            while True:
                with self._commit_lock:
                    with self._queue_lock:
                        if not self._queue:
                            # Under the queue lock: a token queued after this check sees no
                            # drain running and starts one.
                            self._draining = False
                            return
                        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                    self._commit(batch)
                    batch = []
        except BaseException as error:
            # Not a failed commit (_commit reports those): fail what was taken, and let the
            # next token start a drain again rather than wait for this one forever.
            _report(batch, error)
            with self._queue_lock:
                self._draining = False
            raise

    def _commit(self, batch: list[_Waiting]) -> None:
        error: BaseException | None = None
        try:
            with transaction(self._session_factory) as session:
                write(session, self._clock, [waiting.record for waiting in batch])
        except Exception as failed:  # every request of the batch answers systemFailure
            error = failed
        _report(batch, error)


def _report(batch: list[_Waiting], error: BaseException | None) -> None:
    """Tell each waiter of ``batch`` that its commit is over: threads by their event, each
    event loop by one callback for all its waiters (one wake-up of the loop per batch)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiting in batch:
        waiting.error = error
        if waiting.done is not None:
            waiting.done.set()
        elif waiting.loop is not None and waiting.future is not None:
            by_loop.setdefault(waiting.loop, []).append(waiting.future)
    for loop, futures in by_loop.items():
        # A closed loop raises RuntimeError: nobody is waiting for these answers any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, futures, error)


def _resolve(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the request was cancelled (its client went away)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


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
