"""Revocation (RFC 5280 §5.3.1 reason codes), certificate hold and release.

Every status change signs the certificate's pre-produced OCSP answer again and re-publishes the
CRL the certificate's CRLDP names (its partition's, or the issuer's full CRL) in the same
transaction, so that CRL, the OCSP answers (stored or signed live from the same table) and the
audit record change together. A partitioned certificate's change reaches the full CRL through
the maintenance pass, within ``CaRuntime.full_crl_max_delay`` (:func:`publish_crls`).
Revoking an expired certificate is allowed (a signature made before expiry may still be judged).
A revoked certificate's reason may later become keyCompromise (:func:`revoke`), never another.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ca_admin import crl, preproduced_ocsp
from ca_admin.errors import AlreadyRevoked, PolicyViolation, UnknownCertificate
from ca_admin.models import Authority, IssuedCertificate
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial, parse_serial, serial_hex
from core import audit
from core.errors import Conflict
from core.metrics import CERTIFICATES_REVOKED
from core.web.i18n import N_

# RFC 5280 §5.3.1 names; caCompromise and aACompromise concern CAs, removeFromCRL only delta CRLs.
END_ENTITY_REASONS = (
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
)


def find_certificate(
    session: Session, serial: str, *, for_update: bool = False
) -> IssuedCertificate:
    try:
        key = serial_hex(parse_serial(serial))
    except ValueError:
        raise UnknownCertificate(
            N_("%(serial)s is not a certificate serial number."), serial=serial[:64]
        ) from None
    query = select(IssuedCertificate).where(IssuedCertificate.serial == key)
    if for_update:
        query = query.with_for_update()
    certificate = session.scalar(query)
    if certificate is None:
        raise UnknownCertificate(
            N_("No certificate has serial number %(serial)s."), serial=openssl_serial(key)
        )
    return certificate


def _check_reason(reason: str) -> None:
    if reason not in END_ENTITY_REASONS:
        raise PolicyViolation(
            N_("Unknown revocation reason %(reason)s; use one of: %(reasons)s."),
            field="reason",
            reason=reason[:40],
            reasons=", ".join(END_ENTITY_REASONS),
        )


def _mark_revoked(
    *,
    session: Session,
    runtime: CaRuntime,
    actor: str,
    certificate: IssuedCertificate,
    reason: str,
    invalidity_date: datetime | None,
    details: dict[str, object] | None = None,
) -> None:
    _check_reason(reason)
    if certificate.status == "revoked" or (
        certificate.status == "hold" and reason == "certificateHold"
    ):
        raise AlreadyRevoked(
            N_("Certificate %(serial)s is already revoked."),
            serial=openssl_serial(certificate.serial),
        )
    now = runtime.clock.now()
    checked_invalidity_date = _check_invalidity_date(invalidity_date, now)
    was_on_hold = certificate.status == "hold"
    certificate.status = "hold" if reason == "certificateHold" else "revoked"
    certificate.revocation_reason = reason
    certificate.invalidity_date = checked_invalidity_date
    certificate.revoked_at = now.replace(microsecond=0)
    CERTIFICATES_REVOKED.labels(reason).inc()  # reason is one of RFC 5280's (checked above)
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.certificate.held" if reason == "certificateHold" else "ca.certificate.revoked",
        target=f"cert:{certificate.serial}",
        details={
            "reason": reason,
            "invalidity_date": certificate.invalidity_date.isoformat()
            if certificate.invalidity_date
            else None,
            "subject_ref": certificate.subject_ref,
            "was_on_hold": was_on_hold,
            **(details or {}),
        },
    )


def revoke(
    *,
    session: Session,
    runtime: CaRuntime,
    actor: str,
    serial: str,
    reason: str,
    invalidity_date: datetime | None = None,
) -> IssuedCertificate:
    """Revoke (or hold) a certificate; a revoked one may still become ``keyCompromise``."""
    certificate = find_certificate(session, serial, for_update=True)
    if (
        certificate.status == "revoked"
        and reason == "keyCompromise"
        and certificate.revocation_reason != "keyCompromise"
    ):
        _change_to_key_compromise(
            session=session,
            runtime=runtime,
            actor=actor,
            certificate=certificate,
            invalidity_date=invalidity_date,
        )
    else:
        _mark_revoked(
            session=session,
            runtime=runtime,
            actor=actor,
            certificate=certificate,
            reason=reason,
            invalidity_date=invalidity_date,
        )
    preproduced_ocsp.produce(session=session, runtime=runtime, certificates=[certificate])
    publish_crls(session, runtime, actor, [certificate])
    return certificate


def _check_invalidity_date(invalidity_date: datetime | None, now: datetime) -> datetime | None:
    if invalidity_date is not None and invalidity_date > now:
        raise PolicyViolation(
            N_("The invalidity date cannot be in the future."), field="invalidity_date"
        )
    # RFC 5280 §5.3.2: invalidityDate says when the key was (suspected) compromised; same second
    # as the revocation carries no information and costs 25 bytes per CRL entry.
    return invalidity_date.replace(microsecond=0) if invalidity_date else None


def _change_to_key_compromise(
    *,
    session: Session,
    runtime: CaRuntime,
    actor: str,
    certificate: IssuedCertificate,
    invalidity_date: datetime | None,
) -> None:
    """A certificate revoked for another reason turns out to have a compromised key.

    RFC 5280 §5.3.1 lets a CRL entry's reason change (certificateHold is the one reason that
    may be removed; nothing forbids a later entry from naming keyCompromise), and relying
    parties need it: with keyCompromise and an invalidityDate, signatures made after that date
    fail even where a superseded certificate's would still be accepted. The revocation date
    stays; the next CRL and every OCSP answer carry the new reason.
    """
    now = runtime.clock.now()
    before = certificate.revocation_reason
    certificate.invalidity_date = _check_invalidity_date(invalidity_date, now)
    certificate.revocation_reason = "keyCompromise"
    CERTIFICATES_REVOKED.labels("keyCompromise").inc()
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.certificate.reason_changed",
        target=f"cert:{certificate.serial}",
        details={
            "from": before,
            "reason": "keyCompromise",
            "invalidity_date": certificate.invalidity_date.isoformat()
            if certificate.invalidity_date
            else None,
            "subject_ref": certificate.subject_ref,
        },
    )


def release_hold(
    *, session: Session, runtime: CaRuntime, actor: str, serial: str, republish: bool = True
) -> IssuedCertificate:
    """Take a certificate off hold (RFC 5280 §5.3.1: only certificateHold is reversible)."""
    certificate = find_certificate(session, serial, for_update=True)
    if certificate.status != "hold":
        raise Conflict(
            N_("Certificate %(serial)s is not on hold."), serial=openssl_serial(certificate.serial)
        )
    certificate.status = "good"
    certificate.revoked_at = None
    certificate.revocation_reason = None
    certificate.invalidity_date = None
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.certificate.released",
        target=f"cert:{certificate.serial}",
        details={"subject_ref": certificate.subject_ref},
    )
    preproduced_ocsp.produce(session=session, runtime=runtime, certificates=[certificate])
    if republish:
        publish_crls(session, runtime, actor, [certificate])
    return certificate


def revoke_many(
    *,
    session: Session,
    runtime: CaRuntime,
    actor: str,
    certificates: Sequence[IssuedCertificate],
    reason: str,
    details: dict[str, object] | None = None,
    republish: bool = True,
) -> list[IssuedCertificate]:
    """Revoke every still-valid certificate given (skipping revoked ones); one CRL per issuer.

    The OCSP answers are signed again here in any case. With ``republish=False`` the caller
    publishes the CRLs itself (:func:`publish_crls`) in the
    same transaction: a batch of many revocations then signs each CRL once, not once per call.
    """
    revoked = []
    for certificate in certificates:
        if certificate.status == "revoked":
            continue
        _mark_revoked(
            session=session,
            runtime=runtime,
            actor=actor,
            certificate=certificate,
            reason=reason,
            invalidity_date=None,
            details=details,
        )
        revoked.append(certificate)
    preproduced_ocsp.produce(session=session, runtime=runtime, certificates=revoked)
    if revoked and republish:
        publish_crls(session, runtime, actor, revoked)
    return revoked


def publish_crls(
    session: Session, runtime: CaRuntime, actor: str, changed: Iterable[IssuedCertificate]
) -> None:
    """Re-sign the CRLs that a relying party finds through the ``changed`` certificates' CRLDPs:
    their partitions' CRLs (ca_admin.crl_partitions), and their issuers' full CRLs for those
    whose CRLDP names the full CRL (issued before partitions, or with partitions off).

    The full CRL of a certificate that names its partition's CRL is only marked stale: at
    national scale it lists 300,000 entries and takes seconds to sign, which every revocation
    would wait for; the maintenance pass signs it within ``runtime.full_crl_max_delay``
    (ca_admin.crl.refresh_due). Other partitions are left alone.
    """
    partitions: dict[int, set[int]] = defaultdict(set)
    names_full_crl: set[int] = set()
    for certificate in changed:
        if certificate.crl_partition is None:
            names_full_crl.add(certificate.authority_id)
        else:
            partitions[certificate.authority_id].add(certificate.crl_partition)
    for authority_id in sorted(names_full_crl | set(partitions)):
        authority = session.get(Authority, authority_id)
        assert authority is not None
        full = [None] if authority_id in names_full_crl else []
        for partition in [*full, *sorted(partitions[authority_id])]:
            crl.publish_or_defer(
                session=session,
                runtime=runtime,
                authority=authority,
                actor=actor,
                cause="revocation",
                partition=partition,
            )
        if authority_id not in names_full_crl:
            crl.mark_full_crl_stale(session=session, runtime=runtime, authority=authority)
