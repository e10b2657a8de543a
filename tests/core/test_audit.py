"""The hash-chained audit log: writing in the caller's transaction, and naming tampering by seq.

Tampering is done the way an attacker with database access would: plain SQL on the tables,
recomputing hashes with the published rule where the case says so.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.audit import (
    GENESIS_HASH,
    AuditChainError,
    AuditChainHead,
    AuditEntry,
    compute_entry_hash,
    ensure_chain_head,
    entry_as_dict,
    record,
    tail,
    verify,
)
from core.clock import FixedClock
from core.db import make_session_factory, transaction
from tests.sql_statements import statements_sent

LOG = AuditEntry.__table__
HEAD = AuditChainHead.__table__


# -- helpers ----------------------------------------------------------------------------------


def record_many(
    sessions: sessionmaker[Session],
    clock: FixedClock,
    count: int,
    *,
    per_transaction: int = 10,
    action: str = "login.success",
) -> None:
    """Commit ``count`` entries, ``per_transaction`` per transaction, one second apart."""
    done = 0
    while done < count:
        with transaction(sessions) as session:
            for _ in range(min(per_transaction, count - done)):
                done += 1
                clock.advance(1)
                record(
                    session,
                    clock=clock,
                    actor=f"user:official{done}",
                    action=action,
                    target=f"account:{done}",
                    details={"n": done, "method": "password"},
                    client_address="203.0.113.7",
                )


def run_verify(sessions: sessionmaker[Session]) -> audit.AuditVerification:
    with sessions() as session:
        return verify(session)


def found(result: audit.AuditVerification) -> list[tuple[str, int]]:
    return [(problem.kind, problem.seq) for problem in result.problems]


def tamper(engine: Engine, *statements: Any) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def hashes(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(select(LOG.c.seq, LOG.c.entry_hash))
        return {seq: entry_hash for seq, entry_hash in rows}


def renumber(engine: Engine, *, from_seq: int, by: int) -> None:
    """Add ``by`` to every seq >= from_seq (in two steps: seq is the primary key)."""
    tamper(
        engine,
        update(LOG).where(LOG.c.seq >= from_seq).values(seq=-LOG.c.seq),
        update(LOG).where(LOG.c.seq < 0).values(seq=-LOG.c.seq + by),
    )


def forged_row(*, seq: int, prev_hash: str, recompute: bool = True) -> dict[str, Any]:
    entry = AuditEntry(
        seq=seq,
        at=datetime(2026, 1, 1, 8, 0, 30, tzinfo=UTC),
        actor="admin:mallory",
        action="client.create",
        target="client:backdoor",
        client_address="198.51.100.66",
        details=json.dumps({"note": "forged"}),
        prev_hash=prev_hash,
        entry_hash="",
    )
    entry.entry_hash = compute_entry_hash(entry) if recompute else "f" * 64
    return {column.name: getattr(entry, column.name) for column in LOG.columns}


def head_values(engine: Engine) -> tuple[int, str] | None:
    with engine.connect() as conn:
        row = conn.execute(select(HEAD.c.last_seq, HEAD.c.last_hash)).one_or_none()
    return None if row is None else (row.last_seq, row.last_hash)


# -- writing ----------------------------------------------------------------------------------


def test_hash_follows_the_published_rule(audit_sessions: sessionmaker[Session], audit_clock):
    """Pins the chain format: an outside verifier must be able to recompute every hash."""
    audit_clock.set(datetime(2026, 3, 2, 1, 2, 3, 456789, tzinfo=UTC))
    with transaction(audit_sessions) as session:
        record(
            session,
            clock=audit_clock,
            actor="admin:root",
            action="client.create",
            target="client:qlvb",
            details={"redirect_uris": ["https://qlvb.example.vn/cb"], "b": 1, "a": None},
            client_address="192.0.2.1",
        )
        record(session, clock=audit_clock, actor="system", action="key.rotate")
    with audit_sessions() as session:
        first, second = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()

    payload = {
        "seq": 1,
        "at": "2026-03-02T01:02:03.456789+00:00",
        "actor": "admin:root",
        "action": "client.create",
        "target": "client:qlvb",
        "client_address": "192.0.2.1",
        "details": {"a": None, "b": 1, "redirect_uris": ["https://qlvb.example.vn/cb"]},
        "prev_hash": GENESIS_HASH,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first.entry_hash == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert first.details == json.dumps(payload["details"], sort_keys=True, separators=(",", ":"))
    assert first.at == datetime(2026, 3, 2, 1, 2, 3, 456789, tzinfo=UTC)
    assert (second.seq, second.prev_hash, second.details, second.target) == (
        2,
        first.entry_hash,
        "{}",
        None,
    )
    assert compute_entry_hash(second) == second.entry_hash
    with audit_sessions() as session:
        head = session.get(AuditChainHead, 1)
        assert head is not None
        assert (head.last_seq, head.last_hash) == (2, second.entry_hash)


def test_a_one_entry_transaction_hashes_by_the_same_rule(audit_sessions, audit_clock, audit_engine):
    """PostgreSQL hashes a lone entry in SQL: the bytes must be exactly the published ones,
    Vietnamese text included, and the head must remember the entry's prev_hash."""
    record_many(audit_sessions, audit_clock, 1)
    audit_clock.set(datetime(2026, 7, 1, 8, 0, 0, 1, tzinfo=UTC))
    with statements_sent(audit_engine) as statements, transaction(audit_sessions) as session:
        record(
            session,
            clock=audit_clock,
            actor="admin:trần.thị.bình",
            action="user.create",
            target='user:"nguyễn"',
            details={"chức_vụ": "Chủ tịch", "n": [1, 2.5, None]},
            client_address="2001:db8::1",
        )

    with audit_sessions() as session:
        first, second = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        head = session.get(AuditChainHead, 1)
    payload = {
        "seq": 2,
        "at": "2026-07-01T08:00:00.000001+00:00",
        "actor": "admin:trần.thị.bình",
        "action": "user.create",
        "target": 'user:"nguyễn"',
        "client_address": "2001:db8::1",
        "details": {"chức_vụ": "Chủ tịch", "n": [1, 2.5, None]},
        "prev_hash": first.entry_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert second.entry_hash == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert second.prev_hash == first.entry_hash
    assert head is not None
    assert (head.last_seq, head.last_hash, head.last_prev_hash) == (
        2,
        second.entry_hash,
        first.entry_hash,
    )
    audit_writes = [s for s in statements if "audit_" in s]
    if audit_engine.dialect.name == "postgresql":
        # Read, chain, insert and advance in one statement (the head lock is held shortest).
        assert len(audit_writes) == 1, audit_writes
    assert run_verify(audit_sessions).ok


def test_sequential_transactions_chain_on(audit_sessions, audit_clock):
    record_many(audit_sessions, audit_clock, 2, per_transaction=2)
    record_many(audit_sessions, audit_clock, 3, per_transaction=3)

    with audit_sessions() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.entry_hash
    assert run_verify(audit_sessions).ok


def test_clean_chain_of_1000_entries_verifies(audit_sessions, audit_clock, monkeypatch):
    record_many(audit_sessions, audit_clock, 1000, per_transaction=100)
    # Small batches, so the streaming crosses many batch boundaries.
    monkeypatch.setattr(audit, "_BATCH_SIZE", 64)

    result = run_verify(audit_sessions)

    assert (result.ok, result.checked, result.problems) == (True, 1000, [])


def test_empty_log_verifies(audit_sessions):
    assert run_verify(audit_sessions) == audit.AuditVerification(ok=True, checked=0, problems=[])


def test_vietnamese_text_round_trips_and_verifies(audit_sessions, audit_clock):
    details = {"họ_tên": "Nguyễn Văn An", "đơn_vị": "Phường Ba Đình", "chức_vụ": "Chủ tịch"}
    with transaction(audit_sessions) as session:
        record(
            session,
            clock=audit_clock,
            actor="admin:trần.thị.bình",
            action="user.create",
            target="user:nguyễn.văn.an",
            details=details,
        )

    with audit_sessions() as session:
        (entry,) = tail(session)
    assert "Nguyễn Văn An" in entry.details  # stored as UTF-8 text, not \\u escapes
    as_dict = entry_as_dict(entry)
    assert as_dict["details"] == details
    assert as_dict["actor"] == "admin:trần.thị.bình"
    assert json.loads(json.dumps(as_dict, ensure_ascii=False)) == as_dict
    assert run_verify(audit_sessions).ok


def test_rolled_back_transaction_leaves_no_trace(audit_sessions, audit_clock, audit_engine):
    before = head_values(audit_engine)
    with pytest.raises(RuntimeError, match="request failed"), transaction(audit_sessions) as s:
        record(s, clock=audit_clock, actor="user:alice", action="login.success")
        raise RuntimeError("request failed")

    assert hashes(audit_engine) == {}
    assert head_values(audit_engine) == before == (0, GENESIS_HASH)
    assert run_verify(audit_sessions).ok


def test_rollback_then_reuse_of_the_session_writes_only_the_new_entry(audit_sessions, audit_clock):
    with audit_sessions() as session:
        record(session, clock=audit_clock, actor="user:alice", action="login.failure")
        session.rollback()
        record(session, clock=audit_clock, actor="user:alice", action="login.success")
        session.commit()
        # Closed without commit: dropped too, not carried into the next transaction.
        record(session, clock=audit_clock, actor="user:alice", action="logout")
        session.close()
        session.commit()

    with audit_sessions() as session:
        assert [(e.seq, e.action) for e in tail(session)] == [(1, "login.success")]


def test_failed_commit_writes_no_entry(audit_sessions, audit_clock, audit_engine):
    """The entry and the change share one transaction: the change fails, the entry goes too."""
    with pytest.raises(IntegrityError), transaction(audit_sessions) as session:
        record(session, clock=audit_clock, actor="cli", action="client.create")
        # The change this entry records violates a constraint at flush.
        session.add(
            AuditChainHead(id=1, last_seq=0, last_hash=GENESIS_HASH, last_prev_hash=GENESIS_HASH)
        )

    assert hashes(audit_engine) == {}
    assert run_verify(audit_sessions).ok


def test_rolled_back_savepoint_drops_only_its_own_entries(audit_sessions, audit_clock):
    with transaction(audit_sessions) as session:
        record(session, clock=audit_clock, actor="cli", action="a.kept")
        with pytest.raises(ValueError), session.begin_nested():
            record(session, clock=audit_clock, actor="cli", action="b.dropped")
            with session.begin_nested():
                record(session, clock=audit_clock, actor="cli", action="c.dropped")
            raise ValueError("undo the savepoint")
        with session.begin_nested():
            record(session, clock=audit_clock, actor="cli", action="d.kept")
        record(session, clock=audit_clock, actor="cli", action="e.kept")

    with audit_sessions() as session:
        assert [(e.seq, e.action) for e in tail(session)] == [
            (1, "a.kept"),
            (2, "d.kept"),
            (3, "e.kept"),
        ]
    assert run_verify(audit_sessions).ok


def test_install_is_idempotent(audit_sessions, audit_clock):
    audit.install(audit_sessions)
    record_many(audit_sessions, audit_clock, 3)
    with audit_sessions() as session:
        assert [e.seq for e in tail(session)] == [1, 2, 3]


def test_install_on_a_new_factory_after_an_old_one_is_collected(audit_engine, audit_clock):
    """Regression: SQLAlchemy keys sessionmaker listeners by id(), so a new factory at a
    collected one's address looked installed and its entries were silently never written."""
    for _ in range(10):
        factory = make_session_factory(audit_engine)
        audit.install(factory)
        record_many(factory, audit_clock, 1)
        del factory
        gc.collect()

    assert sorted(hashes(audit_engine)) == list(range(1, 11))


def test_record_refuses_a_session_without_the_writer(audit_engine, audit_clock):
    factory = make_session_factory(audit_engine)  # install() not called
    with factory() as session, pytest.raises(RuntimeError, match="install"):
        record(session, clock=audit_clock, actor="cli", action="client.create")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"details": {"when": datetime(2026, 1, 1, tzinfo=UTC)}}, TypeError),
        ({"details": {"ratio": float("nan")}}, ValueError),
        ({"details": ["not", "a", "mapping"]}, TypeError),
        ({"actor": "user:" + "x" * 200}, ValueError),
        ({"action": ""}, ValueError),
        ({"client_address": "1" * 65}, ValueError),
    ],
)
def test_record_rejects_bad_input_at_the_call_site(audit_sessions, audit_clock, fields, error):
    arguments = {"clock": audit_clock, "actor": "cli", "action": "client.create", **fields}
    with audit_sessions() as session, pytest.raises(error):
        record(session, **arguments)


