"""Tables of the certificate authority (prefix ``ca_``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime


class Authority(Base):
    """A CA of ours: the root (its key may live offline) or an issuing CA.

    Several issuing CAs may be active at once during a rollover; new certificates come from
    the newest active one. The OCSP-signing certificate and key of an issuing CA are kept here
    because the responder needs them on every request.
    """

    __tablename__ = "ca_authority"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # URL-safe slug
    role: Mapped[str] = mapped_column(String(16))  # "root" | "issuing"
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("ca_authority.id"))
    key_uri: Mapped[str] = mapped_column(String(500))
    key_algorithm: Mapped[str] = mapped_column(String(16))
    signature_scheme: Mapped[str] = mapped_column(String(16), default="pkcs1v15")  # | "pss"
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(String(500))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    ocsp_key_uri: Mapped[str | None] = mapped_column(String(500))
    ocsp_certificate_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    crl_number: Mapped[int] = mapped_column(Integer, default=0)
    # A change (revocation, hold, release) not yet in a signed CRL: the key was unavailable.
    crl_pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Since when the full CRL lacks a change of a partitioned certificate: the revocation signed
    # the partition CRL its CRLDP names and left the full CRL to the maintenance pass
    # (ca_admin.crl.refresh_due), which signs it within ``CaRuntime.full_crl_max_delay``.
    full_crl_stale_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CertificateRequest(Base):
    """A request for a certificate, waiting for the RA step (approval) or already decided.

    ``identity`` is the official's verified data at request time (from the IdP, never from
    the CSR); the certificate subject is built from it.
    """

    __tablename__ = "ca_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32), unique=True)
    profile: Mapped[str] = mapped_column(String(64))
    subject_ref: Mapped[str] = mapped_column(String(64), index=True)  # the official's `sub`
    unit_code: Mapped[str | None] = mapped_column(String(8), index=True)
    identity: Mapped[dict[str, Any]] = mapped_column(JSON)
    csr_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    server_keygen: Mapped[bool] = mapped_column(Boolean, default=False)
    validity_days: Mapped[int] = mapped_column(Integer)
    renewal_of_id: Mapped[int | None] = mapped_column(ForeignKey("ca_certificate.id"))
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A client-chosen key makes a double submit return the first request instead of a second.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending|approved|rejected|issued
    approvals_required: Mapped[int] = mapped_column(Integer)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("ca_certificate.id"))


class Approval(Base):
    __tablename__ = "ca_approval"
    __table_args__ = (UniqueConstraint("request_id", "approver", name="uq_ca_approval_approver"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("ca_request.id"), index=True)
    approver: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class IssuedCertificate(Base):
    """Every certificate an issuing CA of ours signed. The one revocation table that both the
    CRL and the OCSP responder read, so they can never disagree (PITFALLS)."""

    __tablename__ = "ca_certificate"
    __table_args__ = (
        Index("ix_ca_certificate_revoked", "authority_id", "status"),
        # A partition CRL reads the revoked certificates of one partition (ca_admin.crl).
        Index("ix_ca_certificate_partition", "authority_id", "crl_partition", "status"),
        # The search page's "name contains" (LIKE '%…%') on a million certificates: trigrams
        # (pg_trgm) on PostgreSQL; a B-tree cannot serve it, SQLite scans.
        Index(
            "ix_ca_certificate_search_name_trgm",
            "search_name",
            postgresql_using="gin",
            postgresql_ops={"search_name": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(42), unique=True)  # lowercase hex, no leading 0s
    authority_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"))
    profile: Mapped[str] = mapped_column(String(64))
    subject_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(Text)  # RFC 4514
    common_name: Mapped[str] = mapped_column(String(200))
    search_name: Mapped[str] = mapped_column(String(200), index=True)  # folded for search
    citizen_id: Mapped[str | None] = mapped_column(String(12), index=True)
    unit_code: Mapped[str | None] = mapped_column(String(8), index=True)
    spki_sha256: Mapped[str] = mapped_column(String(64), index=True)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(8), default="good")  # good|revoked|hold
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    invalidity_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # No foreign key: ca_request already points here (certificate_id), and a cycle of foreign
    # keys would make the tables impossible to create in one order.
    request_id: Mapped[int | None] = mapped_column(Integer)
    renewal_of_id: Mapped[int | None] = mapped_column(ForeignKey("ca_certificate.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The partition CRL whose URL the certificate's CRLDP names (ca_admin.crl_partitions);
    # None: the full CRL (certificates issued before partitions, CA certificates, OCSP signers).
    crl_partition: Mapped[int | None] = mapped_column(Integer)


class PublishedCrl(Base):
    """The current full CRL of an issuing CA (older ones are not served, so not kept)."""

    __tablename__ = "ca_crl"

    authority_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"), primary_key=True)
    crl_number: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime())
    next_update: Mapped[datetime] = mapped_column(UTCDateTime())
    entries: Mapped[int] = mapped_column(Integer)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class PartitionCrl(Base):
    """The current CRL of one partition of an issuing CA's certificates (RFC 5280 §5.2.5).

    Published when the partition opens (empty), on every status change of one of its
    certificates and on schedule, with the issuer's one CRL number sequence (ca_admin.crl).
    """

    __tablename__ = "ca_crl_partition"

    authority_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    crl_number: Mapped[int] = mapped_column(Integer)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime())
    next_update: Mapped[datetime] = mapped_column(UTCDateTime())
    entries: Mapped[int] = mapped_column(Integer)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    # A change not yet in a signed CRL of this partition: the CA key was unavailable.
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PartitionFill(Base):
    """Which partition new certificates of an issuing CA go to, and how many it holds.

    Its own row, not a column of ``ca_authority``: an issuance holds this row's lock until it
    commits, and must not wait for a CRL being signed under the authority row's lock.
    """

    __tablename__ = "ca_crl_partition_fill"

    authority_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer)
    assigned: Mapped[int] = mapped_column(Integer)


class PreproducedOcspResponse(Base):
    """A signed OCSP answer for one certificate, produced before anyone asks (RFC 5019 §2.2.1,
    RFC 6960 §2.4): at issuance, at every status change in the same transaction as the change,
    and again by the maintenance worker well before nextUpdate. Requests without a nonce are
    answered with these bytes; CertID uses SHA-1, as RFC 5019 §2.1.1 clients send it.

    Keyed by serial (unique over all our CAs) so the responder reads one primary-key row. No
    foreign key to ``ca_certificate``: a renewal's certificate row is only flushed with its
    batch (issuance._store), and the answer for it may be written before that flush.
    """

    __tablename__ = "ca_ocsp_response"

    serial: Mapped[str] = mapped_column(String(42), primary_key=True)
    authority_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(8))  # good|revoked (the metric's label)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime())
    next_update: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class LifecycleCursor(Base):
    """How far the CA has read the IdP's account lifecycle feed (id of the last event)."""

    __tablename__ = "ca_lifecycle_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)


