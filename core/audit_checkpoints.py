"""Signed checkpoints of the hash-chained audit log (:mod:`core.audit`).

Why
---
The chain alone cannot catch someone with write access who cuts entries off the end and moves
the head row back, or who rebuilds the whole log from scratch with recomputed hashes: every link
is then consistent. A checkpoint is a signature, by an audit key the attacker does not hold
(a software key encrypted at rest or a non-extractable HSM key, through ``keys/``), over the
head of the chain at one moment. Verification with the public key the *verifier* trusts (never
one stored next to the signature: whoever can replace the signature can replace that too) then
proves that every checkpointed entry is still there, unchanged.

What is signed
--------------
Checkpoint ``number`` (1, 2, 3, ...) covers the entry ``seq`` whose hash is ``entry_hash`` (the
chain head when it was taken). The signature is over these ASCII bytes, one ``name:value`` per
line, each line ending in ``\\n``, in this order::

    commune-sso audit checkpoint v1
    number:<decimal>
    seq:<decimal>
    entry-hash:<64 lowercase hex>
    at:<ISO 8601 UTC with microseconds, e.g. 2026-11-21T17:20:00.123456+00:00>
    previous:<64 lowercase hex: the previous checkpoint's digest, 64 zeros for number 1>
    algorithm:<ES256 | ES384 | RS256 | EdDSA>
    key:<64 lowercase hex: SHA-256 of the signing key's DER SubjectPublicKeyInfo>

The first line separates this signature from anything else the same key could sign. A
checkpoint's *digest* is the SHA-256 (hex) of those bytes; each checkpoint names its
predecessor's digest, so deleting, inserting or reordering checkpoints breaks that chain too.
Every column except the signature itself is covered by the signature.

Algorithms follow the key (JOSE names, RFC 7518 §3.1): ECDSA P-256/SHA-256 (``ES256``, the
default audit key), P-384/SHA-384 (``ES384``), RSASSA-PKCS1-v1_5/SHA-256 (``RS256``), Ed25519
(``EdDSA``). ECDSA signatures are stored DER-encoded as ``cryptography`` makes them, every
signature base64 (RFC 4648 §4). The verifier derives the algorithm from the trusted public key,
never from the row (no algorithm confusion). An outside auditor can check a checkpoint with
OpenSSL: ``openssl pkey -pubin -in audit-pub.pem -outform DER | sha256sum`` gives ``key``, and
``openssl dgst -sha256 -verify audit-pub.pem -signature sig.der message.txt`` the signature.

Taking and verifying
--------------------
:func:`take_checkpoint` runs in the caller's transaction; takers are serialised (an advisory
lock on PostgreSQL, the database write lock on SQLite) and ``number`` is the primary key, so
several workers taking checkpoints at once never make two checkpoints with one number.
:func:`verify_checkpoints` names every problem: ``bad_signature``, ``untrusted_key``,
``truncated`` (a checkpointed entry is gone), ``rebuilt`` (a checkpointed entry has another
hash), ``checkpoint_deleted`` and ``checkpoint_chain_broken``, and reports the unprotected tail:
entries newer than the last checkpoint. :func:`run_periodic_checkpoints` is the serving
process's background loop.

What it cannot catch: entries changed before any checkpoint covered them (the unprotected
tail), and the newest checkpoints cut off together with the entries they covered; the age of
the last checkpoint, and copying the last digest somewhere else now and then, narrow that gap.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Table,
    Text,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeEngine

from core.audit import GENESIS_HASH, AuditChainHead, AuditEntry, compute_entry_hash
from core.clock import Clock
from core.db import Base, UTCDateTime, is_postgresql, transaction

__all__ = [
    "DOMAIN_LABEL",
    "AuditCheckpoint",
    "Checkpoint",
    "CheckpointKey",
    "CheckpointProblem",
    "CheckpointRefused",
    "CheckpointVerification",
    "PublicKey",
    "checkpoint_message",
    "key_fingerprint",
    "latest_checkpoint",
    "load_public_key_pem",
    "run_periodic_checkpoints",
    "signature_algorithm",
    "take_checkpoint",
    "take_checkpoint_now",
    "verify_checkpoints",
]

log = logging.getLogger(__name__)

DOMAIN_LABEL = "commune-sso audit checkpoint v1"
GENESIS_DIGEST = "0" * 64

# Private key objects as keys/ hands them out; an HSM key is a subclass implementing only
# sign() and public_key(), so nothing here touches the private numbers.
CheckpointKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_NUMBER_TYPE: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")
# Any constant works: it only has to differ from other advisory locks taken on the database.
# (The first 8 bytes of SHA-256("commune-sso audit checkpoint"), as a signed 64-bit integer.)
_PG_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"commune-sso audit checkpoint").digest()[:8], "big", signed=True
)
_BATCH_SIZE = 2000
# Beyond this many problems of one kind (a rebuilt log fails every checkpoint), one summary.
_MAX_LISTED_PER_KIND = 10


class AuditCheckpoint(Base):
    """One signed checkpoint (see the module docstring). Never updated or deleted."""

    __tablename__ = "audit_checkpoint"

    number: Mapped[int] = mapped_column(_NUMBER_TYPE, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(_NUMBER_TYPE)
    entry_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(Text)
    prev_digest: Mapped[str] = mapped_column(String(64))


_CHECKPOINT = cast(Table, AuditCheckpoint.__table__)
_LOG = cast(Table, AuditEntry.__table__)
_HEAD = cast(Table, AuditChainHead.__table__)


class CheckpointRefused(RuntimeError):
    """The log does not continue the last checkpoint: signing its head would bless tampering."""


# --------------------------------------------------------------------------------------------
# Canonical form, keys and signatures


def _format_at(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def checkpoint_message(
    *,
    number: int,
    seq: int,
    entry_hash: str,
    at: datetime,
    prev_digest: str,
    algorithm: str,
    key_fingerprint: str,
) -> bytes:
    """The exact bytes a checkpoint's signature covers (the module docstring's format)."""
    lines = [
        DOMAIN_LABEL,
        f"number:{int(number)}",
        f"seq:{int(seq)}",
        f"entry-hash:{entry_hash}",
        f"at:{_format_at(at)}",
        f"previous:{prev_digest}",
        f"algorithm:{algorithm}",
        f"key:{key_fingerprint}",
    ]
    # Stored values come back from the database: a newline smuggled into one would let two
    # different rows share a message. ASCII only, so the bytes are the same in any encoding.
    if any("\n" in line or not line.isascii() for line in lines):
        raise ValueError("checkpoint fields must be single-line ASCII")
    return "".join(line + "\n" for line in lines).encode("ascii")


def key_fingerprint(public_key: PublicKey) -> str:
    """SHA-256 (hex) of the DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) of ``public_key``."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def signature_algorithm(public_key: PublicKey) -> str:
    """The JOSE name of the signature this module makes with the key (RFC 7518 §3.1)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        names = {"secp256r1": "ES256", "secp384r1": "ES384"}
        if public_key.curve.name not in names:
            raise ValueError(f"unsupported curve for audit checkpoints: {public_key.curve.name}")
        return names[public_key.curve.name]
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise ValueError("RSA audit keys must have at least 2048 bits")
        return "RS256"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise TypeError(f"unsupported audit key type: {type(public_key).__name__}")


def _sign(key: CheckpointKey, message: bytes, algorithm: str) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if algorithm == "ES384" else hashes.SHA256()
        return key.sign(message, ec.ECDSA(digest))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(message)


def _signature_valid(public_key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            algorithm = signature_algorithm(public_key)
            digest = hashes.SHA384() if algorithm == "ES384" else hashes.SHA256()
            public_key.verify(signature, message, ec.ECDSA(digest))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def load_public_key_pem(data: bytes) -> PublicKey:
    """A trusted audit public key from PEM: a public key, or the certificate holding one."""
    from cryptography import x509

    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            loaded: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            loaded = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise ValueError(f"not a PEM public key or certificate: {error}") from error
    if not isinstance(
        loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    ):
        raise ValueError(f"unsupported audit public key type: {type(loaded).__name__}")
    signature_algorithm(loaded)  # refuses curves and sizes we would never sign with
    return loaded


def public_key_pem(public_key: PublicKey) -> str:
    """``public_key`` as PEM SubjectPublicKeyInfo, for an auditor to keep."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