def test_record_rejects_a_naive_clock(audit_sessions):
    with audit_sessions() as session, pytest.raises(ValueError, match="naive"):
        record(session, clock=FixedClock(datetime(2026, 1, 1)), actor="cli", action="x")


def test_missing_head_is_created_on_first_use(audit_engine, audit_clock):
    factory = make_session_factory(audit_engine)
    audit.install(factory)  # no ensure_chain_head: the first commit creates the head

    record_many(factory, audit_clock, 2)

    assert head_values(audit_engine) == (2, hashes(audit_engine)[2])
    assert run_verify(factory).ok


def test_missing_head_with_entries_refuses_to_restart_the_chain(
    audit_sessions, audit_clock, audit_engine
):
    record_many(audit_sessions, audit_clock, 3)
    tamper(audit_engine, delete(HEAD))

    with pytest.raises(AuditChainError, match="head row is missing"):
        record_many(audit_sessions, audit_clock, 1)
    assert len(hashes(audit_engine)) == 3


def test_ensure_chain_head_is_harmless_when_the_head_exists(audit_sessions, audit_clock):
    record_many(audit_sessions, audit_clock, 2)
    with transaction(audit_sessions) as session:
        ensure_chain_head(session)
    assert run_verify(audit_sessions).ok


# -- reading ----------------------------------------------------------------------------------


