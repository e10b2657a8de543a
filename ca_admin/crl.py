"""CRLs per CA (RFC 5280 §5), built in O(n) from the one revocation table: the full CRL, and
for an issuing CA one CRL per partition of its certificates (ca_admin.crl_partitions).

A partition CRL carries a critical issuingDistributionPoint (§5.2.5) whose distributionPoint is
the partition's URL, the very name the CRLDP of its certificates carries, and
onlyContainsUserCerts (an issuing CA's partitions hold end-entity certificates only). The full
CRL has no issuingDistributionPoint: a CRL without one covers every certificate of the issuer
(§6.3.3 b), so a relying party may use it for a partitioned certificate too, and certificates
issued before partitions (whose CRLDP names the full CRL's URL) keep matching it. With an IDP
naming the full URL, §6.3.3 (b)(2)(i) would make it useless for partitioned certificates.

A status change signs at once the CRLs its certificates' CRLDPs name (ca_admin.revocation
.publish_crls); the full CRL, when only partitioned certificates changed, is marked stale
(:func:`mark_full_crl_stale`) and signed by the maintenance pass (:func:`refresh_due`) within
``CaRuntime.full_crl_max_delay``: at national scale it lists 300,000 entries and takes seconds to
sign, which no revocation should wait for.

CRL numbers: one sequence per issuer (``ca_authority.crl_number``) shared by the full CRL and
every partition CRL. §5.2.3 asks for numbers that increase within one scope (issuer + IDP); a
subsequence of one increasing sequence increases, and a number then names exactly one CRL of the
issuer (an audit record, a support question), with no counter per partition to keep.

The revoked list is passed to the builder's constructor in one go: adding entries one by one
copies the immutable builder each time, quadratic in the number of entries (PITFALLS).
``crlNumber`` only grows; an empty list leaves ``revokedCertificates`` out entirely, which
``cryptography`` does for us. A reason of ``unspecified`` is omitted (§5.3.1: SHOULD be absent).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import DateTime, select, type_coerce
from sqlalchemy.orm import Session

from ca_admin.models import Authority, IssuedCertificate, PartitionCrl, PartitionFill, PublishedCrl
from ca_admin.runtime import CaRuntime
from ca_admin.signing import signature_parameters
from core import audit
from keys.errors import KeyUnavailable

log = logging.getLogger(__name__)

REVOKED_STATUSES = ("revoked", "hold")


def revoked_entries(
    session: Session, authority_id: int, partition: int | None = None
) -> list[x509.RevokedCertificate]:
    """Every revoked or held certificate of the CA (of one partition of it, if given) as a CRL
    entry, O(n).

    Read through the Core connection in one fetch (no ORM identity map for 100,000 rows), the
    dates as the driver's plain datetimes (naive UTC on SQLite: cryptography reads naive as UTC)
    rather than through UTCDateTime's per-value Python step, and each entry built with its
    constructor and shared, prebuilt reason extensions (the chained builder copies itself at
    every call).
    """
    query = select(
        IssuedCertificate.serial,
        type_coerce(IssuedCertificate.revoked_at, DateTime(timezone=True)),
        IssuedCertificate.revocation_reason,
        type_coerce(IssuedCertificate.invalidity_date, DateTime(timezone=True)),
    ).where(
        IssuedCertificate.authority_id == authority_id,
        IssuedCertificate.status.in_(REVOKED_STATUSES),
    )
    if partition is not None:
        query = query.where(IssuedCertificate.crl_partition == partition)
    rows = session.connection().execute(query).all()
    reasons: dict[str, x509.Extension[x509.ExtensionType]] = {
        flag.value: x509.Extension(x509.CRLReason.oid, False, x509.CRLReason(flag))
        for flag in x509.ReasonFlags
        if flag is not x509.ReasonFlags.unspecified
    }
    entries = []
    for serial, revoked_at, reason, invalidity_date in rows:
        extensions: list[x509.Extension[x509.ExtensionType]] = (
            [reasons[reason]] if reason in reasons else []
        )
        if invalidity_date is not None:
            extensions.append(
                x509.Extension(x509.InvalidityDate.oid, False, x509.InvalidityDate(invalidity_date))
            )
        entries.append(
            x509.RevokedCertificateBuilder(
                serial_number=int(serial, 16), revocation_date=revoked_at, extensions=extensions
            ).build()
        )
    return entries


def partition_scope(url: str) -> x509.IssuingDistributionPoint:
    """The issuingDistributionPoint of a partition CRL: the partition's URL as the certificates'
    CRLDP names it (§6.3.3 b(2)(i) matches the two), end-entity certificates only."""
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        only_contains_user_certs=True,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )


def build(
    *,
    session: Session,
    runtime: CaRuntime,
    authority: Authority,
    number: int,
    this_update: datetime,
    next_update: datetime,
    partition: int | None = None,
) -> x509.CertificateRevocationList:
    certificate = x509.load_der_x509_certificate(authority.certificate_der)
    ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    extensions: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(number)),
        x509.Extension(
            x509.AuthorityKeyIdentifier.oid,
            False,
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
        ),
    ]
    if partition is not None:
        extensions.append(
            x509.Extension(
                x509.IssuingDistributionPoint.oid,
                True,  # §5.2.5: MUST be critical
                partition_scope(runtime.crl_url(authority.name, partition)),
            )
        )
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=certificate.subject,
        last_update=this_update,
        next_update=next_update,
        extensions=extensions,
        revoked_certificates=revoked_entries(session, authority.id, partition),
    )
    key = runtime.key_store.get(authority.key_uri)
    params = signature_parameters(key, authority.signature_scheme)
    return builder.sign(key, params.algorithm, rsa_padding=params.rsa_padding)


def publish(
    *,
    session: Session,
    runtime: CaRuntime,
    authority: Authority,
    actor: str,
    lifetime: timedelta | None = None,
    cause: str = "revocation",
    partition: int | None = None,
) -> PublishedCrl | PartitionCrl:
    """Build, sign and store the next CRL of ``authority`` in the caller's transaction: the full
    CRL, or with ``partition`` that partition's CRL."""
    # Row lock: two revocations committing at once must not both publish CRL number n+1.
    session.flush()  # refresh() would otherwise discard the caller's pending changes to the row
    session.refresh(authority, with_for_update=True)
    now = runtime.clock.now()
    number = authority.crl_number + 1
    lifetime = lifetime or (
        timedelta(days=365) if authority.role == "root" else runtime.crl_lifetime
    )
    next_update = min(now + lifetime, authority.not_after)
    crl = build(
        session=session,
        runtime=runtime,
        authority=authority,
        number=number,
        this_update=now,
        next_update=next_update,
        partition=partition,
    )
    authority.crl_number = number
    stored: PublishedCrl | PartitionCrl | None
    if partition is None:
        authority.crl_pending_since = None
        authority.full_crl_stale_since = None  # it lists every change committed before the lock
        stored = session.get(PublishedCrl, authority.id)
        if stored is None:
            stored = PublishedCrl(authority_id=authority.id)
            session.add(stored)
    else:
        stored = session.get(PartitionCrl, (authority.id, partition))
        if stored is None:
            stored = PartitionCrl(authority_id=authority.id, partition=partition)
            session.add(stored)
        stored.pending_since = None
    entries = len(crl)
    der = crl.public_bytes(Encoding.DER)
    stored.crl_number = number
    stored.this_update = now
    stored.next_update = next_update
    stored.entries = entries
    stored.der = der
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.crl.published",
        target=f"ca:{authority.name}",
        details={
            "crl_number": number,
            "partition": partition,
            "entries": entries,
            "bytes": len(der),
            "next_update": next_update.isoformat(),
            "cause": cause,
            "key_used": authority.name,
        },
    )
    return stored


