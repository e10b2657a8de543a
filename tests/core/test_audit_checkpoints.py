"""Signed audit checkpoints: what the plain hash chain cannot catch, the checkpoints do.

Tampering is done the way an attacker with database access (but without the audit key) would:
plain SQL on the tables, recomputing hashes with the published rule and fixing up the head row.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sqlalchemy import Engine, Table, delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.audit import GENESIS_HASH, AuditChainHead, AuditEntry, compute_entry_hash, record
from core.audit_checkpoints import (
    AuditCheckpoint,
    Checkpoint,
    CheckpointRefused,
    CheckpointVerification,
    key_fingerprint,
    latest_checkpoint,
    load_public_key_pem,
    run_periodic_checkpoints,
    take_checkpoint_now,
    verify_checkpoints,
)
from core.clock import FixedClock
from core.db import make_session_factory, transaction

LOG = cast(Table, AuditEntry.__table__)
HEAD = cast(Table, AuditChainHead.__table__)
CHECKPOINT = cast(Table, AuditCheckpoint.__table__)


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    audit.install(factory)
    return factory


@pytest.fixture
def audit_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def checkpoint_clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 21, 8, 0, 0, 123456, tzinfo=UTC))


def record_many(sessions: sessionmaker[Session], clock: FixedClock, count: int) -> None:
    with transaction(sessions) as session:
        for n in range(count):
            clock.advance(1)
            record(
                session,
                clock=clock,
                actor="admin:ca",
                action="ca.certificate.issue",
                target=f"certificate:{n}",
                details={"n": n, "profile": "document-signing"},
            )


def take(sessions: sessionmaker[Session], clock: FixedClock, key: Any) -> Checkpoint | None:
    clock.advance(1)
    return take_checkpoint_now(session_factory=sessions, clock=clock, key=key)


def check(sessions: sessionmaker[Session], clock: FixedClock, *keys: Any) -> CheckpointVerification:
    with sessions() as session:
        return verify_checkpoints(session=session, trusted_public_keys=keys, clock=clock)


def chain_ok(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return audit.verify(session).ok


def found(result: CheckpointVerification) -> list[tuple[str, int]]:
    return [(problem.kind, problem.number) for problem in result.problems]


def tamper(engine: Engine, *statements: Any) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def entries(engine: Engine) -> list[AuditEntry]:
    with make_session_factory(engine)() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def rewrite_log(engine: Engine, rows: list[AuditEntry]) -> None:
    """Replace the whole log with ``rows``, chained and hashed by the published rule, and move
    the head to its end: what the plain chain verification cannot tell from the real thing."""
    prev = GENESIS_HASH
    values = []
    for seq, row in enumerate(rows, start=1):
        entry = AuditEntry(
            seq=seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            client_address=row.client_address,
            details=row.details,
            prev_hash=prev,
            entry_hash="",
        )
        entry.entry_hash = compute_entry_hash(entry)
        prev = entry.entry_hash
        values.append({column.name: getattr(entry, column.name) for column in LOG.columns})
    statements: list[Any] = [delete(LOG)]
    if values:
        statements.append(insert(LOG).values(values))
    statements.append(update(HEAD).values(last_seq=len(values), last_hash=prev))
    tamper(engine, *statements)


# -- taking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_key", "algorithm"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
    ],
    ids=["ec-p256", "ec-p384", "rsa-2048", "ed25519"],
)
def test_checkpoint_then_verify_is_clean(
    sessions: sessionmaker[Session], checkpoint_clock: FixedClock, make_key: Any, algorithm: str
) -> None:
    key = make_key()
    record_many(sessions, checkpoint_clock, 5)

    first = take(sessions, checkpoint_clock, key)

    assert first is not None
    assert (first.number, first.seq, first.algorithm) == (1, 5, algorithm)
    assert first.prev_digest == "0" * 64
    with sessions() as session:
        head = session.get(AuditChainHead, 1)
        assert head is not None and first.entry_hash == head.last_hash
    result = check(sessions, checkpoint_clock, key.public_key())
    assert result.ok, result.problems
    assert (result.checked, result.unprotected_entries) == (1, 0)
    assert result.last is not None and result.last.number == 1


def test_nothing_new_takes_no_checkpoint_and_new_entries_take_the_next(
    sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    assert take(sessions, checkpoint_clock, audit_key) is None  # empty log: nothing to sign
    record_many(sessions, checkpoint_clock, 3)
    first = take(sessions, checkpoint_clock, audit_key)
    assert first is not None

    assert take(sessions, checkpoint_clock, audit_key) is None

    record_many(sessions, checkpoint_clock, 2)
    checkpoint_clock.advance(600)
    result = check(sessions, checkpoint_clock, audit_key.public_key())
    assert result.ok
    assert result.unprotected_entries == 2
    assert result.last_age_seconds is not None and result.last_age_seconds >= 600

    second = take(sessions, checkpoint_clock, audit_key)
    assert second is not None
    assert (second.number, second.seq, second.prev_digest) == (2, 5, first.digest)
    result = check(sessions, checkpoint_clock, audit_key.public_key())
    assert result.ok and result.checked == 2 and result.unprotected_entries == 0
    with sessions() as session:
        assert latest_checkpoint(session) == second


def test_the_signed_bytes_follow_the_published_format(
    sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    """Pins the format: an outside auditor must be able to check a checkpoint by hand."""
    record_many(sessions, checkpoint_clock, 2)
    checkpoint_clock.set(datetime(2026, 11, 21, 9, 30, 0, 5, tzinfo=UTC))
    checkpoint = take_checkpoint_now(
        session_factory=sessions, clock=checkpoint_clock, key=audit_key
    )
    assert checkpoint is not None
    spki = audit_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fingerprint = hashlib.sha256(spki).hexdigest()
    expected = (
        "commune-sso audit checkpoint v1\n"
        "number:1\n"
        "seq:2\n"
        f"entry-hash:{checkpoint.entry_hash}\n"
        "at:2026-11-21T09:30:00.000005+00:00\n"
        f"previous:{'0' * 64}\n"
        "algorithm:ES256\n"
        f"key:{fingerprint}\n"
    ).encode()
    assert checkpoint.message() == expected
    assert checkpoint.digest == hashlib.sha256(expected).hexdigest()
    # What is stored verifies with nothing but the public key and the documented bytes.
    with sessions() as session:
        row = session.execute(select(CHECKPOINT)).one()
    assert row.key_fingerprint == fingerprint
    audit_key.public_key().verify(
        base64.b64decode(row.signature), expected, ec.ECDSA(hashes.SHA256())
    )


def test_a_key_that_only_signs_like_an_hsm_key_is_enough(
    sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    """An HSM-backed key implements sign() and public_key(); nothing else may be needed."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("an HSM key cannot do this")

    methods: dict[str, Any] = dict.fromkeys(ec.EllipticCurvePrivateKey.__abstractmethods__, refuse)
    methods["sign"] = lambda self, data, algorithm: audit_key.sign(data, algorithm)
    methods["public_key"] = lambda self: audit_key.public_key()
    for name in ("curve", "key_size"):
        methods[name] = property(refuse)
    hsm_key = type("HsmKey", (ec.EllipticCurvePrivateKey,), methods)()
    record_many(sessions, checkpoint_clock, 2)

    assert take(sessions, checkpoint_clock, hsm_key) is not None
    assert check(sessions, checkpoint_clock, audit_key.public_key()).ok