def test_tail_returns_the_newest_last_and_filters_by_action_prefix(audit_sessions, audit_clock):
    record_many(audit_sessions, audit_clock, 12, action="login.success")
    record_many(audit_sessions, audit_clock, 3, action="client.create")
    record_many(audit_sessions, audit_clock, 2, action="login.failure")

    with audit_sessions() as session:
        assert [e.seq for e in tail(session, limit=4)] == [14, 15, 16, 17]
        assert [e.seq for e in tail(session, action_prefix="client.")] == [13, 14, 15]
        assert [e.seq for e in tail(session, limit=3, action_prefix="login.")] == [12, 16, 17]
        assert tail(session, action_prefix="%") == []  # a prefix, not a LIKE pattern
        assert len(tail(session)) == 17
        assert tail(session, limit=0) == []


def test_entry_as_dict_is_json_ready(audit_sessions, audit_clock):
    record_many(audit_sessions, audit_clock, 1)
    with audit_sessions() as session:
        (entry,) = tail(session)
    as_dict = entry_as_dict(entry)
    assert as_dict == {
        "seq": 1,
        "at": "2026-01-01T08:00:01.000000+00:00",
        "actor": "user:official1",
        "action": "login.success",
        "target": "account:1",
        "client_address": "203.0.113.7",
        "details": {"method": "password", "n": 1},
        "prev_hash": GENESIS_HASH,
        "entry_hash": entry.entry_hash,
    }
    json.dumps(as_dict)


