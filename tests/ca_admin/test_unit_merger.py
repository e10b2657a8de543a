"""Bulk revoke and re-issue for a unit merger: preview, plan, four-eyes approval, batched apply
that resumes after a crash and changes nothing once done; real keys, both databases."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from ca_admin import revocation, unit_merger
from ca_admin.errors import ApprovalRefused, PolicyViolation
from ca_admin.models import Authority, IssuedCertificate, MergerItem
from ca_admin.runtime import CaRuntime
from core import audit
from core.db import transaction
from core.errors import Conflict, NotFound
from idp import accounts, units
from idp.models import Account
from tests.ca_admin.conftest import BA_DINH, HOAN_KIEM, People
from tests.ca_admin.test_lifecycle_revocation import issue_for, state


def merge_units(ca_runtime: CaRuntime) -> None:
    """The IdP side: `commune-sso unit merge 00070 00004`."""
    with transaction(ca_runtime.session_factory) as session:
        units.merge(
            session=session,
            clock=ca_runtime.clock,
            actor="test",
            source=units.get_by_code(session, HOAN_KIEM),
            target=units.get_by_code(session, BA_DINH),
            reason="Nghị quyết 1656/NQ-UBTVQH15",
        )


def plan(ca_runtime: CaRuntime, planner: Account) -> str:
    with transaction(ca_runtime.session_factory) as session:
        return unit_merger.plan(
            session=session,
            runtime=ca_runtime,
            actor=planner.subject,
            old_unit_code=HOAN_KIEM,
            new_unit_code=BA_DINH,
        ).job_id


def approve(ca_runtime: CaRuntime, approver: Account, job_id: str) -> str:
    with transaction(ca_runtime.session_factory) as session:
        return unit_merger.approve(
            session=session, runtime=ca_runtime, actor=approver.subject, job_id=job_id
        ).status


def counts(ca_runtime: CaRuntime) -> tuple[int, int, int]:
    """(certificates, audit entries, last CRL number of the issuing CA, full or partition):
    what a no-op must leave alone."""
    with transaction(ca_runtime.session_factory) as session:
        certificates = session.scalar(select(func.count()).select_from(IssuedCertificate))
        entries = len(audit.tail(session, limit=10_000))
        crl_number = session.scalar(select(func.max(Authority.crl_number)))
        return certificates or 0, entries, crl_number or 0


@pytest.fixture
def two_holders(ca_runtime: CaRuntime, hierarchy: object, people: People) -> tuple[str, str]:
    return (
        issue_for(ca_runtime, people.official, people.unit_admin),
        issue_for(ca_runtime, people.colleague, people.unit_admin),
    )


def test_preview_lists_the_valid_certificates_naming_the_old_unit(
    ca_runtime: CaRuntime, people: People, two_holders: tuple[str, str]
) -> None:
    official, colleague = two_holders
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=colleague,
            reason="keyCompromise",
        )
    before = counts(ca_runtime)
    with transaction(ca_runtime.session_factory) as session:
        affected = unit_merger.preview(session, ca_runtime, HOAN_KIEM, BA_DINH)
        assert unit_merger.preview(session, ca_runtime, BA_DINH, HOAN_KIEM) == []
    assert [(a.serial, a.name, a.profile) for a in affected] == [
        (official, "Nguyễn Văn An", "official-document-signing")
    ]
    assert counts(ca_runtime) == before


def test_plan_and_approval_follow_the_four_eyes_and_scope_rules(
    ca_runtime: CaRuntime, people: People, two_holders: tuple[str, str]
) -> None:
    with pytest.raises(ApprovalRefused):  # administers the old unit only
        plan(ca_runtime, people.unit_admin)
    job_id = plan(ca_runtime, people.province_admin)
    with pytest.raises(Conflict):  # one unfinished job per old unit
        plan(ca_runtime, people.system_admin)
    with pytest.raises(ApprovalRefused):
        approve(ca_runtime, people.province_admin, job_id)  # the requester
    with pytest.raises(ApprovalRefused):
        approve(ca_runtime, people.other_unit_admin, job_id)  # new unit only
    with pytest.raises(ApprovalRefused):  # not approved: nothing may happen yet
        unit_merger.apply(runtime=ca_runtime, actor="test", job_id=job_id)
    assert approve(ca_runtime, people.system_admin, job_id) == unit_merger.APPROVED
    with transaction(ca_runtime.session_factory) as session:
        actions = [e.action for e in audit.tail(session, limit=3, action_prefix="ca.merger.")]
        assert actions == ["ca.merger.planned", "ca.merger.approved"]
    with pytest.raises(NotFound):
        approve(ca_runtime, people.system_admin, "no-such-job")


def test_apply_reissues_for_the_same_key_resumes_after_a_crash_and_is_idempotent(
    ca_runtime: CaRuntime, people: People, two_holders: tuple[str, str]
) -> None:
    official, colleague = two_holders
    job_id = plan(ca_runtime, people.province_admin)
    approve(ca_runtime, people.system_admin, job_id)

    # Applied before the IdP moved the officials: refused, nothing changed.
    before = counts(ca_runtime)
    with pytest.raises(PolicyViolation, match="unit merge"):
        unit_merger.apply(runtime=ca_runtime, actor="test", job_id=job_id)
    assert counts(ca_runtime) == before

    merge_units(ca_runtime)
    crl_before = counts(ca_runtime)[2]
    # The "crash": only the first batch (one certificate) runs.
    first = unit_merger.apply(
        runtime=ca_runtime, actor="test", job_id=job_id, batch_size=1, max_batches=1
    )
    assert (first.status, first.done, first.total, first.reissued) == ("approved", 1, 2, 1)
    assert state(ca_runtime, official) == ("revoked", "superseded")
    assert state(ca_runtime, colleague) == ("good", None)
    # One CRL of the certificates' partition for the batch (the full CRL follows by the
    # maintenance pass).
    assert counts(ca_runtime)[2] == crl_before + 1

    finished = unit_merger.apply(runtime=ca_runtime, actor="test", job_id=job_id, batch_size=1)
    assert (finished.status, finished.done, finished.reissued) == ("done", 2, 2)
    assert state(ca_runtime, colleague) == ("revoked", "superseded")

    with transaction(ca_runtime.session_factory) as session:
        old = revocation.find_certificate(session, official)
        new = session.scalar(
            select(IssuedCertificate).where(IssuedCertificate.renewal_of_id == old.id)
        )
        assert new is not None and new.status == "good" and new.unit_code == BA_DINH
        assert new.spki_sha256 == old.spki_sha256
        assert new.not_after <= old.not_after
        certificate = x509.load_der_x509_certificate(new.der)
        locality = certificate.subject.get_attributes_for_oid(NameOID.LOCALITY_NAME)
        assert locality[0].value == "Phường Ba Đình"
        assert certificate.public_key() == x509.load_der_x509_certificate(old.der).public_key()
        completed = audit.tail(session, limit=1, action_prefix="ca.merger.completed")
        assert audit.entry_as_dict(completed[0])["details"]["reissued"] == 2

    after = counts(ca_runtime)
    again = unit_merger.apply(runtime=ca_runtime, actor="test", job_id=job_id)
    assert again.status == "done" and again.batches_run == 0
    assert counts(ca_runtime) == after


def test_officials_who_left_get_no_replacement(
    ca_runtime: CaRuntime, people: People, two_holders: tuple[str, str]
) -> None:
    official, colleague = two_holders
    job_id = plan(ca_runtime, people.province_admin)
    approve(ca_runtime, people.system_admin, job_id)
    merge_units(ca_runtime)
    with transaction(ca_runtime.session_factory) as session:
        account = session.get(Account, people.colleague.id)
        assert account is not None
        accounts.disable(session=session, clock=ca_runtime.clock, actor="test", account=account)
    result = unit_merger.apply(runtime=ca_runtime, actor="test", job_id=job_id)
    assert (result.reissued, result.revoked) == (1, 1)
    assert state(ca_runtime, official) == ("revoked", "superseded")
    assert state(ca_runtime, colleague) == ("revoked", "affiliationChanged")
    with transaction(ca_runtime.session_factory) as session:
        notes = session.scalars(select(MergerItem.note).where(MergerItem.outcome == "revoked"))
        assert [n for n in notes if n and "no longer active" in n]
