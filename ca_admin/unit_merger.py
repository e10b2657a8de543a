"""Bulk revoke and re-issue when a unit is merged into another (Decree 68/2024/ND-CP: a
certificate is revoked when its holder's unit is merged or dissolved).

The IdP moves the officials first (``commune-sso unit merge``); then an admin previews the
certificates that still name the old unit, plans a job, a different admin approves it, and
``apply`` works through it:

* an official now attached to the new unit and active gets a new certificate for the SAME
  public key (a renewal: ``issuance.issue(renewal_of=old)``), its subject built from the IdP's
  current data, so it names the new unit; the old certificate is revoked as **superseded**
  (RFC 5280 §5.3.1: replaced, key not compromised; signatures made before stay trustworthy);
* anyone else (account disabled or gone, moved on to a third unit, data no longer enough for
  the profile) gets no replacement and the old certificate is revoked as
  **affiliationChanged**: the unit it names no longer exists.

Items are handled in batches, each in its own transaction that also marks them done and
re-publishes the CRL once: a crash leaves finished batches done and the rest pending, running
``apply`` again finishes the job, and running it after completion changes nothing. New
certificates keep the old notAfter (capped by the renewal limit): a merger is not a free
extension.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ca_admin import issuance, revocation
from ca_admin.errors import ApprovalRefused, PolicyViolation, RequestAlreadyDecided
from ca_admin.issuance import IssueOrder
from ca_admin.lifecycle import CA_PROFILES
from ca_admin.models import IssuedCertificate, MergerItem, MergerJob
from ca_admin.officials import OfficialIdentity
from ca_admin.profiles import DEVICE, get_profile
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from core import audit
from core.db import transaction
from core.errors import Conflict, DomainError, NotFound
from core.web.i18n import N_

PENDING_APPROVAL = "pending_approval"
APPROVED = "approved"
DONE = "done"
DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True)
class AffectedCertificate:
    serial: str
    name: str
    profile: str
    status: str
    subject_ref: str | None
    not_after: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "serial": openssl_serial(self.serial),
            "name": self.name,
            "profile": self.profile,
            "status": self.status,
            "subject_ref": self.subject_ref,
            "not_after": self.not_after.isoformat(),
        }


@dataclass(frozen=True)
class MergerProgress:
    job_id: str
    status: str
    total: int
    done: int
    reissued: int
    revoked: int
    skipped: int
    batches_run: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "total": self.total,
            "done": self.done,
            "pending": self.total - self.done,
            "reissued": self.reissued,
            "revoked": self.revoked,
            "skipped": self.skipped,
            "batches_run": self.batches_run,
        }


def _affected(session: Session, runtime: CaRuntime, old_unit_code: str) -> list[IssuedCertificate]:
    # On hold too: a held certificate naming the old unit must not come back on release.
    return list(
        session.scalars(
            select(IssuedCertificate)
            .where(
                IssuedCertificate.unit_code == old_unit_code,
                IssuedCertificate.status.in_(("good", "hold")),
                IssuedCertificate.not_after > runtime.clock.now(),
                IssuedCertificate.profile.not_in(CA_PROFILES),
            )
            .order_by(IssuedCertificate.id)
        )
    )


def _check_units(old_unit_code: str, new_unit_code: str) -> None:
    if old_unit_code == new_unit_code:
        raise PolicyViolation(N_("The old and the new unit must differ."), field="new_unit")


def preview(
    session: Session, runtime: CaRuntime, old_unit_code: str, new_unit_code: str
) -> list[AffectedCertificate]:
    """The still-valid certificates naming ``old_unit_code`` (nothing is changed)."""
    _check_units(old_unit_code, new_unit_code)
    return [
        AffectedCertificate(
            serial=c.serial,
            name=c.common_name,
            profile=c.profile,
            status=c.status,
            subject_ref=c.subject_ref,
            not_after=c.not_after,
        )
        for c in _affected(session, runtime, old_unit_code)
    ]


def _require_scope(
    session: Session, runtime: CaRuntime, actor: str, job_units: tuple[str, str]
) -> None:
    for code in job_units:
        if not runtime.approvers.may_administer(session, actor_ref=actor, unit_code=code):
            raise ApprovalRefused(N_("You do not administer unit %(unit)s."), unit=code)


def plan(
    *, session: Session, runtime: CaRuntime, actor: str, old_unit_code: str, new_unit_code: str
) -> MergerJob:
    """Record a job for today's affected certificates, waiting for another admin's approval."""
    _check_units(old_unit_code, new_unit_code)
    _require_scope(session, runtime, actor, (old_unit_code, new_unit_code))
    unfinished = session.scalar(
        select(MergerJob.job_id).where(
            MergerJob.old_unit_code == old_unit_code, MergerJob.status != DONE
        )
    )
    if unfinished is not None:
        raise Conflict(
            N_("Merger job %(job)s for unit %(unit)s is not finished yet."),
            job=unfinished,
            unit=old_unit_code,
        )
    certificates = _affected(session, runtime, old_unit_code)
    if not certificates:
        raise NotFound(
            N_("No valid certificate names unit %(unit)s: there is nothing to re-issue."),
            unit=old_unit_code,
        )
    # An agency seal needs two approvers when issued; re-issuing it needs no fewer.
    required = max(max(get_profile(c.profile).approvals_required for c in certificates), 1)
    now = runtime.clock.now()
    job = MergerJob(
        job_id=secrets.token_hex(8),
        old_unit_code=old_unit_code,
        new_unit_code=new_unit_code,
        status=PENDING_APPROVAL,
        requested_by=actor,
        requested_at=now,
        approvals_required=required,
        approvers=[],
        items_total=len(certificates),
    )
    session.add(job)
    session.flush()
    session.add_all(
        MergerItem(job_id=job.id, certificate_id=c.id, status="pending") for c in certificates
    )
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.merger.planned",
        target=f"merger:{job.job_id}",
        details={
            "old_unit": old_unit_code,
            "new_unit": new_unit_code,
            "certificates": len(certificates),
            "approvals_required": required,
        },
    )
    return job


def find_job(session: Session, job_id: str, *, for_update: bool = False) -> MergerJob:
    query = select(MergerJob).where(MergerJob.job_id == job_id[:32])
    if for_update:
        query = query.with_for_update()
    job = session.scalar(query)
    if job is None:
        raise NotFound(N_("There is no merger job %(job)s."), job=job_id[:32])
    return job


def approve(*, session: Session, runtime: CaRuntime, actor: str, job_id: str) -> MergerJob:
    """Another admin, administering both units, agrees (four-eyes rule, as for requests)."""
    job = find_job(session, job_id, for_update=True)
    if job.status != PENDING_APPROVAL:
        raise RequestAlreadyDecided(
            N_("Merger job %(job)s is already %(status)s."), job=job.job_id, status=job.status
        )
    if actor == job.requested_by:
        raise ApprovalRefused(N_("You cannot approve a merger job you planned."))
    if actor in job.approvers:
        raise Conflict(N_("You have already approved this job; another admin must approve it."))
    _require_scope(session, runtime, actor, (job.old_unit_code, job.new_unit_code))
    now = runtime.clock.now()
    job.approvers = [*job.approvers, actor]  # a new list: JSON columns track assignment only
    if len(job.approvers) >= job.approvals_required:
        job.status = APPROVED
        job.approved_at = now
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.merger.approved",
        target=f"merger:{job.job_id}",
        details={"approvals": len(job.approvers), "required": job.approvals_required},
    )
    return job


def progress(session: Session, job: MergerJob, batches_run: int = 0) -> MergerProgress:
    counts: dict[str, int] = {
        outcome or "pending": number
        for outcome, number in session.execute(
            select(MergerItem.outcome, func.count())
            .where(MergerItem.job_id == job.id)
            .group_by(MergerItem.outcome)
        )
    }
    done = job.items_total - counts.get("pending", 0)
    return MergerProgress(
        job_id=job.job_id,
        status=job.status,
        total=job.items_total,
        done=done,
        reissued=counts.get("reissued", 0),
        revoked=counts.get("revoked", 0),
        skipped=counts.get("skipped", 0),
        batches_run=batches_run,
    )


def apply(
    *,
    runtime: CaRuntime,
    actor: str,
    job_id: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_batches: int | None = None,
) -> MergerProgress:
    """Work through an approved job, one transaction per batch (resumable, idempotent).

    ``max_batches`` stops early (an operator's pause; tests use it to stand for a crash).
    """
    batches = 0
    while True:
        with transaction(runtime.session_factory) as session:
            # The job row lock makes two concurrent `apply` runs take turns, batch by batch.
            job = find_job(session, job_id, for_update=True)
            if job.status == PENDING_APPROVAL:
                raise ApprovalRefused(N_("Merger job %(job)s is not approved yet."), job=job.job_id)
            if job.status == DONE or (max_batches is not None and batches >= max_batches):
                return progress(session, job, batches)
            items = session.scalars(
                select(MergerItem)
                .where(MergerItem.job_id == job.id, MergerItem.status == "pending")
                .order_by(MergerItem.id)
                .limit(max(1, batch_size))
            ).all()
            if items:
                _apply_batch(session=session, runtime=runtime, actor=actor, job=job, items=items)
                batches += 1
            remaining = session.scalar(
                select(func.count()).where(
                    MergerItem.job_id == job.id, MergerItem.status == "pending"
                )
            )
            if not remaining:
                job.status = DONE
                job.finished_at = runtime.clock.now()
                session.flush()
                summary = progress(session, job, batches)
                audit.record(
                    session,
                    clock=runtime.clock,
                    actor=actor,
                    action="ca.merger.completed",
                    target=f"merger:{job.job_id}",
                    details=summary.as_dict(),
                )
                return summary


def _validity_days(old: IssuedCertificate, now: datetime, limit: int) -> int:
    remaining = old.not_after - now
    return max(1, min(math.ceil(remaining / timedelta(days=1)), limit))


def _apply_batch(
    *,
    session: Session,
    runtime: CaRuntime,
    actor: str,
    job: MergerJob,
    items: Sequence[MergerItem],
) -> None:
    now = runtime.clock.now()
    superseded: list[IssuedCertificate] = []
    withdrawn: list[IssuedCertificate] = []
    # The batch's rows locked in one statement (in id order: no deadlock with another worker)
    # and the officials read in one round trip: per-item queries made re-issue 3x slower.
    olds = {
        c.id: c
        for c in session.scalars(
            select(IssuedCertificate)
            .where(IssuedCertificate.id.in_([item.certificate_id for item in items]))
            .order_by(IssuedCertificate.id)
            .with_for_update()
        )
    }
    identities = runtime.directory.find_many(
        session, subject_refs={c.subject_ref for c in olds.values() if c.subject_ref}
    )
    replaced: list[tuple[MergerItem, IssuedCertificate]] = []
    for item in items:
        old = olds[item.certificate_id]
        item.status, item.done_at = "done", now
        if old.status == "revoked" or old.not_after <= now:
            item.outcome, item.note = "skipped", f"already {old.status}, or expired"
            continue
        identity = identities.get(old.subject_ref) if old.subject_ref else None
        if identity is not None and identity.unit_code == job.old_unit_code:
            # Re-issuing now would name the old unit again and revoking would leave the
            # official without a certificate: the IdP side of the merger must come first.
            raise PolicyViolation(
                N_(
                    "The officials of unit %(unit)s have not been moved yet: run "
                    "`commune-sso unit merge %(unit)s %(target)s` first."
                ),
                unit=job.old_unit_code,
                target=job.new_unit_code,
            )
        replacement = None
        if identity is not None and identity.active and identity.unit_code == job.new_unit_code:
            replacement, refusal = _reissue(session, runtime, actor, old, identity, now)
        else:
            refusal = "the official is no longer active in the new unit"
        if replacement is not None:
            item.outcome = "reissued"
            replaced.append((item, replacement))
            superseded.append(old)
        else:
            item.outcome, item.note = "revoked", (refusal or "")[:500]
            withdrawn.append(old)
    session.flush()  # one flush for the batch's new certificates, then link them
    for item, replacement in replaced:
        item.new_certificate_id = replacement.id
    details: dict[str, object] = {
        "cause": "unit.merger",
        "job": job.job_id,
        "old_unit": job.old_unit_code,
        "new_unit": job.new_unit_code,
    }
    for reason, certificates in (("superseded", superseded), ("affiliationChanged", withdrawn)):
        revocation.revoke_many(
            session=session,
            runtime=runtime,
            actor=actor,
            certificates=certificates,
            reason=reason,
            details=details,
        )


def _reissue(
    session: Session,
    runtime: CaRuntime,
    actor: str,
    old: IssuedCertificate,
    identity: OfficialIdentity,
    now: datetime,
) -> tuple[IssuedCertificate | None, str | None]:
    profile = get_profile(old.profile)
    public_key = x509.load_der_x509_certificate(old.der).public_key()
    try:
        # No savepoint needed: issue() raises every refusal (profile check, key policy) before
        # it writes anything, so a refusal leaves the batch so far intact.
        issued = issuance.issue(
            session=session,
            runtime=runtime,
            actor=actor,
            order=IssueOrder(
                profile=profile,
                identity=identity,
                public_key=public_key,  # type: ignore[arg-type]
                validity_days=_validity_days(old, now, profile.max_renewal_validity_days),
                renewal_of=old,
                device_name=old.common_name if profile is DEVICE else None,
            ),
        )
    except DomainError as error:
        return None, f"no replacement: {error.text()}"
    return issued, None