class LifecycleHold(Base):
    """A certificate the lifecycle feed put on hold because its holder's account was disabled.

    Re-enabling the account releases exactly these, never a hold an admin placed by hand.
    """

    __tablename__ = "ca_lifecycle_hold"

    certificate_id: Mapped[int] = mapped_column(ForeignKey("ca_certificate.id"), primary_key=True)
    event_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class MergerJob(Base):
    """Re-issue and revoke the certificates naming a unit merged into another (unit_merger.py)."""

    __tablename__ = "ca_merger_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), unique=True)
    old_unit_code: Mapped[str] = mapped_column(String(8), index=True)
    new_unit_code: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(24))  # pending_approval|approved|done
    requested_by: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    approvals_required: Mapped[int] = mapped_column(Integer)
    approvers: Mapped[list[str]] = mapped_column(JSON, default=list)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    items_total: Mapped[int] = mapped_column(Integer)


class MergerItem(Base):
    """One certificate of a merger job; ``status`` turns ``done`` in the batch that handled it."""

    __tablename__ = "ca_merger_item"
    __table_args__ = (
        UniqueConstraint("job_id", "certificate_id", name="uq_ca_merger_item_certificate"),
        Index("ix_ca_merger_item_pending", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("ca_merger_job.id"))
    certificate_id: Mapped[int] = mapped_column(ForeignKey("ca_certificate.id"))
    status: Mapped[str] = mapped_column(String(16))  # pending|done
    outcome: Mapped[str | None] = mapped_column(String(16))  # reissued|revoked|skipped
    new_certificate_id: Mapped[int | None] = mapped_column(ForeignKey("ca_certificate.id"))
    note: Mapped[str | None] = mapped_column(String(500))
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReminderSent(Base):
    """An expiry reminder handled for one certificate and one threshold (30, 7 or 1 days).

    The unique pair is the claim: a worker inserts the row, then sends, then commits, so two
    workers never send the same reminder and a failed send (rolled back) is tried again later.
    """

    __tablename__ = "ca_reminder_sent"
    __table_args__ = (
        UniqueConstraint("certificate_id", "threshold_days", name="uq_ca_reminder_sent_threshold"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("ca_certificate.id"))
    threshold_days: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # sent | no_address (the official has no e-mail) | covered (a nearer threshold's message
    # went out in the same pass, e.g. after the service was down for weeks)
    outcome: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(320))


class TimeStampingUnit(Base):
    """A TSA key and its certificate (RFC 3161 §2.3), issued by one of our issuing CAs.

    Tokens are signed by the newest active unit; an older one stays here so its tokens' serials
    and certificate remain known.
    """

    __tablename__ = "ca_tsa_unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # slug, in the certificate's CN
    authority_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"))  # its issuer
    key_uri: Mapped[str] = mapped_column(String(500))
    key_algorithm: Mapped[str] = mapped_column(String(16))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    serial: Mapped[str] = mapped_column(String(42))  # the certificate's, as ca_certificate.serial
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TimeStampToken(Base):
    """One time-stamp token we signed (RFC 3161 §2.4.2): its serial is the primary key, so
    no two tokens of any worker or host share one (§2.4.2: "unique for each TimeStampToken")."""

    __tablename__ = "ca_tsa_token"

    serial: Mapped[str] = mapped_column(String(42), primary_key=True)  # lowercase hex
    unit_id: Mapped[int] = mapped_column(ForeignKey("ca_tsa_unit.id"))
    gen_time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    policy: Mapped[str] = mapped_column(String(200))
    hash_algorithm: Mapped[str] = mapped_column(String(16))
    message_imprint: Mapped[str] = mapped_column(String(128))  # hex
    client_address: Mapped[str | None] = mapped_column(String(64))