# -- tampering: each case is named once, by seq, without a cascade ----------------------------


@pytest.fixture
def ten_entries(audit_sessions, audit_clock) -> sessionmaker[Session]:
    record_many(audit_sessions, audit_clock, 10, per_transaction=3)
    return audit_sessions


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor", "admin:mallory"),
        ("action", "login.failure"),
        ("target", None),
        ("client_address", "198.51.100.66"),
        ("details", '{"method":"password","n":50}'),
        ("at", datetime(2026, 1, 1, 8, 0, 5, 1, tzinfo=UTC)),
        ("prev_hash", "a" * 64),
        ("entry_hash", "b" * 64),
    ],
)
def test_edited_field_is_named(ten_entries, audit_engine, column, value):
    tamper(audit_engine, update(LOG).where(LOG.c.seq == 5).values({column: value}))

    result = run_verify(ten_entries)

    assert not result.ok
    assert found(result) == [("edited", 5)]
    assert result.checked == 10


def test_edited_entry_with_recomputed_hash_is_named(ten_entries, audit_engine):
    with audit_engine.connect() as conn:
        row = conn.execute(select(LOG).where(LOG.c.seq == 5)).one()
    entry = AuditEntry(**{**row._mapping, "actor": "admin:mallory"})
    tamper(
        audit_engine,
        update(LOG)
        .where(LOG.c.seq == 5)
        .values(actor=entry.actor, entry_hash=compute_entry_hash(entry)),
    )

    assert found(run_verify(ten_entries)) == [("edited", 5)]


