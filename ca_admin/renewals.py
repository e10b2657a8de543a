"""What a renewal does to the certificate it renews.

Once the new certificate is issued (at the last approval for a CSR; for a key made by the server,
when the official collects it), the old one is shown "renewed" and offers no second renewal.
After ``runtime.supersede_after`` (``COMMUNE_SSO_CA_SUPERSEDE_AFTER_DAYS``, default 7 days) it is
revoked as ``superseded`` (RFC 5280 §5.3.1), by the maintenance pass or at once when the grace is
0. The default is a week of overlap: step-ca never revokes a renewed certificate and EJBCA does
so only when its profile says so, so operators expect the old certificate to keep working for a
while; a week lets an official move their signing software to the new key, and afterwards a
signature can no longer be made with the old one, which is what the official asked for.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from ca_admin import revocation
from ca_admin.models import IssuedCertificate
from ca_admin.runtime import CaRuntime

ACTOR = "ca-scheduler"
BATCH_LIMIT = 500


def renewed_ids(session: Session, certificate_ids: Collection[int]) -> set[int]:
    """Which of these certificates have a valid successor issued."""
    if not certificate_ids:
        return set()
    return set(
        session.scalars(
            select(IssuedCertificate.renewal_of_id).where(
                IssuedCertificate.renewal_of_id.in_(sorted(certificate_ids)),
                IssuedCertificate.status == "good",
            )
        )
    )


def after_renewal_issued(
    *, session: Session, runtime: CaRuntime, actor: str, renewed: IssuedCertificate
) -> None:
    """Called in the issuing transaction: supersede at once when there is no grace."""
    if runtime.supersede_after.total_seconds() <= 0 and renewed.status == "good":
        revocation.revoke_many(
            session=session,
            runtime=runtime,
            actor=actor,
            certificates=[renewed],
            reason="superseded",
            details={"cause": "renewal"},
        )


def supersede_due(*, session: Session, runtime: CaRuntime) -> list[IssuedCertificate]:
    """Revoke as superseded the valid certificates renewed at least the grace ago."""
    successor = aliased(IssuedCertificate)
    due = session.scalars(
        select(IssuedCertificate)
        .join(successor, successor.renewal_of_id == IssuedCertificate.id)
        .where(
            IssuedCertificate.status == "good",
            successor.status == "good",
            successor.issued_at <= runtime.clock.now() - runtime.supersede_after,
        )
        .order_by(IssuedCertificate.id)
        .limit(BATCH_LIMIT)
        .with_for_update(of=IssuedCertificate)
    ).all()
    return revocation.revoke_many(
        session=session,
        runtime=runtime,
        actor=ACTOR,
        certificates=list(dict.fromkeys(due)),
        reason="superseded",
        details={"cause": "renewal"},
    )
