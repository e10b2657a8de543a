"""Which CRL partition a new certificate belongs to (RFC 5280 §5.2.5, issue 18).

At national scale one CRL would list 300,000 revoked certificates (15 MB, seconds to sign on
every revocation, downloaded whole by every relying party). Each certificate an issuing CA
signs is therefore given a partition at issuance and its CRLDP names that partition's CRL;
partitions fill one after the other, ``CaRuntime.crl_partition_size`` certificates each
(100,000 by default), so a partition CRL never lists more than that, and the certificates of
one partition expire at about the same time.

The fill counter is one row per issuing CA (``ca_crl_partition_fill``) locked by the issuance
until it commits: each number is handed out once, so no partition overfills. A rolled-back
issuance leaves a gap, which only makes its partition smaller. A partition's first certificate
publishes its (empty) CRL in the same transaction, so the URL the certificate names answers
from the moment the certificate exists.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_admin import crl
from ca_admin.models import Authority, IssuedCertificate, PartitionCrl, PartitionFill
from ca_admin.runtime import CaRuntime


def _locked_fill(session: Session, authority_id: int) -> PartitionFill:
    fill = session.get(PartitionFill, authority_id, with_for_update=True)
    if fill is not None:
        return fill
    try:
        with session.begin_nested():  # a concurrent first issuance may insert the row first
            session.add(PartitionFill(authority_id=authority_id, partition=1, assigned=0))
    except IntegrityError:
        pass
    fill = session.get(PartitionFill, authority_id, with_for_update=True, populate_existing=True)
    assert fill is not None
    return fill


def assign(*, session: Session, runtime: CaRuntime, authority_id: int, actor: str) -> int | None:
    """The partition of the next certificate ``authority_id`` signs (None: partitions are off,
    the certificate names the full CRL); publishes the partition's first CRL when it opens."""
    size = runtime.crl_partition_size
    if size <= 0:
        return None
    fill = _locked_fill(session, authority_id)
    if fill.assigned >= size:
        fill.partition += 1
        fill.assigned = 0
    fill.assigned += 1
    if fill.assigned == 1:
        authority = session.get(Authority, authority_id)
        assert authority is not None
        crl.publish(
            session=session,
            runtime=runtime,
            authority=authority,
            actor=actor,
            cause="partition_opened",
            partition=fill.partition,
        )
    return fill.partition


def upcoming(*, session: Session, runtime: CaRuntime, authority_id: int) -> int | None:
    """The partition :func:`assign` would give now, read without claiming it (a preview)."""
    size = runtime.crl_partition_size
    if size <= 0:
        return None
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