def test_mangled_timestamp_text_is_an_edit_not_a_crash(ten_entries, audit_engine):
    if audit_engine.dialect.name != "sqlite":
        pytest.skip("only SQLite stores timestamps as free text")
    tamper(audit_engine, text("UPDATE audit_log SET at = 'yesterday' WHERE seq = 5"))

    assert found(run_verify(ten_entries)) == [("edited", 5)]


def test_changed_seq_is_named(ten_entries, audit_engine):
    tamper(audit_engine, update(LOG).where(LOG.c.seq == 10).values(seq=99))

    assert found(run_verify(ten_entries)) == [("edited", 99)]


def test_deleted_entry_is_named(ten_entries, audit_engine):
    tamper(audit_engine, delete(LOG).where(LOG.c.seq == 5))

    result = run_verify(ten_entries)

    assert found(result) == [("deleted", 5)]
    assert "missing" in result.problems[0].message
    assert result.checked == 9


def test_deleted_first_entry_is_named(ten_entries, audit_engine):
    tamper(audit_engine, delete(LOG).where(LOG.c.seq == 1))

    assert found(run_verify(ten_entries)) == [("deleted", 1)]


def test_deleted_run_of_entries_names_each(ten_entries, audit_engine):
    tamper(audit_engine, delete(LOG).where(LOG.c.seq.between(4, 6)))

    assert found(run_verify(ten_entries)) == [("deleted", 4), ("deleted", 5), ("deleted", 6)]


def test_long_deleted_run_is_one_problem(audit_sessions, audit_clock, audit_engine):
    record_many(audit_sessions, audit_clock, 60, per_transaction=60)
    tamper(audit_engine, delete(LOG).where(LOG.c.seq.between(20, 49)))

    result = run_verify(audit_sessions)

    assert found(result) == [("deleted", 20)]
    assert "20 to 49" in result.problems[0].message


def test_deleted_entry_with_later_entries_renumbered_is_named(ten_entries, audit_engine):
    tamper(audit_engine, delete(LOG).where(LOG.c.seq == 5))
    renumber(audit_engine, from_seq=6, by=-1)

    assert found(run_verify(ten_entries)) == [("deleted", 5)]


@pytest.mark.parametrize("recompute", [True, False], ids=["hash-recomputed", "hash-not-recomputed"])
def test_inserted_entry_shifting_seqs_is_named(ten_entries, audit_engine, recompute):
    original = hashes(audit_engine)
    renumber(audit_engine, from_seq=5, by=1)
    forged = forged_row(seq=5, prev_hash=original[4], recompute=recompute)
    tamper(audit_engine, insert(LOG).values(forged))

    result = run_verify(ten_entries)

    assert found(result) == [("inserted", 5)]
    assert result.checked == 11


