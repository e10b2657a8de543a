"""Append-only, hash-chained audit log shared by the whole service.

The chain
---------
Every entry carries ``prev_hash``, the ``entry_hash`` of the entry before it (``GENESIS_HASH``
for seq 1), and its own ``entry_hash``: the SHA-256 (hex) of the canonical JSON of ::

    {"seq", "at", "actor", "action", "target", "client_address", "details", "prev_hash"}

(keys sorted, ``separators=(",", ":")``, ``ensure_ascii=False``, UTF-8; ``at`` is ISO 8601 UTC
with microseconds; ``details`` is the parsed JSON object). Changing any field of an entry breaks
its own hash; recomputing that hash breaks the link the next entry holds; deleting, inserting or
moving entries breaks links and seqs. The single ``audit_chain_head`` row holds the last seq and
hash, so entries cut off the end are noticed too.

What it cannot catch: someone with write access who rewrites every entry from the tampered one
to the end *and* the head. Copy the head hash somewhere else now and then to anchor it.

Writing
-------
:func:`record` only queues the entry in ``session.info``. The ``before_commit`` listener that
:func:`install` puts on the session factory flushes the caller's own changes, locks the head row,
chains and inserts the queued entries and moves the head, all inside the caller's transaction
(CONVENTIONS §6: no change without its record, no record without its change). The chain lock is
therefore the last lock a transaction takes and is held only for the commit itself: no lock
while the request does slow work, and no lock-order deadlock with the request's own rows.
On PostgreSQL a transaction with one entry (most of them) does all of it in one statement that
computes the hash in the database (``_APPEND_ONE``). The head also keeps the last entry's
``prev_hash`` (``last_prev_hash``) for that statement to read back.
A rollback (of the transaction, or of the SAVEPOINT an entry was recorded in) drops the entries
queued inside it.

Verifying
---------
:func:`verify` streams the table in seq order and names each problem by seq: ``edited``,
``deleted``, ``inserted``, ``reordered`` or ``head_mismatch``. For each entry it finds the seq its
hash was computed with (normally its own; after an insertion or deletion that renumbered the
entries, a shifted one) and the entry its ``prev_hash`` points to (normally the previous row; after
a break, one of the last few hundred rows). That is how it resynchronises after a break instead
of reporting every later entry.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    bindparam,
    event,
    exists,
    insert,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, SessionTransaction, mapped_column, sessionmaker
from sqlalchemy.types import TypeEngine

from core.clock import Clock
from core.db import Base, UTCDateTime

__all__ = [
    "GENESIS_HASH",
    "AuditChainError",
    "AuditChainHead",
    "AuditEntry",
    "AuditProblem",
    "AuditVerification",
    "compute_entry_hash",
    "ensure_chain_head",
    "entry_as_dict",
    "install",
    "record",
    "tail",
    "verify",
]

GENESIS_HASH = "0" * 64

_HEAD_ID = 1
_QUEUE_KEY = "commune_sso.audit.queue"
_WRITING_KEY = "commune_sso.audit.writing"

# 64-bit seqs on PostgreSQL: the log is never pruned. On SQLite a plain INTEGER primary key is the
# rowid itself, so rows are stored in seq order.
_SEQ_TYPE: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")

_MAX_LENGTHS = {"actor": 200, "action": 100, "target": 300, "client_address": 64}


class AuditChainError(RuntimeError):
    """The chain cannot be extended safely (for example the head row is gone but entries exist)."""


class AuditEntry(Base):
    """One audit record. Never updated or deleted by the service."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(_SEQ_TYPE, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str | None] = mapped_column(String(300))
    client_address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditChainHead(Base):
    """The single row (id=1) that remembers where the chain ends, and the lock appenders take."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(_SEQ_TYPE)
    last_hash: Mapped[str] = mapped_column(String(64))
    # The last entry's prev_hash: PostgreSQL's one-statement append sets it from the old
    # last_hash and reads it back in RETURNING, which only sees new values.
    last_prev_hash: Mapped[str] = mapped_column(String(64))


# Core views of the tables: the writer and the verifier work on plain rows, not ORM objects.
_LOG = cast(Table, AuditEntry.__table__)
_HEAD = cast(Table, AuditChainHead.__table__)


# --------------------------------------------------------------------------------------------
# Canonical form and hash


def _canonical_json(value: Any) -> str:
    # allow_nan=False: NaN/Infinity are not JSON and would not survive other parsers.
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _format_at(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class _EntryFields(Protocol):
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def target(self) -> str | None: ...
    @property
    def client_address(self) -> str | None: ...
    @property
    def details(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _CanonicalPieces:
    """An entry's canonical JSON as the bytes around the two values the chain supplies.

    Keys sort as action, actor, at, client_address, details, prev_hash, seq, target, so the bytes
    are ``before_prev_hash + <prev_hash as a JSON string> + ,"seq": + <seq> + after_seq``. The
    Python writer and PostgreSQL's one-statement append hash exactly these bytes.
    """

    before_prev_hash: bytes
    after_seq: bytes

    @classmethod
    def of(cls, fields: _EntryFields, *, at: datetime) -> _CanonicalPieces:
        """From an entry, a queued entry or a stored row (``details`` as stored: JSON text).

        Raises ``ValueError`` if ``details`` is not JSON (a damaged row).
        """
        leading = _canonical_json(
            {
                "action": fields.action,
                "actor": fields.actor,
                "at": _format_at(at),
                "client_address": fields.client_address,
                "details": json.loads(fields.details),
            }
        )
        trailing = _canonical_json({"target": fields.target})
        return cls(
            before_prev_hash=(leading[:-1] + ',"prev_hash":').encode(),
            after_seq=("," + trailing[1:]).encode(),
        )


_BEFORE_SEQ = b',"seq":'


class _HashInput:
    """An entry's canonical bytes with the SHA-256 state up to ``seq`` kept, so several seqs can
    be tried cheaply (the verifier looks for shifted seqs after a break)."""

    __slots__ = ("_after", "_before")

    def __init__(self, pieces: _CanonicalPieces, prev_hash: str) -> None:
        self._before = hashlib.sha256(
            pieces.before_prev_hash + _canonical_json(prev_hash).encode() + _BEFORE_SEQ
        )
        self._after = pieces.after_seq

    def hash_for(self, seq: int) -> str:
        digest = self._before.copy()
        digest.update(str(int(seq)).encode())
        digest.update(self._after)
        return digest.hexdigest()


def compute_entry_hash(entry: AuditEntry) -> str:
    """The hash ``entry`` should carry, from its fields (the chain rule in the module docstring)."""
    return _HashInput(_CanonicalPieces.of(entry, at=entry.at), entry.prev_hash).hash_for(entry.seq)


# --------------------------------------------------------------------------------------------
# Writing


@dataclass(frozen=True, slots=True)
class _Queued:
    # The innermost SAVEPOINT the entry was recorded in (None: the outer transaction), so rolling
    # back a SAVEPOINT drops exactly the entries recorded inside it.
    owner: SessionTransaction | None
    at: datetime
    actor: str
    action: str
    target: str | None
    client_address: str | None
    details: str

    def stored_fields(self) -> dict[str, Any]:
        """The columns of its row that the entry itself gives (the chain gives seq and hashes)."""
        return {
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "client_address": self.client_address,
            "details": self.details,
        }


def install(session_factory: sessionmaker[Session]) -> None:
    """Make sessions from ``session_factory`` write the entries :func:`record` queues.

    Listeners go on this factory only, never on ``Session`` itself, so two apps in one process
    (tests) do not see each other's hooks. Calling it twice is harmless.
    """
    # Asked of a session rather than with event.contains(): SQLAlchemy files sessionmaker
    # listeners under id(factory), so a new factory at a collected one's address "contains"
    # listeners it does not have, and the entries would silently never be written.
    with session_factory() as probe:
        if _is_installed(probe):
            return
    event.listen(session_factory, "before_commit", _write_queued)
    event.listen(session_factory, "after_rollback", _drop_after_rollback)
    event.listen(session_factory, "after_soft_rollback", _drop_after_soft_rollback)
    event.listen(session_factory, "after_transaction_end", _drop_after_transaction_end)


def _is_installed(session: Session) -> bool:
    return _write_queued in session.dispatch.before_commit


def record(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    client_address: str | None = None,
) -> None:
    """Queue an audit entry; it is chained and inserted when ``session`` commits.

    Bad input (non-JSON details, naive clock, over-long fields) raises here, at the call site,
    rather than failing the commit later. Raises ``RuntimeError`` if :func:`install` was not
    called for the session's factory: the entry would silently never be written.
    """
    if not _is_installed(session):
        raise RuntimeError("core.audit.install() was not called for this session factory")
    if session.info.get(_WRITING_KEY):
        # Recorded from inside the commit (e.g. a flush hook): too late to be chained.
        raise RuntimeError("audit entries cannot be recorded while the session is committing")
    at = clock.now()
    if at.tzinfo is None:
        raise ValueError("the clock returned a naive datetime")
    if not actor or not action:
        raise ValueError("actor and action are required")
    for name, value in (
        ("actor", actor),
        ("action", action),
        ("target", target),
        ("client_address", client_address),
    ):
        if value is not None and len(value) > _MAX_LENGTHS[name]:
            raise ValueError(f"audit {name} longer than {_MAX_LENGTHS[name]} characters")
    if details is not None and not isinstance(details, Mapping):
        raise TypeError("audit details must be a mapping")
    if session.get_transaction() is None:
        # Begin now: a rollback before the session's first query must still drop this entry
        # (rolling back a session that has not begun fires no rollback events).
        session.begin()
    queued = _Queued(
        owner=session.get_nested_transaction(),
        at=at.astimezone(UTC),
        actor=actor,
        action=action,
        target=target,
        client_address=client_address,
        # Canonical now, so what is stored is exactly what is hashed.
        details=_canonical_json(dict(details or {})),
    )
    session.info.setdefault(_QUEUE_KEY, []).append(queued)


def ensure_chain_head(session: Session) -> None:
    """Create the head row (id=1, last_seq=0, ``GENESIS_HASH``) if missing; race-safe.

    The Alembic migration seeds the same row; tests and first use call this. ``ON CONFLICT DO
    NOTHING`` lets two processes race here without either failing.
    """
    values = {
        "id": _HEAD_ID,
        "last_seq": 0,
        "last_hash": GENESIS_HASH,
        "last_prev_hash": GENESIS_HASH,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(
            pg_insert(_HEAD).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    elif dialect == "sqlite":
        session.execute(
            sqlite_insert(_HEAD).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    elif session.get(AuditChainHead, _HEAD_ID) is None:
        session.execute(insert(_HEAD).values(values))


def _write_queued(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        # This is a SAVEPOINT being released, not the real commit: keep the queue for the end.
        return
    queue: list[_Queued] | None = session.info.pop(_QUEUE_KEY, None)
    if not queue:
        return
    session.info[_WRITING_KEY] = True
    # The request's own changes first, so the chain lock is the last lock this transaction takes.
    session.flush()
    # Core statements on the session's connection from here: nothing left for the ORM to do,
    # and its execution layer costs more than these statements while the head is locked.
    connection = session.connection()
    appended_alone = (
        connection.dialect.name == "postgresql"
        and len(queue) == 1
        and _append_in_one_statement(connection, queue[0])
    )
    if appended_alone:
        return
    last_seq, last_hash = _lock_head(session, connection)
    rows = []
    for item in queue:
        last_seq += 1
        entry_hash = _HashInput(_CanonicalPieces.of(item, at=item.at), last_hash).hash_for(last_seq)
        rows.append(
            {
                "seq": last_seq,
                **item.stored_fields(),
                "prev_hash": last_hash,
                "entry_hash": entry_hash,
            }
        )
        last_hash = entry_hash
    connection.execute(insert(_LOG), rows)
    connection.execute(
        update(_HEAD)
        .where(_HEAD.c.id == _HEAD_ID)
        .values(last_seq=last_seq, last_hash=last_hash, last_prev_hash=rows[-1]["prev_hash"])
    )


# PostgreSQL computes the entry's hash itself from the head row it locks and updates, so a
# one-entry transaction appends in a single statement: no round trip to read the head first, and
# the lock that serialises every audited commit is held for this statement and the commit only.
# The bytes hashed are those _HashInput hashes (sha256 is built in since PostgreSQL 11); a head
# hash is hex, so its JSON string is the hash between quotes.
_APPEND_ONE = text(
    """
    WITH advanced AS (
        UPDATE audit_chain_head
        SET last_seq = last_seq + 1,
            last_prev_hash = last_hash,
            last_hash = encode(sha256(
                :before_prev_hash || convert_to('"' || last_hash || '"', 'UTF8')
                || :before_seq || convert_to((last_seq + 1)::text, 'UTF8') || :after_seq
            ), 'hex')
        WHERE id = :head_id
        RETURNING last_seq, last_prev_hash, last_hash
    )
    INSERT INTO audit_log
        (seq, at, actor, action, target, client_address, details, prev_hash, entry_hash)
    SELECT last_seq, :at, :actor, :action, :target, :client_address, :details,
           last_prev_hash, last_hash
    FROM advanced
    RETURNING seq
    """
).bindparams(
    bindparam("at", type_=UTCDateTime()),
    bindparam("before_prev_hash", type_=LargeBinary()),
    bindparam("before_seq", type_=LargeBinary()),
    bindparam("after_seq", type_=LargeBinary()),
)


def _append_in_one_statement(connection: Connection, item: _Queued) -> bool:
    """Append ``item`` on PostgreSQL in one statement; False if the head row is missing."""
    pieces = _CanonicalPieces.of(item, at=item.at)
    appended = connection.execute(
        _APPEND_ONE,
        {
            "head_id": _HEAD_ID,
            "before_prev_hash": pieces.before_prev_hash,
            "before_seq": _BEFORE_SEQ,
            "after_seq": pieces.after_seq,
            **item.stored_fields(),
        },
    ).first()
    return appended is not None


def _lock_head(session: Session, connection: Connection) -> tuple[int, str]:
    """Lock the head row for the rest of the transaction and return (last_seq, last_hash)."""
    read = select(_HEAD.c.last_seq, _HEAD.c.last_hash).where(_HEAD.c.id == _HEAD_ID)
    if connection.dialect.name == "postgresql":
        row = connection.execute(read.with_for_update()).one_or_none()
        if row is None:
            _create_missing_head(session)
            row = connection.execute(read.with_for_update()).one()
        return int(row.last_seq), str(row.last_hash)
    # SQLite locks the whole database for writers. Writing first takes that lock before we read,
    # so two writers never read the same last_seq, and a WAL reader never has to upgrade to a
    # writer (which fails with SQLITE_BUSY_SNAPSHOT instead of waiting).
    touched = connection.execute(
        update(_HEAD).where(_HEAD.c.id == _HEAD_ID).values(last_seq=_HEAD.c.last_seq)
    ).rowcount
    if touched == 0:
        _create_missing_head(session)
    row = connection.execute(read).one()
    return int(row.last_seq), str(row.last_hash)


def _create_missing_head(session: Session) -> None:
    # A fresh head on a non-empty log would restart at seq 1 and hide whatever removed the head.
    if session.execute(select(exists().select_from(_LOG))).scalar():
        raise AuditChainError(
            "the audit chain head row is missing but the audit log has entries; "
            "run the audit verification and restore the head from a backup"
        )
    ensure_chain_head(session)


def _queued_within(item: _Queued, transaction: SessionTransaction) -> bool:
    owner = item.owner
    while owner is not None:
        if owner is transaction:
            return True
        owner = owner.parent
    return False


def _drop_queued(session: Session, transaction: SessionTransaction | None) -> None:
    """Forget entries recorded inside ``transaction``; the outer transaction (or None): all."""
    queue: list[_Queued] | None = session.info.get(_QUEUE_KEY)
    if not queue:
        return
    if transaction is None or transaction.parent is None:
        del session.info[_QUEUE_KEY]
        return
    session.info[_QUEUE_KEY] = [item for item in queue if not _queued_within(item, transaction)]


def _drop_after_rollback(session: Session) -> None:
    # Fired after the database rolled back the innermost SAVEPOINT, or the whole transaction.
    _drop_queued(session, session.get_nested_transaction())


def _drop_after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    _drop_queued(session, previous_transaction)


def _drop_after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # The outer transaction is over (committed, rolled back or closed): nothing may carry over
    # into the next transaction of a reused session.
    if transaction.parent is None:
        session.info.pop(_QUEUE_KEY, None)
        session.info.pop(_WRITING_KEY, None)


# --------------------------------------------------------------------------------------------
# Reading


def tail(
    session: Session, *, limit: int = 20, action_prefix: str | None = None
) -> list[AuditEntry]:
    """The newest ``limit`` entries (optionally whose action starts with ``action_prefix``),
    oldest first so the newest is last, as ``tail -n`` prints."""
    if limit < 1:
        return []
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    if action_prefix:
        stmt = stmt.where(AuditEntry.action.startswith(action_prefix, autoescape=True))
    return list(reversed(session.scalars(stmt).all()))


def entry_as_dict(entry: AuditEntry) -> dict[str, Any]:
    """A JSON-ready dict of ``entry`` for ``--json`` output (details parsed, ``at`` ISO 8601)."""
    try:
        details: Any = json.loads(entry.details)
    except (TypeError, ValueError):
        details = entry.details  # tampered text: show it as it is rather than fail
    return {
        "seq": entry.seq,
        "at": _format_at(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "client_address": entry.client_address,
        "details": details,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
    }


# --------------------------------------------------------------------------------------------
# Verifying

ProblemKind = Literal["edited", "deleted", "inserted", "reordered", "head_mismatch"]

# Rows fetched per round trip (a server-side cursor on PostgreSQL): memory stays flat on 1M rows.
_BATCH_SIZE = 2000
# How far back a broken link may point and still be matched; also bounds memory.
_WINDOW = 256
# How far a renumbered entry's seq is searched for, and how many entries may be searched that way
# (each search is up to 2 * _MAX_SHIFT hashes; the budget keeps a wrecked log quick to verify).
_MAX_SHIFT = 1000
_WIDE_SEARCH_BUDGET = 200
# A longer run of missing seqs is reported as one problem naming its first seq.
_MAX_LISTED_MISSING = 10


@dataclass
class AuditProblem:
    """One problem, named by seq: the entry's stored seq, or for ``deleted`` and a cut tail
    (``head_mismatch``) the first missing seq. ``message`` says what was found, in English."""

    seq: int
    kind: str  # "edited" | "deleted" | "inserted" | "reordered" | "head_mismatch"
    message: str


@dataclass
class AuditVerification:
    """``ok`` when no problem was found; ``checked`` counts the entries read."""

    ok: bool
    checked: int
    problems: list[AuditProblem]


@dataclass(eq=False, slots=True)
class _Row:
    seq: int  # as stored
    prev_hash: str
    entry_hash: str
    orig: int | None  # the seq its hash was computed with; None if no seq matches
    pos: int = 0  # its place in the chain as far as the checker can tell
    finding: _Finding | None = None  # the problem that names this row
    caused: list[_Finding] = field(default_factory=list)  # problems inferred from this row


@dataclass(eq=False, slots=True)
class _Finding:
    seq: int
    kind: ProblemKind
    message: str
    row: _Row | None = None
    missing: int | None = None
    retracted: bool = False


class _ChainChecker:
    """Follows the chain row by row; findings may be revised while their rows are in the window.

    For each row it works out ``orig`` (the seq its hash matches: its own, or a shifted one if
    entries were renumbered) and where its ``prev_hash`` points (the previous row, an earlier row
    still in the window, or nowhere known). Then:

    * no seq matches the hash: the row was **edited** (or forged; revised to *inserted* if a
      later row chains past it);
    * chains to the previous row and takes the next place: fine;
    * chains to an earlier row: the rows skipped over are **inserted**, or **reordered** when
      they belong after this row;
    * chains nowhere known: at the next place, the previous row was **edited** and its hash
      recomputed; places skipped, those seqs were **deleted**; a place reported missing earlier,
      this row is **reordered**.

    The chain head is checked last, as if it were one more row pointing at the last entry; a
    tail cut off the log shows up there as **head_mismatch**.
    """

    def __init__(self) -> None:
        self.checked = 0
        self._findings: list[_Finding] = []
        self._genesis = _Row(seq=0, prev_hash="", entry_hash=GENESIS_HASH, orig=0)
        self._window: deque[_Row] = deque([self._genesis])
        self._by_hash: dict[str, _Row] = {GENESIS_HASH: self._genesis}
        self._prev = self._genesis
        self._high = 0  # the highest chain place taken so far
        self._offset = 0  # stored seq minus original seq, once entries were renumbered
        self._missing: dict[int, _Finding] = {}  # places reported deleted one by one
        self._wide_left = _WIDE_SEARCH_BUDGET
        self._active = False  # did the current row change the findings?
        self._was_active = False  # did the previous row?

    # -- bookkeeping -------------------------------------------------------------------------

    def _report(
        self,
        kind: ProblemKind,
        message: str,
        *,
        row: _Row | None = None,
        seq: int | None = None,
        cause: _Row | None = None,
        missing: int | None = None,
    ) -> _Finding:
        if row is not None and row.finding is not None:
            self._retract(row.finding)
        if seq is None:
            seq = row.seq if row is not None else 0
        finding = _Finding(seq=seq, kind=kind, message=message, row=row, missing=missing)
        if row is not None:
            row.finding = finding
        if cause is not None:
            cause.caused.append(finding)
        self._findings.append(finding)
        self._active = True
        return finding

    def _retract(self, finding: _Finding) -> None:
        finding.retracted = True
        if finding.row is not None and finding.row.finding is finding:
            finding.row.finding = None
        if finding.missing is not None and self._missing.get(finding.missing) is finding:
            del self._missing[finding.missing]
        self._active = True

    @staticmethod
    def _explained(row: _Row) -> bool:
        return row.finding is not None and row.finding.kind in ("inserted", "reordered")

    def _mark_inserted(self, row: _Row, message: str) -> None:
        # Whatever was inferred from a forged row no longer stands.
        for finding in row.caused:
            self._retract(finding)
        self._report("inserted", message, row=row)

    def _mark_reordered(self, row: _Row, message: str) -> None:
        if not self._explained(row):
            self._report("reordered", message, row=row)

    def _take(self, row: _Row, place: int) -> None:
        row.pos = place
        self._high = max(self._high, place)

    def _rows_after(self, anchor: _Row) -> list[_Row]:
        rows: list[_Row] = []
        for row in reversed(self._window):
            if row is anchor:
                break
            rows.append(row)
        rows.reverse()
        return rows

    def _report_missing(self, first: int, last: int, *, cause: _Row) -> None:
        count = last - first + 1
        if count > _MAX_LISTED_MISSING:
            self._report(
                "deleted",
                f"entries {first} to {last} ({count} entries) are missing",
                seq=first,
                cause=cause,
            )
            return
        for place in range(first, last + 1):
            self._missing[place] = self._report(
                "deleted",
                f"entry {place} is missing (entry {cause.seq} chains to an entry not in the log)",
                seq=place,
                cause=cause,
                missing=place,
            )

    # -- per row -----------------------------------------------------------------------------

    def _resolve(self, hashed: _HashInput | None, row: _Row, back: _Row | None) -> int | None:
        if hashed is None:
            return None
        candidates = [self._high + 1, row.seq - self._offset, row.seq]
        if back is not None:
            candidates.append(back.pos + 1)
        candidates.extend(self._missing)
        for candidate in dict.fromkeys(candidates):
            if hashed.hash_for(candidate) == row.entry_hash:
                return candidate
        if self._wide_left > 0:
            # Renumbered by an insertion or deletion not seen yet (e.g. the first row after it).
            self._wide_left -= 1
            for distance in range(1, _MAX_SHIFT + 1):
                for candidate in (row.seq + distance, row.seq - distance):
                    if hashed.hash_for(candidate) == row.entry_hash:
                        return candidate
        return None

    def feed(self, stored: Any) -> None:
        """Check one row of the log (a result row with the ``AuditEntry`` column names)."""
        self.checked += 1
        self._was_active, self._active = self._active, False
        row = _Row(
            seq=int(stored.seq),
            prev_hash=str(stored.prev_hash),
            entry_hash=str(stored.entry_hash),
            orig=None,
        )
        links_prev = row.prev_hash == self._prev.entry_hash
        back = None if links_prev else self._by_hash.get(row.prev_hash)
        row.orig = self._resolve(_hash_input_from_stored(stored), row, back)
        if row.orig is None:
            self._take(row, self._high + 1)
            self._report(
                "edited",
                f"entry {row.seq} does not match its hash: it was changed after it was written",
                row=row,
                cause=row,
            )
        elif links_prev:
            self._on_links_prev(row, row.orig)
        elif back is not None:
            self._on_links_back(row, row.orig, back)
        else:
            self._on_links_unknown(row, row.orig)
        if row.orig is not None and (self._active or self._was_active):
            # Around a break stored seqs may shift for good (renumbering): follow the new shift.
            self._offset = row.seq - row.orig
        if len(self._window) == _WINDOW:
            gone = self._window.popleft()
            if self._by_hash.get(gone.entry_hash) is gone:
                del self._by_hash[gone.entry_hash]
        self._window.append(row)
        self._by_hash[row.entry_hash] = row
        self._prev = row

    def _on_links_prev(self, row: _Row, orig: int) -> None:
        expected = self._high + 1
        if orig == expected:
            self._take(row, orig)
            # A new shift with no break next to it: this one entry's seq was changed.
            if row.seq - orig != self._offset and not self._was_active:
                self._report(
                    "edited",
                    f"entry {row.seq} was written as seq {orig}: its seq was changed",
                    row=row,
                    cause=row,
                )
        elif orig > expected:
            self._report_missing(expected, orig - 1, cause=row)
            self._take(row, orig)
        else:
            self._take(row, expected)
            self._report(
                "edited",
                f"entry {row.seq} was hashed as seq {orig}, a place the chain has already passed",
                row=row,
                cause=row,
            )

    def _on_links_back(self, row: _Row, orig: int, back: _Row) -> None:
        if orig != back.pos + 1:
            self._take(row, self._high + 1)
            self._report(
                "edited",
                f"entry {row.seq} chains to entry {back.seq} but was hashed as seq {orig}",
                row=row,
                cause=row,
            )
            return
        turned_up = self._missing.get(orig)
        if turned_up is not None:
            self._retract(turned_up)
        # Skipped rows that belong after this one were overtaken (reordered, and named if they
        # were renumbered too); any other skipped row is not in the chain at all (inserted).
        later = False
        for other in self._rows_after(back):
            if other.orig is not None and other.orig > orig:
                later = True
                if other.seq != other.orig:
                    self._mark_reordered(
                        other, f"entry {other.seq} was written as seq {other.orig}"
                    )
            elif not self._explained(other):
                self._mark_inserted(
                    other,
                    f"entry {other.seq} is not part of the chain: entry {row.seq} "
                    f"chains directly to entry {back.seq}",
                )
        if later or turned_up is not None:
            self._mark_reordered(row, f"entry {row.seq} was written as seq {orig}")
        self._take(row, orig)

    def _on_links_unknown(self, row: _Row, orig: int) -> None:
        expected = self._high + 1
        prev = self._prev
        if orig == expected:
            if prev is self._genesis:
                self._report(
                    "edited",
                    f"entry {row.seq} is the first entry but does not chain to the genesis hash",
                    row=row,
                    cause=row,
                )
            elif prev.finding is None:
                self._report(
                    "edited",
                    f"entry {prev.seq} is not the entry that entry {row.seq} chains to: "
                    "it was changed and its hash recomputed",
                    row=prev,
                    cause=row,
                )
            self._take(row, orig)
        elif orig > expected:
            self._report_missing(expected, orig - 1, cause=row)
            self._take(row, orig)
        elif orig in self._missing:
            # The place reported missing turns up late: this entry was moved down the log.
            self._retract(self._missing[orig])
            for other in self._window:
                if other.orig is not None and other.orig > orig and other.seq != other.orig:
                    self._mark_reordered(
                        other, f"entry {other.seq} was written as seq {other.orig}"
                    )
            self._mark_reordered(row, f"entry {row.seq} was written as seq {orig}")
            self._take(row, orig)
        else:
            self._take(row, expected)
            self._report(
                "inserted",
                f"entry {row.seq} was hashed as seq {orig}, a place the chain has already passed",
                row=row,
                cause=row,
            )

    # -- the head ----------------------------------------------------------------------------

    def finish(self, head_seq: int | None, head_hash: str | None) -> None:
        """Check the chain head against the last row, as if it were one more link."""
        self._was_active, self._active = self._active, False
        last = self._prev
        if head_seq is None or head_hash is None:
            if self.checked:
                self._report("head_mismatch", "the audit chain head row is missing", seq=last.seq)
            return
        if head_hash == last.entry_hash:
            if head_seq not in (self._high, last.seq, last.pos):
                self._report(
                    "head_mismatch",
                    f"the chain head says the log ends at seq {head_seq}, "
                    f"but it ends at seq {last.seq}",
                    seq=last.seq,
                )
            return
        back = self._by_hash.get(head_hash)
        if back is not None:
            # The head was last moved when `back` was the newest entry.
            for other in self._rows_after(back):
                if not self._explained(other):
                    self._mark_inserted(
                        other,
                        f"entry {other.seq} comes after the entry the chain head names as "
                        f"the last one (seq {back.seq}): it was added outside the audit "
                        "writer, or the head was reset",
                    )
            return
        if head_seq > self._high:
            first = self._high + 1
            self._report(
                "head_mismatch",
                f"the chain head says the log ends at seq {head_seq}, but it ends at seq "
                f"{last.seq}: entries {first} to {head_seq} are missing",
                seq=first,
            )
        else:
            self._report(
                "head_mismatch",
                f"the chain head names a hash no entry has: entry {last.seq} was changed and "
                "its hash recomputed, or the head was altered",
                seq=last.seq,
            )

    def problems(self) -> list[AuditProblem]:
        found = sorted((f for f in self._findings if not f.retracted), key=lambda f: f.seq)
        return [AuditProblem(seq=f.seq, kind=f.kind, message=f.message) for f in found]


def _hash_input_from_stored(stored: Any) -> _HashInput | None:
    """The hash input of a stored row, or None if the row is too damaged to hash at all."""
    try:
        return _HashInput(
            _CanonicalPieces.of(stored, at=_parse_stored_at(stored.at)), stored.prev_hash
        )
    except (TypeError, ValueError):
        return None


def _parse_stored_at(value: Any) -> datetime:
    # Read without the column type's converter (SQLite gives the stored text) so a mangled
    # timestamp is reported as an edit instead of crashing the verification.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError("not a timestamp")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def verify(session: Session) -> AuditVerification:
    """Check the whole chain and name every problem by seq (how: :class:`_ChainChecker`).

    Streams the log in seq order in batches (a server-side cursor on PostgreSQL), so memory
    stays flat however long the log is. Read-only.
    """
    head_row = select(_HEAD.c.last_seq, _HEAD.c.last_hash).where(_HEAD.c.id == _HEAD_ID)
    # The head rides along on every row of the same statement, hence the same snapshot: an
    # entry committed while we read can never look like a mismatch between log and head.
    stmt = (
        select(
            _LOG.c.seq,
            type_coerce(_LOG.c.at, String()).label("at"),
            _LOG.c.actor,
            _LOG.c.action,
            _LOG.c.target,
            _LOG.c.client_address,
            _LOG.c.details,
            _LOG.c.prev_hash,
            _LOG.c.entry_hash,
            head_row.with_only_columns(_HEAD.c.last_seq).scalar_subquery().label("head_seq"),
            head_row.with_only_columns(_HEAD.c.last_hash).scalar_subquery().label("head_hash"),
        )
        .order_by(_LOG.c.seq)
        .execution_options(yield_per=_BATCH_SIZE)
    )
    checker = _ChainChecker()
    head_seq: int | None = None
    head_hash: str | None = None
    for stored in session.execute(stmt):
        if checker.checked == 0:
            head_seq, head_hash = stored.head_seq, stored.head_hash
        checker.feed(stored)
    if checker.checked == 0:
        found = session.execute(head_row).one_or_none()
        if found is not None:
            head_seq, head_hash = found.last_seq, found.last_hash
    checker.finish(head_seq, head_hash)
    problems = checker.problems()
    return AuditVerification(ok=not problems, checked=checker.checked, problems=problems)
