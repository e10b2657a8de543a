"""Which CRL partition a new certificate belongs to (RFC 5280 §5.2.5, issue 18).

At national scale one CRL would list 300,000 revoked certificates (15 MB, seconds to sign on
every revocation, downloaded whole by every relying party). Each certificate an issuing CA
signs is therefore given a partition at issuance and its CRLDP names that partition's CRL;
partitions fill one after the other, ``CaRuntime.crl_partition_size`` certificates each
(100,000 by default), so a partition CRL never lists more than that, and the certificates of
one partition expire at about the same time.

The fill counter is one row per issuing CA (``ca_crl_partition_fill``), moved on under the row's
lock, which also opens the next partition when the current one is full: each number is handed
out once, so no partition overfills. On PostgreSQL a process claims numbers in blocks (growing
from one to ``partition_numbers.MAX_BLOCK``, never past the end of the partition) in a short
transaction of its own, so parallel issuances never queue behind each other's commits (a batch
of 100 would otherwise hold the row for all its signatures) and a busy process pays the claim's
round trips and commit once per block, not per certificate; SQLite has one writer anyway and
moves the counter by one in the caller's transaction. A rolled-back issuance leaves a gap, and
so do numbers a process claimed and never used: either only makes its partition smaller.

The certificate's transaction publishes its partition's (empty) CRL if none is there yet, so
the URL the certificate names answers from the moment the certificate exists. Two issuances
may both find none: the second waits for the authority row the first locked to sign, then
finds the first one's CRL and signs the next one over it. Once a process has seen the CRL
committed it stops asking for a while (``partition_numbers.PUBLISHED_MEMORY_SECONDS``).
"""

from __future__ import annotations

import contextlib
from typing import cast

from sqlalchemy import Connection, Engine, Table, bindparam, case, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_admin import crl
from ca_admin.models import Authority, IssuedCertificate, PartitionCrl, PartitionFill
from ca_admin.runtime import CaRuntime

_FILL = cast(Table, PartitionFill.__table__)
_IS_FULL = _FILL.c.assigned >= bindparam("size")
# SQLite's claim: one number, in one statement of the caller's transaction.
_CLAIM = (
    update(_FILL)
    .where(_FILL.c.authority_id == bindparam("of_authority"))
    .values(
        partition=case((_IS_FULL, _FILL.c.partition + 1), else_=_FILL.c.partition),
        assigned=case((_IS_FULL, 1), else_=_FILL.c.assigned + 1),
    )
    .returning(_FILL.c.partition)
)


def _claim(connection: Connection, authority_id: int, size: int) -> int:
    parameters = {"of_authority": authority_id, "size": size}
    partition = connection.scalar(_CLAIM, parameters)
    if partition is None:  # the CA's first certificate
        with contextlib.suppress(IntegrityError):  # another process's first, at the same time
            connection.execute(
                insert(_FILL).values(authority_id=authority_id, partition=1, assigned=0)
            )
        partition = connection.scalar(_CLAIM, parameters)
    assert partition is not None
    return int(partition)


_ROW_LOCKED = (
    select(_FILL.c.partition, _FILL.c.assigned)
    .where(_FILL.c.authority_id == bindparam("of_authority"))
    .with_for_update()
)
_FIRST_FILL_ROW = (
    pg_insert(_FILL)
    .values(authority_id=bindparam("of_authority"), partition=1, assigned=0)
    .on_conflict_do_nothing(index_elements=["authority_id"])
)
_MOVE_ON = (
    update(_FILL)
    .where(_FILL.c.authority_id == bindparam("of_authority"))
    .values(partition=bindparam("new_partition"), assigned=bindparam("new_assigned"))
)