def publish_or_defer(
    *,
    session: Session,
    runtime: CaRuntime,
    authority: Authority,
    actor: str,
    cause: str,
    partition: int | None = None,
) -> PublishedCrl | PartitionCrl | None:
    """:func:`publish`, or with the CA key unavailable (an HSM token pulled or unreachable),
    record that this CRL (full, or of ``partition``) is owed and audit it: the change that
    needs the CRL still commits, and the maintenance pass (:func:`refresh_due`) signs the CRL
    as soon as the key is back."""
    try:
        # publish() signs before it writes anything: a refusal of the key leaves no trace.
        return publish(
            session=session,
            runtime=runtime,
            authority=authority,
            actor=actor,
            cause=cause,
            partition=partition,
        )
    except KeyUnavailable as error:
        log.warning(
            "CRL of %s (partition %s) deferred: the CA key is unavailable (%s)",
            authority.name,
            partition,
            error,
        )
        owed_since = _mark_owed(session, runtime, authority, partition)
        if owed_since is None:
            return None  # already owed and audited: the maintenance pass retries quietly
        audit.record(
            session,
            clock=runtime.clock,
            actor=actor,
            action="ca.crl.deferred",
            target=f"ca:{authority.name}",
            details={
                "cause": cause,
                "partition": partition,
                "pending_since": owed_since.isoformat(),
                "error": str(error)[:300],
            },
        )
        return None


