"""Account lifecycle -> certificates: the IdP's outbox read by the feed (commune_sso bridge),
handled by ca_admin.lifecycle, on real keys and both databases."""

from __future__ import annotations

import time

import pytest
from cryptography import x509
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import certificate_requests, revocation
from ca_admin.certificate_requests import Submission
from ca_admin.models import IssuedCertificate, LifecycleCursor
from ca_admin.runtime import CaRuntime
from commune_sso import ca_lifecycle_feed
from core import audit
from core.db import transaction
from idp import accounts, lifecycle, units
from idp.models import Account, AccountProfile, LifecycleEvent
from tests.ca_admin.conftest import BA_DINH, HOAN_KIEM, People, make_csr
from tests.ca_admin.interop_support import crl_named_by


def issue_for(ca_runtime: CaRuntime, holder: Account, approver: Account) -> str:
    with transaction(ca_runtime.session_factory) as session:
        request = certificate_requests.submit(
            session=session,
            runtime=ca_runtime,
            actor=holder.subject,
            submission=Submission(
                subject_ref=holder.subject, profile="official-document-signing", csr=make_csr()[0]
            ),
        )
        certificate_requests.approve(
            session=session,
            runtime=ca_runtime,
            actor=approver.subject,
            request_id=request.request_id,
        )
        issued = session.get(IssuedCertificate, request.certificate_id)
        assert issued is not None
        return issued.serial


def state(ca_runtime: CaRuntime, serial: str) -> tuple[str, str | None]:
    with transaction(ca_runtime.session_factory) as session:
        certificate = revocation.find_certificate(session, serial)
        return certificate.status, certificate.revocation_reason


def crl_state(ca_runtime: CaRuntime, serial: str) -> tuple[int, x509.RevokedCertificate | None]:
    """The number of the CRL the certificate names (its partition's) and its entry for
    ``serial``, if any."""
    with transaction(ca_runtime.session_factory) as session:
        der = revocation.find_certificate(session, serial).der
    crl = crl_named_by(ca_runtime, x509.load_der_x509_certificate(der))
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return number, crl.get_revoked_certificate_by_serial_number(int(serial, 16))


def cursor(ca_runtime: CaRuntime) -> int:
    with transaction(ca_runtime.session_factory) as session:
        row = session.get(LifecycleCursor, ca_lifecycle_feed.CURSOR_NAME)
        return row.last_event_id if row else 0


def last_event_id(ca_runtime: CaRuntime) -> int:
    with transaction(ca_runtime.session_factory) as session:
        return session.scalar(select(func.max(LifecycleEvent.id))) or 0


def change_account(ca_runtime: CaRuntime, account: Account, action: str) -> None:
    with transaction(ca_runtime.session_factory) as session:
        row = session.get(Account, account.id)
        assert row is not None
        if action == "disable":
            accounts.disable(session=session, clock=ca_runtime.clock, actor="test", account=row)
        elif action == "enable":
            accounts.enable(session=session, clock=ca_runtime.clock, actor="test", account=row)
        else:
            profile = session.get(AccountProfile, account.id)
            assert profile is not None
            accounts.mark_deleted(
                session=session, clock=ca_runtime.clock, actor="test", account=row, profile=profile
            )


def test_disable_holds_enable_releases_and_the_feed_runs_exactly_once(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    serial = issue_for(ca_runtime, people.official, people.unit_admin)
    other = issue_for(ca_runtime, people.colleague, people.unit_admin)
    number_before, _ = crl_state(ca_runtime, serial)

    change_account(ca_runtime, people.official, "disable")
    result = ca_lifecycle_feed.run_once(runtime=ca_runtime)

    assert result.changed_serials == [serial]
    assert state(ca_runtime, serial) == ("hold", "certificateHold")
    assert state(ca_runtime, other) == ("good", None)
    number, entry = crl_state(ca_runtime, serial)
    # A new CRL of the certificate's partition, signed in the feed's batch.
    assert number > number_before
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.certificate_hold
    )
    assert cursor(ca_runtime) == last_event_id(ca_runtime) > 0
    with transaction(ca_runtime.session_factory) as session:
        held = audit.tail(session, limit=5, action_prefix="ca.certificate.held")
        assert [(e.actor, e.target) for e in held] == [("ca-lifecycle", f"cert:{serial}")]
        assert audit.entry_as_dict(held[0])["details"]["cause"] == lifecycle.ACCOUNT_DISABLED

    # Running again (another worker, a restart) changes nothing: the cursor is past the event.
    again = ca_lifecycle_feed.run_once(runtime=ca_runtime)
    assert (again.events, again.certificates_changed) == (0, 0)
    assert crl_state(ca_runtime, serial)[0] == number

    change_account(ca_runtime, people.official, "enable")
    ca_lifecycle_feed.run_once(runtime=ca_runtime)
    assert state(ca_runtime, serial) == ("good", None)
    number_after, entry_after = crl_state(ca_runtime, serial)
    assert number_after > number and entry_after is None
    with transaction(ca_runtime.session_factory) as session:
        released = audit.tail(session, limit=5, action_prefix="ca.certificate.released")
        assert [e.target for e in released] == [f"cert:{serial}"]