def _claim_block(engine: Engine, authority_id: int, size: int, wanted: int) -> tuple[int, int]:
    """(partition, count): ``count`` (at most ``wanted``) numbers of ``partition``, now this
    process's to hand out.

    Its own transaction, committed before the certificate's: the row lock lasts two statements.
    """
    parameters = {"of_authority": authority_id}
    with engine.begin() as connection:
        row = connection.execute(_ROW_LOCKED, parameters).one_or_none()
        if row is None:  # the CA's first certificate (another process's may race us here)
            connection.execute(_FIRST_FILL_ROW, parameters)
            row = connection.execute(_ROW_LOCKED, parameters).one()
        partition, assigned = int(row.partition), int(row.assigned)
        if assigned >= size:
            partition, assigned = partition + 1, 0
        count = min(wanted, size - assigned)
        connection.execute(
            _MOVE_ON,
            {**parameters, "new_partition": partition, "new_assigned": assigned + count},
        )
    return partition, count


def _take_number(runtime: CaRuntime, authority_id: int, size: int) -> int:
    numbers = runtime.partition_numbers
    partition = numbers.take(authority_id, size)
    if partition is None:
        wanted = numbers.claim_size(authority_id)
        partition, count = _claim_block(runtime.engine(), authority_id, size, wanted)
        numbers.keep(authority_id, partition=partition, count=count - 1, size=size)
    return partition


_PUBLISHED = select(PartitionCrl.crl_number).where(
    PartitionCrl.authority_id == bindparam("of_authority"),
    PartitionCrl.partition == bindparam("of_partition"),
)
# Partitions whose CRL the session's current transaction published: seen again before the
# commit, they are not yet known to be there for good.
_PUBLISHED_HERE = "ca_admin.crl_partitions.published_here"


def assign(*, session: Session, runtime: CaRuntime, authority_id: int, actor: str) -> int | None:
    """The partition of the next certificate ``authority_id`` signs (None: partitions are off,
    the certificate names the full CRL); publishes the partition's first CRL if needed."""
    size = runtime.crl_partition_size
    if size <= 0:
        return None
    if session.get_bind().dialect.name == "sqlite":
        partition = _claim(session.connection(), authority_id, size)
    else:
        partition = _take_number(runtime, authority_id, size)
    numbers = runtime.partition_numbers
    if numbers.known_published(authority_id, partition):
        return partition
    published = session.scalar(
        _PUBLISHED, {"of_authority": authority_id, "of_partition": partition}
    )
    published_here: set[tuple[int, int]] = session.info.setdefault(_PUBLISHED_HERE, set())
    if published is None:
        authority = session.get(Authority, authority_id)
        assert authority is not None
        crl.publish(
            session=session,
            runtime=runtime,
            authority=authority,
            actor=actor,
            cause="partition_opened",
            partition=partition,
        )
        published_here.add((authority_id, partition))
    elif (authority_id, partition) not in published_here:
        numbers.saw_published(authority_id, partition)
    return partition


def upcoming(*, session: Session, runtime: CaRuntime, authority_id: int) -> int | None:
    """The partition :func:`assign` would give now, read without claiming it (a preview)."""
    size = runtime.crl_partition_size
    if size <= 0:
        return None
    claimed = runtime.partition_numbers.peek(authority_id, size)
    if claimed is not None:
        return claimed
    fill = session.get(PartitionFill, authority_id)
    if fill is None:
        return 1
    return fill.partition + 1 if fill.assigned >= size else fill.partition


def summary(session: Session, authority_id: int) -> list[tuple[PartitionCrl, int]]:
    """Each published partition of the CA with the number of certificates naming it."""
    counts = {
        partition: certificates
        for partition, certificates in session.execute(
            select(IssuedCertificate.crl_partition, func.count())
            .where(
                IssuedCertificate.authority_id == authority_id,
                IssuedCertificate.crl_partition.is_not(None),
            )
            .group_by(IssuedCertificate.crl_partition)
        )
    }
    partitions = session.scalars(
        select(PartitionCrl)
        .where(PartitionCrl.authority_id == authority_id)
        .order_by(PartitionCrl.partition)
    )
    return [(partition, counts.get(partition.partition, 0)) for partition in partitions]