def mark_full_crl_stale(*, session: Session, runtime: CaRuntime, authority: Authority) -> None:
    """Record that the full CRL lacks a change the caller's transaction makes (a partitioned
    certificate's revocation, hold or release), for :func:`refresh_due` to sign it within
    ``runtime.full_crl_max_delay``; the earliest such change counts.

    Under the authority row's lock, the lock :func:`publish` takes to sign: a full CRL signed
    concurrently either committed before (and this marks it stale again) or waits for this
    transaction's commit (and then lists the change and clears the mark).
    """
    session.flush()  # refresh() would otherwise discard the caller's pending changes to the row
    session.refresh(authority, with_for_update=True)
    if authority.full_crl_stale_since is None:
        authority.full_crl_stale_since = runtime.clock.now()


def _mark_owed(
    session: Session, runtime: CaRuntime, authority: Authority, partition: int | None
) -> datetime | None:
    """Record since when the CRL (full, or of ``partition``) is owed; None if it already was."""
    now = runtime.clock.now()
    if partition is None:
        if authority.crl_pending_since is not None:
            return None
        authority.crl_pending_since = now
        return now
    row = session.get(PartitionCrl, (authority.id, partition))
    # No row: a partition never published. None opens without the key (crl_partitions.assign).
    if row is None or row.pending_since is not None:
        return None
    row.pending_since = now
    return now


def _full_crl_due(
    session: Session, runtime: CaRuntime, authority: Authority, pass_interval: timedelta
) -> str | None:
    """Why the full CRL of ``authority`` is to be signed by this pass (the ``cause`` of its
    audit entry), or None.

    A full CRL behind a partitioned certificate's change (:func:`mark_full_crl_stale`) is signed
    by the last pass that starts before ``full_crl_max_delay`` runs out: with a pass every
    ``pass_interval`` (at most that delay), the next one would be late.
    """
    now = runtime.clock.now()
    if authority.crl_pending_since is not None:
        return "backlog"
    stale_since = authority.full_crl_stale_since
    if stale_since is not None and now - stale_since >= runtime.full_crl_max_delay - pass_interval:
        return "catch_up"
    # A column, not the row: the full CRL's DER runs to megabytes at national scale.
    next_update = session.scalar(
        select(PublishedCrl.next_update).where(PublishedCrl.authority_id == authority.id)
    )
    if next_update is None or next_update - now <= runtime.crl_refresh_before:
        return "schedule"
    return None


def refresh_due(
    *, session: Session, runtime: CaRuntime, actor: str, pass_interval: timedelta
) -> list[PublishedCrl | PartitionCrl]:
    """Re-sign every online CA's CRL (the full one and each partition's) that is within
    ``crl_refresh_before`` of its nextUpdate, or that owes a change (:func:`publish_or_defer`);
    and a full CRL left behind by partitioned certificates' changes before
    ``full_crl_max_delay`` runs out (:func:`mark_full_crl_stale`; this pass runs every
    ``pass_interval``).

    The full CRL's reason is read again under the authority row's lock: every serving process
    runs this pass, and at national scale the full CRL takes seconds to sign, under the lock
    every revocation of the CA waits for; the processes after the first find nothing to do.

    The root is skipped: its key is meant to be offline, and its CRL lives a year. A partition
    whose certificates have all expired is still re-signed: its URL stays in their CRLDP.
    """
    now = runtime.clock.now()
    refreshed: list[PublishedCrl | PartitionCrl] = []
    for authority in session.scalars(select(Authority).where(Authority.role == "issuing")):
        scopes: list[tuple[int | None, str]] = []
        if _full_crl_due(session, runtime, authority, pass_interval) is not None:
            session.flush()
            session.refresh(authority, with_for_update=True)
            full_cause = _full_crl_due(session, runtime, authority, pass_interval)
            if full_cause is not None:
                scopes.append((None, full_cause))
        # Columns only: the partitions' DER (megabytes) is not needed to decide.
        known = {
            partition: (pending_since is not None, next_update)
            for partition, pending_since, next_update in session.execute(
                select(
                    PartitionCrl.partition, PartitionCrl.pending_since, PartitionCrl.next_update
                ).where(PartitionCrl.authority_id == authority.id)
            )
        }
        # A partition handed out without a CRL (its opening issuance rolled back, rows loaded
        # in bulk by bench/ca_scale_data.py) is owed one.
        fill = session.get(PartitionFill, authority.id)
        opened = set(range(1, fill.partition + 1)) if fill is not None else set()
        for partition in sorted(opened | set(known)):
            owed, next_update = known.get(partition, (True, None))
            if owed or next_update is None or next_update - now <= runtime.crl_refresh_before:
                scopes.append((partition, "backlog" if owed else "schedule"))
        for scope, cause in scopes:
            published = publish_or_defer(
                session=session,
                runtime=runtime,
                authority=authority,
                actor=actor,
                cause=cause,
                partition=scope,
            )
            if published is not None:
                refreshed.append(published)
    return refreshed
