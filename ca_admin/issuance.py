"""Signing a certificate for a verified official under a profile (RFC 5280 §4.1).

The subject and extensions come from the profile and the official's verified data; the CSR
contributes only its public key (already checked by key_policy). Validity: the requested days,
capped by the profile (5 years new, 3 years renewal) and by the issuing CA's own notAfter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from ca_admin import crl_partitions
from ca_admin.errors import BadCertificateRequest, PolicyViolation
from ca_admin.hierarchy import BACKDATE, current_issuer
from ca_admin.key_policy import SubjectPublicKey, check_public_key, spki_sha256
from ca_admin.models import IssuedCertificate
from ca_admin.officials import OfficialIdentity
from ca_admin.profiles import IssuanceContext, Profile, dn_text
from ca_admin.runtime import CaRuntime, LoadedAuthority
from ca_admin.serials import new_serial, serial_hex
from ca_admin.signing import signature_parameters
from core import audit
from core.metrics import CERTIFICATES_ISSUED
from core.text_search import fold_for_search
from core.web.i18n import N_


@dataclass(frozen=True)
class IssueOrder:
    profile: Profile
    identity: OfficialIdentity
    public_key: SubjectPublicKey
    validity_days: int | None = None
    renewal_of: IssuedCertificate | None = None
    request_id: int | None = None
    device_name: str | None = None


def allowed_validity_days(profile: Profile, requested: int | None, *, renewal: bool) -> int:
    limit = profile.max_renewal_validity_days if renewal else profile.max_validity_days
    days = requested or min(profile.default_validity_days, limit)
    if not 1 <= days <= limit:
        raise PolicyViolation(
            N_("The validity must be between 1 and %(limit)s days for this certificate."),
            field="validity_days",
            limit=limit,
        )
    return days


_KEY_IN_USE_MESSAGE = N_(
    "This public key is already used by another certificate: generate a new key."
)


def check_key_not_reused(
    session: Session, public_key: SubjectPublicKey, renewal_of: IssuedCertificate | None
) -> str:
    """A key certified once may be certified again only by renewing that same certificate.

    Asked when a request is submitted, so the official hears it at once; :func:`issue` enforces
    it again in the insert itself.
    """
    fingerprint = spki_sha256(public_key)
    if _renews_with_its_key(renewal_of, fingerprint):
        return fingerprint  # other users of the key cannot matter
    if session.connection().scalar(_KEY_IN_USE, {"spki_sha256": fingerprint}) is not None:
        raise BadCertificateRequest(_KEY_IN_USE_MESSAGE, field="csr")
    return fingerprint


def _renews_with_its_key(renewal_of: IssuedCertificate | None, fingerprint: str) -> bool:
    return renewal_of is not None and renewal_of.spki_sha256 == fingerprint


_CERTIFICATES = cast(Table, IssuedCertificate.__table__)
_STORED_COLUMNS = [column for column in _CERTIFICATES.c if column.name != "id"]
_KEY_IN_USE = (
    select(_CERTIFICATES.c.id)
    .where(_CERTIFICATES.c.spki_sha256 == bindparam("spki_sha256"))
    .limit(1)
)
# The key-reuse check and the insert in one statement: the row goes in only if no certificate
# has the key yet (RETURNING gives nothing otherwise). Certificates issued earlier in the same
# transaction are already rows, so a batch is checked against itself too.
_INSERT_UNLESS_KEY_USED = (
    insert(_CERTIFICATES)
    .from_select(
        [column.name for column in _STORED_COLUMNS],
        select(*(bindparam(column.name, type_=column.type) for column in _STORED_COLUMNS)).where(
            ~_KEY_IN_USE.exists()
        ),
    )
    .returning(_CERTIFICATES.c.id)
)


def _store(session: Session, issued: IssuedCertificate, *, key_kept_by_renewal: bool) -> None:
    """Store ``issued`` in the caller's transaction, refusing a key another certificate has.

    A fresh key is inserted at once with the check (one round trip, no unit-of-work flush); a
    renewal that keeps its key needs no check and is left to the session's flush, which inserts
    a batch of them (a unit merger's re-issue) in one statement. A certificate refused here was
    signed but never leaves this process: it is not stored, returned or published.
    """
    if key_kept_by_renewal:
        session.add(issued)
        return
    values = {column.name: getattr(issued, column.key) for column in _STORED_COLUMNS}
    stored_id = session.connection().scalar(_INSERT_UNLESS_KEY_USED, values)
    if stored_id is None:
        raise BadCertificateRequest(_KEY_IN_USE_MESSAGE, field="csr")
    issued.id = stored_id
    # The row exists: the object joins the session as if it had been loaded from it.
    make_transient_to_detached(issued)
    session.add(issued)


def _to_be_signed(
    session: Session, runtime: CaRuntime, order: IssueOrder, *, claim_partition_for: str | None
) -> tuple[x509.CertificateBuilder, LoadedAuthority, int, int | None]:
    """The certificate ``order`` asks for, ready to sign: issuer, subject, extensions, dates,
    and its CRL partition: claimed for the actor ``claim_partition_for`` names, or with None
    only looked at (a preview claims nothing)."""
    days = allowed_validity_days(
        order.profile, order.validity_days, renewal=order.renewal_of is not None
    )
    issuer = current_issuer(session, runtime)
    if claim_partition_for is None:
        partition = crl_partitions.upcoming(
            session=session, runtime=runtime, authority_id=issuer.id
        )
    else:
        partition = crl_partitions.assign(
            session=session, runtime=runtime, authority_id=issuer.id, actor=claim_partition_for
        )
    now = runtime.clock.now()
    not_after = min(now + timedelta(days=days), issuer.certificate.not_valid_after_utc)
    context = IssuanceContext(
        identity=order.identity,
        public_key=order.public_key,
        issuer=issuer.certificate,
        urls=runtime.status_urls(issuer.name, partition),
        not_before=now - BACKDATE,
        not_after=not_after,
        device_name=order.device_name,
        default_organisation=runtime.organisation_name,
    )
    serial = new_serial()
    builder = (
        x509.CertificateBuilder()
        .issuer_name(issuer.certificate.subject)
        .public_key(order.public_key)
        .serial_number(serial)
        .not_valid_before(context.not_before)
        .not_valid_after(not_after)
    )
    return order.profile.apply(context, builder), issuer, serial, partition


def preview(*, session: Session, runtime: CaRuntime, order: IssueOrder) -> x509.Certificate:
    """What :func:`issue` would sign now (subject, extensions, validity), signed by a throwaway
    key instead of the CA's: the approver reads the very certificate they are asked to allow,
    built by the same steps, and nothing is stored, audited or trusted by anyone."""
    builder, _issuer, _serial, _partition = _to_be_signed(
        session, runtime, order, claim_partition_for=None
    )
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())


def issue(
    *, session: Session, runtime: CaRuntime, actor: str, order: IssueOrder
) -> IssuedCertificate:
    """Sign, store and audit one certificate in the caller's transaction.

    Its pre-produced OCSP answer comes from the next maintenance pass, not from here."""
    check_public_key(order.public_key)
    fingerprint = spki_sha256(order.public_key)
    builder, issuer, serial, partition = _to_be_signed(
        session, runtime, order, claim_partition_for=actor
    )
    now = runtime.clock.now()
    key = runtime.key_store.get(issuer.key_uri)
    params = signature_parameters(key, issuer.signature_scheme)
    certificate = builder.sign(key, params.algorithm, rsa_padding=params.rsa_padding)
    common_name = str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
    issued = IssuedCertificate(
        serial=serial_hex(serial),
        authority_id=issuer.id,
        profile=order.profile.name,
        subject_ref=order.identity.subject_ref,
        subject=dn_text(certificate.subject),
        common_name=common_name,
        search_name=fold_for_search(common_name),
        citizen_id=order.identity.citizen_id,
        unit_code=order.identity.unit_code,
        spki_sha256=fingerprint,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        der=certificate.public_bytes(Encoding.DER),
        status="good",
        request_id=order.request_id,
        renewal_of_id=order.renewal_of.id if order.renewal_of else None,
        issued_at=now,
        crl_partition=partition,
    )
    _store(session, issued, key_kept_by_renewal=_renews_with_its_key(order.renewal_of, fingerprint))
    # No pre-produced OCSP answer here: the maintenance pass signs it (ca_admin.preproduced_ocsp),
    # and until then the responder signs "good" live. The OCSP signer's RSA-2048 signature
    # would nearly double the cost of a P-256 issuance (issue 15: ≥ 1,000/s).
    CERTIFICATES_ISSUED.inc()
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.certificate.issued",
        target=f"cert:{issued.serial}",
        details={
            "profile": order.profile.name,
            "subject": issued.subject,
            "subject_ref": order.identity.subject_ref,
            "not_after": issued.not_after.isoformat(),
            "renewal_of": order.renewal_of.serial if order.renewal_of else None,
            "spki_sha256": fingerprint,
            "key_used": issuer.name,
        },
    )
    return issued