# --------------------------------------------------------------------------------------------
# Checkpoints


@dataclass(frozen=True, slots=True)
class Checkpoint:
    number: int
    seq: int
    entry_hash: str
    at: datetime
    key_fingerprint: str
    algorithm: str
    signature: bytes
    prev_digest: str

    def message(self) -> bytes:
        return checkpoint_message(
            number=self.number,
            seq=self.seq,
            entry_hash=self.entry_hash,
            at=self.at,
            prev_digest=self.prev_digest,
            algorithm=self.algorithm,
            key_fingerprint=self.key_fingerprint,
        )

    @property
    def digest(self) -> str:
        """What the next checkpoint names as ``previous``."""
        return hashlib.sha256(self.message()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict for ``--json`` output."""
        return {
            "number": self.number,
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "at": _format_at(self.at),
            "key_fingerprint": self.key_fingerprint,
            "algorithm": self.algorithm,
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "prev_digest": self.prev_digest,
            "digest": self.digest,
        }


def _from_row(row: Any) -> Checkpoint:
    """A stored row as a :class:`Checkpoint`; raises ``ValueError`` if the row is mangled."""
    try:
        signature = base64.b64decode(row.signature, validate=True)
    except (binascii.Error, TypeError) as error:
        raise ValueError("the signature is not base64") from error
    at = row.at
    if not isinstance(at, datetime):
        raise ValueError("the timestamp is not a timestamp")
    return Checkpoint(
        number=int(row.number),
        seq=int(row.seq),
        entry_hash=str(row.entry_hash),
        at=at if at.tzinfo is not None else at.replace(tzinfo=UTC),
        key_fingerprint=str(row.key_fingerprint),
        algorithm=str(row.algorithm),
        signature=signature,
        prev_digest=str(row.prev_digest),
    )


def latest_checkpoint(session: Session) -> Checkpoint | None:
    row = session.execute(
        select(_CHECKPOINT).order_by(_CHECKPOINT.c.number.desc()).limit(1)
    ).one_or_none()
    return None if row is None else _from_row(row)


def _serialise_takers(session: Session) -> None:
    """Make concurrent takers wait for each other until the end of the transaction."""
    if is_postgresql(session):
        # Only takers wait on this lock; audit writers, which lock the head row, never do.
        session.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        return
    # SQLite: take the database write lock before reading (as core.audit's writer does), so
    # the head cannot move while we read and a WAL reader never has to upgrade to a writer.
    session.execute(update(_HEAD).where(_HEAD.c.id == 1).values(last_seq=_HEAD.c.last_seq))


def _check_segment(
    session: Session, *, last: Checkpoint | None, head_seq: int, head_hash: str
) -> None:
    """Refuse unless the entries from the last checkpoint to the head form an intact chain.

    Signing a head that does not continue the last checkpoint would put a valid signature on
    whatever was done to the log since; the verifier would report it, but the signature must
    not help hide it. Costs one pass over the entries since the last checkpoint.
    """
    start = last.seq if last is not None else 1
    prev_hash = GENESIS_HASH
    expected = start
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.seq >= start, AuditEntry.seq <= head_seq)
        .order_by(AuditEntry.seq)
        .execution_options(yield_per=_BATCH_SIZE)
    )
    for entry in session.scalars(stmt):
        if entry.seq != expected:
            raise CheckpointRefused(
                f"audit entry {expected} is missing: verify the audit log before checkpointing"
            )
        if last is not None and entry.seq == last.seq:
            if entry.entry_hash != last.entry_hash:
                raise CheckpointRefused(
                    f"audit entry {entry.seq} no longer has the hash checkpoint {last.number} "
                    "signed: verify the audit log"
                )
        else:
            try:
                recomputed = compute_entry_hash(entry)
            except (TypeError, ValueError):
                recomputed = ""
            if entry.prev_hash != prev_hash or recomputed != entry.entry_hash:
                raise CheckpointRefused(
                    f"audit entry {entry.seq} does not continue the chain: verify the audit log"
                )
        prev_hash = entry.entry_hash
        expected += 1
        session.expunge(entry)  # keep memory flat on a long first checkpoint
    if expected != head_seq + 1 or prev_hash != head_hash:
        raise CheckpointRefused(
            f"the audit chain head (seq {head_seq}) does not match the last entry: "
            "verify the audit log"
        )


def take_checkpoint(*, session: Session, clock: Clock, key: CheckpointKey) -> Checkpoint | None:
    """Sign the current chain head as the next checkpoint, in the caller's transaction.

    Returns None when there is nothing new since the last checkpoint (or nothing at all), or
    when another worker took this very checkpoint at the same moment. Raises
    :class:`CheckpointRefused` if the log does not continue the last checkpoint.

    Not recorded as an audit entry itself: the record would move the head, so no checkpoint
    could ever cover the head, and every periodic run would find "something new" (its own
    record) and sign again forever. The checkpoint table is its own signed, chained record.
    """
    _serialise_takers(session)
    head = session.execute(
        select(_HEAD.c.last_seq, _HEAD.c.last_hash).where(_HEAD.c.id == 1)
    ).one_or_none()
    if head is None:
        if session.execute(select(exists().select_from(_LOG))).scalar():
            raise CheckpointRefused("the audit chain head row is missing: verify the audit log")
        return None
    head_seq, head_hash = int(head.last_seq), str(head.last_hash)
    last = latest_checkpoint(session)
    if head_seq == 0 and last is None:
        return None
    if last is not None and last.seq == head_seq and last.entry_hash == head_hash:
        return None
    if last is not None and head_seq < last.seq:
        raise CheckpointRefused(
            f"the audit chain head (seq {head_seq}) is behind checkpoint {last.number} "
            f"(seq {last.seq}): entries were cut off the log"
        )
    _check_segment(session, last=last, head_seq=head_seq, head_hash=head_hash)

    public_key = cast(PublicKey, key.public_key())
    algorithm = signature_algorithm(public_key)
    fingerprint = key_fingerprint(public_key)
    at = clock.now()
    if at.tzinfo is None:
        raise ValueError("the clock returned a naive datetime")
    unsigned = Checkpoint(
        number=(last.number + 1) if last is not None else 1,
        seq=head_seq,
        entry_hash=head_hash,
        at=at.astimezone(UTC),
        key_fingerprint=fingerprint,
        algorithm=algorithm,
        signature=b"",
        prev_digest=last.digest if last is not None else GENESIS_DIGEST,
    )
    signature = _sign(key, unsigned.message(), algorithm)
    checkpoint = Checkpoint(**{**_fields(unsigned), "signature": signature})
    values = {**_fields(checkpoint), "signature": base64.b64encode(signature).decode("ascii")}
    try:
        # A SAVEPOINT, so losing the race leaves the caller's transaction usable.
        with session.begin_nested():
            session.execute(insert(_CHECKPOINT).values(values))
    except IntegrityError:
        return None
    return checkpoint


def _fields(checkpoint: Checkpoint) -> dict[str, Any]:
    return {name: getattr(checkpoint, name) for name in Checkpoint.__slots__}


def take_checkpoint_now(
    *, session_factory: sessionmaker[Session], clock: Clock, key: CheckpointKey
) -> Checkpoint | None:
    """:func:`take_checkpoint` in a transaction of its own."""
    with transaction(session_factory) as session:
        return take_checkpoint(session=session, clock=clock, key=key)


# --------------------------------------------------------------------------------------------
# Verifying


@dataclass
class CheckpointProblem:
    """One problem, named by checkpoint number (0: about the checkpoints as a whole)."""

    number: int
    kind: str  # bad_signature | untrusted_key | truncated | rebuilt | checkpoint_deleted
    #            | checkpoint_chain_broken
    message: str


@dataclass
class CheckpointVerification:
    """``ok`` when no problem was found; ``checked`` counts the checkpoints read.

    ``unprotected_entries`` counts log entries newer than the last checkpoint (all of them when
    there is none): they can still be changed without a signature noticing.
    """

    ok: bool
    checked: int
    problems: list[CheckpointProblem]
    last: Checkpoint | None
    unprotected_entries: int
    oldest_unprotected_at: datetime | None
    last_age_seconds: float | None
    trusted_fingerprints: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "problems": [
                {"number": p.number, "kind": p.kind, "message": p.message} for p in self.problems
            ],
            "last": None if self.last is None else self.last.as_dict(),
            "last_age_seconds": self.last_age_seconds,
            "unprotected_entries": self.unprotected_entries,
            "oldest_unprotected_at": (
                None
                if self.oldest_unprotected_at is None
                else _format_at(self.oldest_unprotected_at)
            ),
            "trusted_fingerprints": self.trusted_fingerprints,
        }


class _Problems:
    def __init__(self) -> None:
        self.listed: list[CheckpointProblem] = []
        self._counts: dict[str, int] = {}
        self._first_unlisted: dict[str, int] = {}

    def add(self, number: int, kind: str, message: str) -> None:
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        if count <= _MAX_LISTED_PER_KIND:
            self.listed.append(CheckpointProblem(number=number, kind=kind, message=message))
        else:
            self._first_unlisted.setdefault(kind, number)

    def result(self) -> list[CheckpointProblem]:
        problems = list(self.listed)
        for kind, first in self._first_unlisted.items():
            more = self._counts[kind] - _MAX_LISTED_PER_KIND
            problems.append(
                CheckpointProblem(
                    number=first,
                    kind=kind,
                    message=f"and {more} more checkpoints from checkpoint {first} on: {kind}",
                )
            )
        return sorted(problems, key=lambda p: p.number)


def verify_checkpoints(
    *,
    session: Session,
    trusted_public_keys: Iterable[PublicKey],
    clock: Clock,
) -> CheckpointVerification:
    """Check every checkpoint against the keys the verifier trusts and against the log.

    The signature is checked with the trusted key whose fingerprint the row names; a row naming
    any other key is ``untrusted_key`` whatever its signature (the row cannot vouch for its own
    key). Read-only; streams the checkpoints, joined to the entries they cover, in one
    statement (one snapshot).
    """
    trusted = {key_fingerprint(k): k for k in trusted_public_keys}
    problems = _Problems()
    log_end = session.execute(select(func.max(_LOG.c.seq))).scalar()
    log_end = int(log_end) if log_end is not None else 0
    stmt = (
        select(_CHECKPOINT, _LOG.c.entry_hash.label("log_hash"), _LOG.c.seq.label("log_seq"))
        .select_from(_CHECKPOINT.outerjoin(_LOG, _LOG.c.seq == _CHECKPOINT.c.seq))
        .order_by(_CHECKPOINT.c.number)
        .execution_options(yield_per=_BATCH_SIZE)
    )
    checked = 0
    previous: Checkpoint | None = None
    expected_number = 1
    for row in session.execute(stmt):
        checked += 1
        number = int(row.number)
        try:
            checkpoint = _from_row(row)
            digest_ok = True
            checkpoint.message()
        except ValueError as error:
            problems.add(number, "bad_signature", f"checkpoint {number} is mangled: {error}")
            digest_ok = False
        if number != expected_number:
            if expected_number == number - 1:
                gap = f"checkpoint {expected_number} is missing"
            else:
                gap = f"checkpoints {expected_number} to {number - 1} are missing"
            problems.add(number, "checkpoint_deleted", f"{gap} (before checkpoint {number})")
        if not digest_ok:
            previous, expected_number = None, number + 1
            continue
        expected_prev = previous.digest if previous is not None else GENESIS_DIGEST
        if (
            number == expected_number
            and (previous is not None or number == 1)
            and checkpoint.prev_digest != expected_prev
        ):
            problems.add(
                number,
                "checkpoint_chain_broken",
                f"checkpoint {number} does not name checkpoint {number - 1} as its predecessor: "
                "a checkpoint was replaced, or the checkpoints were rebuilt",
            )
        elif previous is not None and checkpoint.seq < previous.seq:
            problems.add(
                number,
                "checkpoint_chain_broken",
                f"checkpoint {number} covers entry {checkpoint.seq}, before the entry "
                f"{previous.seq} its predecessor covers",
            )
        _check_signature(checkpoint, trusted, problems)
        if row.log_seq is None:
            where = (
                f"the log ends at entry {log_end}"
                if log_end < checkpoint.seq
                else "that entry is missing"
            )
            problems.add(
                number,
                "truncated",
                f"checkpoint {number} covers entry {checkpoint.seq}, but {where}: "
                "entries were cut off the log",
            )
        elif row.log_hash != checkpoint.entry_hash:
            problems.add(
                number,
                "rebuilt",
                f"entry {checkpoint.seq} is not the entry checkpoint {number} signed (its hash "
                "differs): the log was rewritten or rebuilt",
            )
        previous, expected_number = checkpoint, number + 1

    last = latest_checkpoint(session) if checked else None
    newer = select(func.count(), func.min(_LOG.c.at))
    if last is not None:
        newer = newer.where(_LOG.c.seq > last.seq)
    count, oldest = session.execute(newer).one()
    age = None if last is None else (clock.now() - last.at).total_seconds()
    listed = problems.result()
    return CheckpointVerification(
        ok=not listed,
        checked=checked,
        problems=listed,
        last=last,
        unprotected_entries=int(count or 0),
        oldest_unprotected_at=_as_utc(oldest),
        last_age_seconds=age,
        trusted_fingerprints=sorted(trusted),
    )


def _as_utc(value: Any) -> datetime | None:
    # min() over a UTCDateTime column comes back untyped on SQLite (text).
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _check_signature(
    checkpoint: Checkpoint, trusted: dict[str, PublicKey], problems: _Problems
) -> None:
    number = checkpoint.number
    public_key = trusted.get(checkpoint.key_fingerprint)
    if public_key is None:
        problems.add(
            number,
            "untrusted_key",
            f"checkpoint {number} is signed by key {checkpoint.key_fingerprint[:16]}..., "
            "which this verification does not trust",
        )
        return
    if checkpoint.algorithm != signature_algorithm(public_key) or not _signature_valid(
        public_key, checkpoint.signature, checkpoint.message()
    ):
        problems.add(
            number,
            "bad_signature",
            f"checkpoint {number} does not carry a valid signature by its key: it was changed "
            "after it was signed",
        )


# --------------------------------------------------------------------------------------------
# The serving process's background loop


async def run_periodic_checkpoints(
    *,
    session_factory: sessionmaker[Session],
    clock: Clock,
    load_key: Callable[[], CheckpointKey],
    interval: float,
) -> None:
    """Take a checkpoint every ``interval`` seconds until cancelled.

    The database work and the signing (which may wait on an HSM) run in a thread, so the event
    loop keeps serving. Quiet on success; failures are logged and retried at the next interval,
    never raised (a bad key or a refused checkpoint must not take the service down). Every
    worker of every host may run this: takers are serialised, and all but the first find
    nothing new. The key is loaded on the first run, not at start-up: a worker that never gets
    that far pays nothing.
    """
    if interval <= 0:
        return
    key: CheckpointKey | None = None

    def take_once() -> None:
        nonlocal key
        if key is None:
            key = load_key()
        take_checkpoint_now(session_factory=session_factory, clock=clock, key=key)

    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(take_once)
        except CheckpointRefused as error:
            log.error("audit checkpoint refused: %s", error)
        except Exception:
            # Whatever went wrong (database down, HSM token absent), the next run retries.
            log.exception("audit checkpoint failed")


def start_periodic_checkpoints(
    *,
    session_factory: sessionmaker[Session],
    clock: Clock,
    load_key: Callable[[], CheckpointKey],
    interval: float,
) -> asyncio.Task[None]:
    """Start :func:`run_periodic_checkpoints` on the running loop; cancel the task to stop."""
    return asyncio.create_task(
        run_periodic_checkpoints(
            session_factory=session_factory, clock=clock, load_key=load_key, interval=interval
        ),
        name="audit-checkpoints",
    )


async def stop_periodic_checkpoints(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