def test_enable_does_not_release_a_hold_an_admin_placed(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    serial = issue_for(ca_runtime, people.official, people.unit_admin)
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            serial=serial,
            reason="certificateHold",
        )
    change_account(ca_runtime, people.official, "disable")
    change_account(ca_runtime, people.official, "enable")
    result = ca_lifecycle_feed.run_once(runtime=ca_runtime)
    assert result.events == 2 and result.certificates_changed == 0
    assert state(ca_runtime, serial) == ("hold", "certificateHold")


def test_deletion_revokes_with_cessation_of_operation(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    serial = issue_for(ca_runtime, people.official, people.unit_admin)
    change_account(ca_runtime, people.official, "delete")  # publishes disabled, then deleted
    result = ca_lifecycle_feed.run_once(runtime=ca_runtime)
    assert result.events == 2
    assert state(ca_runtime, serial) == ("revoked", "cessationOfOperation")
    _, entry = crl_state(ca_runtime, serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.cessation_of_operation
    )
    # Re-enabling a deleted account later must not bring a revoked certificate back.
    change_account(ca_runtime, people.official, "enable")
    ca_lifecycle_feed.run_once(runtime=ca_runtime)
    assert state(ca_runtime, serial) == ("revoked", "cessationOfOperation")


def test_a_single_move_revokes_with_affiliation_changed(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    serial = issue_for(ca_runtime, people.official, people.unit_admin)
    with transaction(ca_runtime.session_factory) as session:
        lifecycle.publish(
            session=session,
            clock=ca_runtime.clock,
            kind=lifecycle.ACCOUNT_MOVED,
            subject=people.official.subject,
            payload={"from": HOAN_KIEM, "to": BA_DINH, "by": "scim:hr"},
        )
    ca_lifecycle_feed.run_once(runtime=ca_runtime)
    assert state(ca_runtime, serial) == ("revoked", "affiliationChanged")
    with transaction(ca_runtime.session_factory) as session:
        [entry] = audit.tail(session, limit=1, action_prefix="ca.certificate.revoked")
        details = audit.entry_as_dict(entry)["details"]
        assert (details["reason"], details["to_unit"], details["by"]) == (
            "affiliationChanged",
            BA_DINH,
            "scim:hr",
        )


def test_a_unit_merger_move_is_left_to_the_merger_job(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    serial = issue_for(ca_runtime, people.official, people.unit_admin)
    with transaction(ca_runtime.session_factory) as session:
        units.merge(
            session=session,
            clock=ca_runtime.clock,
            actor="test",
            source=units.get_by_code(session, HOAN_KIEM),
            target=units.get_by_code(session, BA_DINH),
            reason="Nghị quyết 1656/NQ-UBTVQH15",
        )
    result = ca_lifecycle_feed.run_once(runtime=ca_runtime)
    assert result.events >= 4 and result.certificates_changed == 0
    assert state(ca_runtime, serial) == ("good", None)
    assert cursor(ca_runtime) == last_event_id(ca_runtime)


def test_events_of_officials_without_certificates_just_advance_the_cursor(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    change_account(ca_runtime, people.colleague, "disable")
    change_account(ca_runtime, people.no_citizen_id, "delete")
    result = ca_lifecycle_feed.run_once(runtime=ca_runtime, batch_size=1)
    assert (result.events, result.batches, result.certificates_changed) == (3, 3, 0)
    assert cursor(ca_runtime) == last_event_id(ca_runtime)


def test_a_failing_batch_leaves_the_cursor_and_certificates_unchanged(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    serial = issue_for(ca_runtime, people.official, people.unit_admin)
    start = last_event_id(ca_runtime)
    ca_lifecycle_feed.run_once(runtime=ca_runtime)
    change_account(ca_runtime, people.official, "disable")
    # The issuing CA's key file vanishes: the CRL cannot be signed, so the hold must not stick.
    key_store = ca_runtime.key_store
    ca_runtime.key_store = type(key_store)("wrong passphrase for every key")
    try:
        with pytest.raises(Exception):
            ca_lifecycle_feed.run_once(runtime=ca_runtime)
    finally:
        ca_runtime.key_store = key_store
    assert state(ca_runtime, serial) == ("good", None)
    assert cursor(ca_runtime) >= start
    assert cursor(ca_runtime) < last_event_id(ca_runtime)
    ca_lifecycle_feed.run_once(runtime=ca_runtime)
    assert state(ca_runtime, serial) == ("hold", "certificateHold")


def test_the_served_app_runs_the_feed_in_the_background(
    ca_runtime: CaRuntime, hierarchy: object, people: People, app: Starlette
) -> None:
    serial = issue_for(ca_runtime, people.official, people.unit_admin)
    with TestClient(app):  # runs the lifespan: the periodic tasks start
        change_account(ca_runtime, people.official, "disable")
        deadline = time.monotonic() + 3 * ca_lifecycle_feed.DEFAULT_INTERVAL + 5
        while state(ca_runtime, serial)[0] == "good" and time.monotonic() < deadline:
            time.sleep(0.2)
    assert state(ca_runtime, serial) == ("hold", "certificateHold")
