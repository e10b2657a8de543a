"""Full CRLs per CA (RFC 5280 §5), built in O(n) from the one revocation table.

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
from sqlalchemy import select
from sqlalchemy.orm import Session

from ca_admin.models import Authority, IssuedCertificate, PublishedCrl
from ca_admin.runtime import CaRuntime
from ca_admin.signing import signature_parameters
from core import audit
from keys.errors import KeyUnavailable

log = logging.getLogger(__name__)

REVOKED_STATUSES = ("revoked", "hold")


def revoked_entries(session: Session, authority_id: int) -> list[x509.RevokedCertificate]:
    """Every revoked or held certificate of the CA as a CRL entry, O(n).

    Read through the Core connection (no ORM identity map for 70,000 rows), and each entry built
    with its constructor and shared, prebuilt reason extensions (the chained builder copies
    itself at every call).
    """
    rows = session.connection().execute(
        select(
            IssuedCertificate.serial,
            IssuedCertificate.revoked_at,
            IssuedCertificate.revocation_reason,
            IssuedCertificate.invalidity_date,
        ).where(
            IssuedCertificate.authority_id == authority_id,
            IssuedCertificate.status.in_(REVOKED_STATUSES),
        )
    )
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


def build(
    *,
    session: Session,
    runtime: CaRuntime,
    authority: Authority,
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> x509.CertificateRevocationList:
    certificate = x509.load_der_x509_certificate(authority.certificate_der)
    ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=certificate.subject,
        last_update=this_update,
        next_update=next_update,
        extensions=[
            x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(number)),
            x509.Extension(
                x509.AuthorityKeyIdentifier.oid,
                False,
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            ),
        ],
        revoked_certificates=revoked_entries(session, authority.id),
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
) -> PublishedCrl:
    """Build, sign and store the next CRL of ``authority`` in the caller's transaction."""
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
    )
    authority.crl_number = number
    authority.crl_pending_since = None
    published = session.get(PublishedCrl, authority.id)
    entries = len(crl)
    der = crl.public_bytes(Encoding.DER)
    if published is None:
        published = PublishedCrl(authority_id=authority.id)
        session.add(published)
    published.crl_number = number
    published.this_update = now
    published.next_update = next_update
    published.entries = entries
    published.der = der
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.crl.published",
        target=f"ca:{authority.name}",
        details={
            "crl_number": number,
            "entries": entries,
            "bytes": len(der),
            "next_update": next_update.isoformat(),
            "cause": cause,
            "key_used": authority.name,
        },
    )
    return published


def publish_or_defer(
    *, session: Session, runtime: CaRuntime, authority: Authority, actor: str, cause: str
) -> PublishedCrl | None:
    """:func:`publish`, or with the CA key unavailable (an HSM token pulled or unreachable),
    record that a CRL is owed and audit it: the change that needs the CRL still commits, and
    the maintenance pass (:func:`refresh_due`) signs the CRL as soon as the key is back."""
    try:
        # publish() signs before it writes anything: a refusal of the key leaves no trace.
        return publish(
            session=session, runtime=runtime, authority=authority, actor=actor, cause=cause
        )
    except KeyUnavailable as error:
        log.warning("CRL of %s deferred: the CA key is unavailable (%s)", authority.name, error)
        if authority.crl_pending_since is not None:
            return None  # already owed and audited: the maintenance pass retries quietly
        authority.crl_pending_since = runtime.clock.now()
        audit.record(
            session,
            clock=runtime.clock,
            actor=actor,
            action="ca.crl.deferred",
            target=f"ca:{authority.name}",
            details={
                "cause": cause,
                "pending_since": authority.crl_pending_since.isoformat(),
                "error": str(error)[:300],
            },
        )
        return None


def refresh_due(*, session: Session, runtime: CaRuntime, actor: str) -> list[PublishedCrl]:
    """Re-sign every online CA's CRL that is within ``crl_refresh_before`` of its nextUpdate,
    or that owes a change (:func:`publish_or_defer`).

    The root is skipped: its key is meant to be offline, and its CRL lives a year.
    """
    now = runtime.clock.now()
    refreshed = []
    for authority in session.scalars(select(Authority).where(Authority.role == "issuing")):
        current = session.get(PublishedCrl, authority.id)
        owed = authority.crl_pending_since is not None
        if owed or current is None or current.next_update - now <= runtime.crl_refresh_before:
            published = publish_or_defer(
                session=session,
                runtime=runtime,
                authority=authority,
                actor=actor,
                cause="backlog" if owed else "schedule",
            )
            if published is not None:
                refreshed.append(published)
    return refreshed
