"""The RA step: requests, approvals by a unit or province admin, rejection, issuance.

A request freezes the official's verified data (from the IdP) and the CSR. Approval is scoped
like every admin action: the approver must administer the official's unit, and may not approve
a request they made or one for their own certificate. A profile may need two different
approvers. A CSR request is issued at the last approval; a server-keygen request is issued when
the official collects the PKCS#12, so the private key is never stored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ca_admin import issuance, key_policy, pkcs12_delivery, renewals
from ca_admin.errors import (
    ApprovalRefused,
    BadCertificateRequest,
    PolicyViolation,
    RequestAlreadyDecided,
    UnknownRequest,
)
from ca_admin.hierarchy import chain_of
from ca_admin.issuance import IssueOrder
from ca_admin.models import Approval, CertificateRequest, IssuedCertificate
from ca_admin.officials import OfficialIdentity
from ca_admin.profiles import get_profile
from ca_admin.revocation import find_certificate
from ca_admin.runtime import CaRuntime
from core import audit
from core.errors import Conflict, NotFound
from core.web.i18n import N_

SERVER_KEY_ALGORITHM = "rsa-2048"  # the widest support in PDF signers and Windows


@dataclass(frozen=True)
class Submission:
    subject_ref: str
    profile: str
    csr: bytes | None = None
    server_keygen: bool = False
    validity_days: int | None = None
    renewal_of_serial: str | None = None
    device_name: str | None = None
    idempotency_key: str | None = None


def _identity(session: Session, runtime: CaRuntime, subject_ref: str) -> OfficialIdentity:
    identity = runtime.directory.find(session, subject_ref=subject_ref)
    if identity is None:
        raise NotFound(N_("There is no official with this account."))
    return identity


def submit(
    *, session: Session, runtime: CaRuntime, actor: str, submission: Submission
) -> CertificateRequest:
    """Record a request (checked now, so a bad CSR fails at once rather than at approval)."""
    if submission.idempotency_key:
        earlier = session.scalar(
            select(CertificateRequest).where(
                CertificateRequest.idempotency_key == submission.idempotency_key
            )
        )
        if earlier is not None:
            return _same_submitter(earlier, actor=actor, subject_ref=submission.subject_ref)
    profile = get_profile(submission.profile)
    identity = _identity(session, runtime, submission.subject_ref)
    profile.check_complete(identity)
    if (submission.csr is None) == (not submission.server_keygen):
        raise BadCertificateRequest(
            N_("Send either a certificate request (CSR) or ask for a server-generated key."),
            field="csr",
        )
    if submission.server_keygen and not profile.server_keygen_allowed:
        raise PolicyViolation(
            N_("This certificate profile does not allow server-generated keys."), field="csr"
        )
    renewal_of = None
    if submission.renewal_of_serial:
        renewal_of = find_certificate(session, submission.renewal_of_serial)
        if renewal_of.subject_ref != identity.subject_ref or renewal_of.status != "good":
            raise PolicyViolation(
                N_("Only a valid certificate of the same official can be renewed."),
                field="renewal_of",
            )
    csr_der = None
    if submission.csr is not None:
        csr = key_policy.load_csr(submission.csr)
        issuance.check_key_not_reused(session, csr.public_key(), renewal_of)  # type: ignore[arg-type]
        csr_der = csr.public_bytes(Encoding.DER)
    days = issuance.allowed_validity_days(
        profile, submission.validity_days, renewal=renewal_of is not None
    )
    now = runtime.clock.now()
    request = CertificateRequest(
        request_id=secrets.token_hex(8),
        profile=profile.name,
        subject_ref=identity.subject_ref,
        unit_code=identity.unit_code,
        identity=identity.as_dict() | {"device_name": submission.device_name},
        csr_der=csr_der,
        server_keygen=submission.server_keygen,
        validity_days=days,
        renewal_of_id=renewal_of.id if renewal_of else None,
        requested_by=actor,
        requested_at=now,
        idempotency_key=submission.idempotency_key,
        status="pending",
        approvals_required=profile.approvals_required,
    )
    try:
        with session.begin_nested():
            session.add(request)
    except IntegrityError:
        # The same idempotency key committed by a concurrent double submit: return that one.
        earlier = session.scalar(
            select(CertificateRequest).where(
                CertificateRequest.idempotency_key == submission.idempotency_key
            )
        )
        if earlier is None:
            raise
        return _same_submitter(earlier, actor=actor, subject_ref=submission.subject_ref)
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.request.submitted",
        target=f"request:{request.request_id}",
        details={
            "profile": profile.name,
            "subject_ref": identity.subject_ref,
            "unit_code": identity.unit_code,
            "server_keygen": submission.server_keygen,
            "renewal_of": renewal_of.serial if renewal_of else None,
            "validity_days": days,
        },
    )
    if profile.approvals_required == 0:
        _complete(session=session, runtime=runtime, actor=actor, request=request)
    return request


def _same_submitter(
    earlier: CertificateRequest, *, actor: str, subject_ref: str
) -> CertificateRequest:
    """A replayed idempotency key returns the first request, but only to whoever made it."""
    if earlier.requested_by != actor or earlier.subject_ref != subject_ref:
        raise Conflict(
            N_("This request key was already used for another request; use a new one."),
            field="idempotency_key",
        )
    return earlier


def find_request(
    session: Session, request_id: str, *, for_update: bool = False
) -> CertificateRequest:
    query = select(CertificateRequest).where(CertificateRequest.request_id == request_id[:32])
    if for_update:
        query = query.with_for_update()
    request = session.scalar(query)
    if request is None:
        raise UnknownRequest(N_("There is no certificate request %(id)s."), id=request_id[:32])
    return request


def approve(
    *, session: Session, runtime: CaRuntime, actor: str, request_id: str
) -> CertificateRequest:
    request = find_request(session, request_id, for_update=True)
    if request.status != "pending":
        raise RequestAlreadyDecided(
            N_("Request %(id)s is already %(status)s."),
            id=request.request_id,
            status=request.status,
        )
    if actor in (request.requested_by, request.subject_ref):
        raise ApprovalRefused(
            N_("You cannot approve your own request or a request for your own certificate.")
        )
    if not runtime.approvers.may_administer(session, actor_ref=actor, unit_code=request.unit_code):
        raise ApprovalRefused(N_("You do not administer this official's unit."))
    already = session.scalar(
        select(Approval.id).where(Approval.request_id == request.id, Approval.approver == actor)
    )
    if already is not None:
        raise Conflict(N_("You have already approved this request; another admin must approve it."))
    session.add(Approval(request_id=request.id, approver=actor, at=runtime.clock.now()))
    session.flush()
    count = session.scalar(select(func.count()).where(Approval.request_id == request.id)) or 0
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.request.approved",
        target=f"request:{request.request_id}",
        details={"approvals": count, "required": request.approvals_required},
    )
    if count >= request.approvals_required:
        _complete(session=session, runtime=runtime, actor=actor, request=request)
    return request


def reject(
    *, session: Session, runtime: CaRuntime, actor: str, request_id: str, reason: str
) -> CertificateRequest:
    request = find_request(session, request_id, for_update=True)
    if request.status not in ("pending", "approved"):
        raise RequestAlreadyDecided(
            N_("Request %(id)s is already %(status)s."),
            id=request.request_id,
            status=request.status,
        )
    if not runtime.approvers.may_administer(session, actor_ref=actor, unit_code=request.unit_code):
        raise ApprovalRefused(N_("You do not administer this official's unit."))
    request.status = "rejected"
    request.decided_at = runtime.clock.now()
    request.decision_reason = reason[:500]
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.request.rejected",
        target=f"request:{request.request_id}",
        details={"reason": reason[:500]},
    )
    return request


def _complete(
    *, session: Session, runtime: CaRuntime, actor: str, request: CertificateRequest
) -> None:
    request.decided_at = runtime.clock.now()
    if request.server_keygen:
        request.status = "approved"  # issued when the official collects the PKCS#12
        return
    assert request.csr_der is not None
    # Checked against the key policy again: the policy may have tightened since the request.
    public_key = key_policy.check_public_key(x509.load_der_x509_csr(request.csr_der).public_key())
    _issue(session=session, runtime=runtime, actor=actor, request=request, public_key=public_key)


def _issue(
    *,
    session: Session,
    runtime: CaRuntime,
    actor: str,
    request: CertificateRequest,
    public_key: key_policy.SubjectPublicKey,
) -> IssuedCertificate:
    # The data is re-read now: an official moved or disabled since the request gets no
    # certificate with stale details.
    identity = _identity(session, runtime, request.subject_ref)
    renewal_of = (
        session.get(IssuedCertificate, request.renewal_of_id) if request.renewal_of_id else None
    )
    issued = issuance.issue(
        session=session,
        runtime=runtime,
        actor=actor,
        order=IssueOrder(
            profile=get_profile(request.profile),
            identity=identity,
            public_key=public_key,
            validity_days=request.validity_days,
            renewal_of=renewal_of,
            request_id=request.id,
            device_name=request.identity.get("device_name"),
        ),
    )
    session.flush()
    request.status = "issued"
    request.certificate_id = issued.id
    if renewal_of is not None:
        renewals.after_renewal_issued(
            session=session, runtime=runtime, actor=actor, renewed=renewal_of
        )
    return issued


def preview(
    *, session: Session, runtime: CaRuntime, request: CertificateRequest
) -> x509.Certificate:
    """The certificate approving ``request`` would issue now, from the official's current
    data (as :func:`_issue` re-reads it), signed by a throwaway key (``issuance.preview``).
    A key the server will make is stood in for by a throwaway one: only its type is known."""
    public_key: key_policy.SubjectPublicKey = (
        key_policy.check_public_key(x509.load_der_x509_csr(request.csr_der).public_key())
        if request.csr_der is not None
        else ec.generate_private_key(ec.SECP256R1()).public_key()
    )
    renewal_of = (
        session.get(IssuedCertificate, request.renewal_of_id) if request.renewal_of_id else None
    )
    return issuance.preview(
        session=session,
        runtime=runtime,
        order=IssueOrder(
            profile=get_profile(request.profile),
            identity=_identity(session, runtime, request.subject_ref),
            public_key=public_key,
            validity_days=request.validity_days,
            renewal_of=renewal_of,
            device_name=request.identity.get("device_name"),
        ),
    )


def collect_pkcs12(
    *, session: Session, runtime: CaRuntime, actor: str, request_id: str, password: str
) -> tuple[IssuedCertificate, bytes]:
    """Generate the key, issue, and return the PKCS#12 once (server-keygen requests only)."""
    request = find_request(session, request_id, for_update=True)
    if not request.server_keygen or request.status != "approved":
        raise RequestAlreadyDecided(
            N_("Request %(id)s has no key file waiting to be collected."), id=request.request_id
        )
    if actor != request.subject_ref:
        raise ApprovalRefused(N_("Only the official can collect their own key file."))
    pkcs12_delivery.check_password(password)
    key = pkcs12_delivery.generate_key(SERVER_KEY_ALGORITHM)
    issued = _issue(
        session=session, runtime=runtime, actor=actor, request=request, public_key=key.public_key()
    )
    certificate = x509.load_der_x509_certificate(issued.der)
    chain = chain_of(session, runtime, issued.authority_id)
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.key.generated",
        target=f"cert:{issued.serial}",
        details={"algorithm": SERVER_KEY_ALGORITHM, "delivered_as": "pkcs12"},
    )
    return issued, pkcs12_delivery.build(
        key=key,
        certificate=certificate,
        chain=chain,
        password=password,
        friendly_name=issued.common_name,
    )