def test_inserted_entry_with_a_made_up_prev_hash_is_named(ten_entries, audit_engine):
    renumber(audit_engine, from_seq=5, by=1)
    tamper(audit_engine, insert(LOG).values(forged_row(seq=5, prev_hash="c" * 64)))

    assert found(run_verify(ten_entries)) == [("inserted", 5)]


@pytest.mark.parametrize("seq", [11, 1000])
def test_inserted_entry_with_an_extra_seq_is_named(ten_entries, audit_engine, seq):
    """Appended behind the writer's back: the chain head still names entry 10 as the last."""
    tail_hash = hashes(audit_engine)[10]
    tamper(audit_engine, insert(LOG).values(forged_row(seq=seq, prev_hash=tail_hash)))

    assert found(run_verify(ten_entries)) == [("inserted", seq)]


@pytest.mark.parametrize(("first", "second"), [(4, 5), (9, 10), (1, 2)])
def test_swapped_entries_are_named_as_reordered(ten_entries, audit_engine, first, second):
    tamper(
        audit_engine,
        update(LOG).where(LOG.c.seq == first).values(seq=-1),
        update(LOG).where(LOG.c.seq == second).values(seq=first),
        update(LOG).where(LOG.c.seq == -1).values(seq=second),
    )

    assert found(run_verify(ten_entries)) == [("reordered", first), ("reordered", second)]


def test_cut_tail_is_a_head_mismatch(ten_entries, audit_engine):
    tamper(audit_engine, delete(LOG).where(LOG.c.seq >= 8))

    result = run_verify(ten_entries)

    assert found(result) == [("head_mismatch", 8)]
    assert "8 to 10" in result.problems[0].message


def test_missing_head_row_is_a_head_mismatch(ten_entries, audit_engine):
    tamper(audit_engine, delete(HEAD))

    assert found(run_verify(ten_entries)) == [("head_mismatch", 10)]


def test_altered_head_is_a_head_mismatch(ten_entries, audit_engine):
    tamper(audit_engine, update(HEAD).values(last_hash="d" * 64))

    assert found(run_verify(ten_entries)) == [("head_mismatch", 10)]


def test_two_separate_edits_are_both_named_and_nothing_else(
    audit_sessions, audit_clock, audit_engine
):
    record_many(audit_sessions, audit_clock, 600, per_transaction=200)
    tamper(
        audit_engine,
        update(LOG).where(LOG.c.seq == 7).values(actor="admin:mallory"),
        delete(LOG).where(LOG.c.seq == 300),
        update(LOG).where(LOG.c.seq == 599).values(details="{}"),
    )

    assert found(run_verify(audit_sessions)) == [
        ("edited", 7),
        ("deleted", 300),
        ("edited", 599),
    ]


def test_chain_written_after_a_verification_is_still_checked(audit_sessions, audit_clock):
    record_many(audit_sessions, audit_clock, 5)
    assert run_verify(audit_sessions).ok
    record_many(audit_sessions, audit_clock, 5)
    result = run_verify(audit_sessions)
    assert (result.ok, result.checked) == (True, 10)


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_writers_build_one_chain(audit_sessions, audit_engine):
    """4 threads x 25 commits at once: the head lock serialises them into seqs 1..100."""
    threads_count, per_thread = 4, 25
    start = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=worker))
        try:
            start.wait()
            for n in range(per_thread):
                clock.advance(1)
                with transaction(audit_sessions) as session:
                    record(
                        session,
                        clock=clock,
                        actor=f"client:worker{worker}",
                        action="token.issue",
                        details={"worker": worker, "n": n},
                    )
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    workers = [threading.Thread(target=write, args=(i,)) for i in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    total = threads_count * per_thread
    assert sorted(hashes(audit_engine)) == list(range(1, total + 1))
    with audit_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LOG)).scalar() == total
    assert head_values(audit_engine) == (total, hashes(audit_engine)[total])
    result = run_verify(audit_sessions)
    assert (result.ok, result.checked) == (True, total)
