"""Scheduled upkeep: CRLs re-signed before nextUpdate, OCSP signers re-issued before expiry."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509 import ocsp

from ca_admin import maintenance
from ca_admin.models import Authority
from ca_admin.runtime import CaRuntime
from core.clock import FixedClock
from core.db import transaction
from tests.ca_admin.conftest import People, issue_one
from tests.ca_admin.test_revocation import ask_ocsp


def test_nothing_is_due_right_after_init(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority]
) -> None:
    assert maintenance.run_due(ca_runtime) == ([], [])


def test_without_a_ca_nothing_happens(ca_runtime: CaRuntime) -> None:
    assert maintenance.run_due(ca_runtime) == ([], [])


def test_a_month_before_expiry_the_ocsp_signer_is_reissued_and_answers_verify(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], people: People
) -> None:
    issued = issue_one(ca_runtime, people)
    clock = ca_runtime.clock
    assert isinstance(clock, FixedClock)
    old_responder = x509.load_der_x509_certificate(hierarchy[1].ocsp_certificate_der)  # type: ignore[arg-type]
    clock.advance(days=340)
    crl_numbers, renewed = maintenance.run_due(ca_runtime)
    assert renewed == ["issuing-ca-1"]
    # The issuing CA's CRLs were due too, full (#3) and its partition's (#4, #2 when the
    # certificate opened it); the root's lives a year.
    assert crl_numbers == [3, 4]
    assert maintenance.run_due(ca_runtime) == ([], [])  # idempotent
    with transaction(ca_runtime.session_factory) as session:
        issuing = session.get(Authority, hierarchy[1].id)
        assert issuing is not None
        new_responder = x509.load_der_x509_certificate(issuing.ocsp_certificate_der)  # type: ignore[arg-type]
    assert new_responder.serial_number != old_responder.serial_number
    assert new_responder.public_key() != old_responder.public_key()  # a fresh file key
    ca_runtime.forget_authorities()
    answer = ask_ocsp(ca_runtime, issuing, int(issued.serial, 16))
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert answer.certificates[0].serial_number == new_responder.serial_number