def test_checkpoints_are_not_audit_entries(
    sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    record_many(sessions, checkpoint_clock, 2)
    take(sessions, checkpoint_clock, audit_key)
    with sessions() as session:
        head = session.get(AuditChainHead, 1)
        assert head is not None and head.last_seq == 2  # the head did not move
    assert take(sessions, checkpoint_clock, audit_key) is None


# -- what the checkpoints catch ---------------------------------------------------------------


def test_an_entry_edited_before_the_checkpoint_is_reported(
    engine: Engine, sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    record_many(sessions, checkpoint_clock, 5)
    take(sessions, checkpoint_clock, audit_key)

    tamper(engine, update(LOG).where(LOG.c.seq == 2).values(actor="admin:mallory"))

    with sessions() as session:
        chain = audit.verify(session)
    assert [(p.kind, p.seq) for p in chain.problems] == [("edited", 2)]


def test_an_edit_with_every_later_hash_and_the_head_recomputed_is_caught(
    engine: Engine, sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    record_many(sessions, checkpoint_clock, 5)
    take(sessions, checkpoint_clock, audit_key)
    rows = entries(engine)
    rows[1].actor = "admin:mallory"

    rewrite_log(engine, rows)

    assert chain_ok(sessions)  # the plain chain cannot tell
    assert found(check(sessions, checkpoint_clock, audit_key.public_key())) == [("rebuilt", 1)]


def test_a_tail_cut_off_with_the_head_fixed_up_is_caught(
    engine: Engine, sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    record_many(sessions, checkpoint_clock, 4)
    take(sessions, checkpoint_clock, audit_key)
    record_many(sessions, checkpoint_clock, 4)
    take(sessions, checkpoint_clock, audit_key)
    record_many(sessions, checkpoint_clock, 2)
    kept = {row.seq: row.entry_hash for row in entries(engine)}

    # Entries 6..10 go, including entry 8 that checkpoint 2 covers; the head follows.
    tamper(
        engine,
        delete(LOG).where(LOG.c.seq > 5),
        update(HEAD).values(last_seq=5, last_hash=kept[5]),
    )

    assert chain_ok(sessions)  # the plain chain cannot tell
    result = check(sessions, checkpoint_clock, audit_key.public_key())
    assert found(result) == [("truncated", 2)]
    assert "the log ends at entry 5" in result.problems[0].message
    assert not result.ok


def test_a_log_rebuilt_from_scratch_is_caught(
    engine: Engine, sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    record_many(sessions, checkpoint_clock, 3)
    take(sessions, checkpoint_clock, audit_key)
    record_many(sessions, checkpoint_clock, 3)
    take(sessions, checkpoint_clock, audit_key)
    # A new history: one embarrassing entry gone, the rest renumbered and rehashed.
    rows = [row for row in entries(engine) if row.seq != 2]
    rewrite_log(engine, rows)
    record_many(sessions, checkpoint_clock, 1)  # and the service carries on writing

    assert chain_ok(sessions)
    assert found(check(sessions, checkpoint_clock, audit_key.public_key())) == [
        ("rebuilt", 1),
        ("rebuilt", 2),
    ]


def test_the_next_checkpoint_refuses_to_bless_a_cut_log(
    engine: Engine, sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    record_many(sessions, checkpoint_clock, 4)
    take(sessions, checkpoint_clock, audit_key)
    kept = {row.seq: row.entry_hash for row in entries(engine)}
    tamper(
        engine,
        delete(LOG).where(LOG.c.seq > 2),
        update(HEAD).values(last_seq=2, last_hash=kept[2]),
    )
    record_many(sessions, checkpoint_clock, 3)  # entries 3..5 again, a different history

    with pytest.raises(CheckpointRefused, match="entry 4 no longer has the hash"):
        take(sessions, checkpoint_clock, audit_key)
    with sessions() as session:
        assert session.scalars(select(AuditCheckpoint.number)).all() == [1]


def test_the_next_checkpoint_refuses_an_edited_unprotected_entry(
    engine: Engine, sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    record_many(sessions, checkpoint_clock, 2)
    take(sessions, checkpoint_clock, audit_key)
    record_many(sessions, checkpoint_clock, 3)
    tamper(engine, update(LOG).where(LOG.c.seq == 4).values(target="certificate:other"))

    with pytest.raises(CheckpointRefused, match="entry 4 does not continue the chain"):
        take(sessions, checkpoint_clock, audit_key)


def test_a_checkpoint_signed_by_another_key_is_untrusted(
    engine: Engine, sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    record_many(sessions, checkpoint_clock, 3)
    take(sessions, checkpoint_clock, audit_key)
    rows = entries(engine)
    rows[0].details = json.dumps({"n": 0, "profile": "forged"})
    rewrite_log(engine, rows)
    # The attacker re-signs the checkpoints over the rebuilt log with a key of their own.
    tamper(engine, delete(CHECKPOINT))
    mallory = ec.generate_private_key(ec.SECP256R1())
    assert take(sessions, checkpoint_clock, mallory) is not None

    result = check(sessions, checkpoint_clock, audit_key.public_key())
    assert found(result) == [("untrusted_key", 1)]
    # Trusting whatever key a row names would have passed it: the trusted key is the verifier's.
    assert check(sessions, checkpoint_clock, mallory.public_key()).ok


def test_an_edited_checkpoint_has_a_bad_signature(
    engine: Engine, sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    record_many(sessions, checkpoint_clock, 3)
    take(sessions, checkpoint_clock, audit_key)
    rows = entries(engine)
    rows[2].actor = "admin:mallory"
    rewrite_log(engine, rows)
    # The stored entry hash is moved along to the rebuilt log's; the signature cannot be.
    tamper(engine, update(CHECKPOINT).values(entry_hash=entries(engine)[2].entry_hash))

    assert found(check(sessions, checkpoint_clock, audit_key.public_key())) == [
        ("bad_signature", 1)
    ]


@pytest.mark.parametrize("deleted", [1, 2, 3])
def test_a_deleted_checkpoint_is_caught(
    engine: Engine,
    sessions: sessionmaker[Session],
    checkpoint_clock: FixedClock,
    audit_key: Any,
    deleted: int,
) -> None:
    for _ in range(4):
        record_many(sessions, checkpoint_clock, 2)
        take(sessions, checkpoint_clock, audit_key)

    tamper(engine, delete(CHECKPOINT).where(CHECKPOINT.c.number == deleted))

    result = check(sessions, checkpoint_clock, audit_key.public_key())
    assert found(result) == [("checkpoint_deleted", deleted + 1)]
    assert f"checkpoint {deleted} is missing" in result.problems[0].message


def test_a_replaced_checkpoint_breaks_the_checkpoint_chain(
    engine: Engine, sessions: sessionmaker[Session], checkpoint_clock: FixedClock, audit_key: Any
) -> None:
    """Checkpoint 1 replaced by one the real key signed for another database (a replay)."""
    for _ in range(2):
        record_many(sessions, checkpoint_clock, 2)
        take(sessions, checkpoint_clock, audit_key)
    with sessions() as session:
        original = session.execute(select(CHECKPOINT).where(CHECKPOINT.c.number == 1)).one()
    replay = checkpoint_message_row(original, at_shift=1)
    signature = audit_key.sign(replay.message(), ec.ECDSA(hashes.SHA256()))
    tamper(
        engine,
        update(CHECKPOINT)
        .where(CHECKPOINT.c.number == 1)
        .values(at=replay.at, signature=base64.b64encode(signature).decode()),
    )

    assert found(check(sessions, checkpoint_clock, audit_key.public_key())) == [
        ("checkpoint_chain_broken", 2)
    ]


def checkpoint_message_row(row: Any, *, at_shift: int) -> Checkpoint:
    from datetime import timedelta

    return Checkpoint(
        number=row.number,
        seq=row.seq,
        entry_hash=row.entry_hash,
        at=row.at + timedelta(seconds=at_shift),
        key_fingerprint=row.key_fingerprint,
        algorithm=row.algorithm,
        signature=b"",
        prev_digest=row.prev_digest,
    )


def test_trusted_keys_come_from_pem(audit_key: Any) -> None:
    pem = audit_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    loaded = load_public_key_pem(pem)
    assert key_fingerprint(loaded) == key_fingerprint(audit_key.public_key())
    with pytest.raises(ValueError, match="not a PEM public key"):
        load_public_key_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


# -- several takers ---------------------------------------------------------------------------


def test_concurrent_takers_make_one_checkpoint_per_head(
    database_url: str,
    sessions: sessionmaker[Session],
    checkpoint_clock: FixedClock,
    audit_key: Any,
) -> None:
    """Workers on several hosts take checkpoints at the same moment: no duplicate numbers, no
    error, and no second checkpoint of the same head."""
    record_many(sessions, checkpoint_clock, 3)
    start = threading.Barrier(4)
    taken: list[Checkpoint | None] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            for _ in range(3):
                taken.append(
                    take_checkpoint_now(
                        session_factory=sessions, clock=checkpoint_clock, key=audit_key
                    )
                )
                record_many(sessions, checkpoint_clock, 1)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    numbers = sorted(c.number for c in taken if c is not None)
    assert numbers == list(range(1, len(numbers) + 1))
    with sessions() as session:
        rows = session.execute(select(CHECKPOINT.c.number, CHECKPOINT.c.seq)).all()
    assert len({seq for _, seq in rows}) == len(rows)  # never two checkpoints of one head
    assert sorted(number for number, _ in rows) == numbers
    assert check(sessions, checkpoint_clock, audit_key.public_key()).ok


# -- the background loop ----------------------------------------------------------------------


def test_the_periodic_loop_logs_failures_and_carries_on(
    sessions: sessionmaker[Session],
    checkpoint_clock: FixedClock,
    audit_key: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    record_many(sessions, checkpoint_clock, 2)
    attempts: list[int] = []

    def load_key() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("HSM token not present")
        return audit_key

    async def run_until_taken() -> None:
        task = asyncio.create_task(
            run_periodic_checkpoints(
                session_factory=sessions, clock=checkpoint_clock, load_key=load_key, interval=0.02
            )
        )
        try:
            for _ in range(200):
                await asyncio.sleep(0.02)
                with sessions() as session:
                    if latest_checkpoint(session) is not None:
                        return
        finally:
            task.cancel()
        raise AssertionError("no checkpoint was taken")

    with caplog.at_level(logging.ERROR, logger="core.audit_checkpoints"):
        asyncio.run(run_until_taken())

    assert "audit checkpoint failed" in caplog.text
    assert "HSM token not present" in caplog.text
    assert len(attempts) == 2  # loaded again after the failure, then kept
