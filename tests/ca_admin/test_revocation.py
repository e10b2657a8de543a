"""Revocation, hold and release, CRLs and OCSP answers from the one revocation table."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import select

from ca_admin import crl, revocation
from ca_admin import ocsp as ocsp_responder
from ca_admin.errors import AlreadyRevoked, PolicyViolation, UnknownCertificate
from ca_admin.models import Authority, IssuedCertificate, PublishedCrl
from ca_admin.runtime import CaRuntime
from core import audit
from core.clock import FixedClock
from core.db import transaction
from core.errors import Conflict
from tests.ca_admin.conftest import People, issue_one
from tests.ca_admin.interop_support import crl_named_by

PASS = timedelta(minutes=5)  # the maintenance pass's interval


@pytest.fixture
def certificate(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], people: People
) -> IssuedCertificate:
    return issue_one(ca_runtime, people)


def current_crl(ca_runtime: CaRuntime, authority: Authority) -> x509.CertificateRevocationList:
    with transaction(ca_runtime.session_factory) as session:
        published = session.get(PublishedCrl, authority.id)
        assert published is not None
        return x509.load_der_x509_crl(published.der)


def named_crl(
    ca_runtime: CaRuntime, certificate: IssuedCertificate
) -> x509.CertificateRevocationList:
    """The CRL the certificate's CRLDP names (its partition's): the one a revocation signs at
    once, so the one that never disagrees with OCSP."""
    return crl_named_by(ca_runtime, x509.load_der_x509_certificate(certificate.der))


def ask_ocsp(
    ca_runtime: CaRuntime, issuer: Authority, serial: int, *, nonce: bytes | None = None
) -> ocsp.OCSPResponse:
    issuer_certificate = x509.load_der_x509_certificate(issuer.certificate_der)
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        issuer_name_hash=_sha1(issuer_certificate.subject.public_bytes()),
        issuer_key_hash=x509.SubjectKeyIdentifier.from_public_key(
            issuer_certificate.public_key()
        ).digest,  # type: ignore[arg-type]
        serial_number=serial,
        algorithm=hashes.SHA1(),
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    with transaction(ca_runtime.session_factory) as session:
        der = ocsp_responder.respond(
            session=session,
            runtime=ca_runtime,
            request_der=builder.build().public_bytes(Encoding.DER),
        )
    return ocsp.load_der_ocsp_response(der)


def _sha1(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1())
    digest.update(data)
    return digest.finalize()


def test_fresh_crl_is_empty_numbered_and_signed(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority]
) -> None:
    root, issuing = hierarchy
    for authority in (root, issuing):
        published = current_crl(ca_runtime, authority)
        assert len(published) == 0
        assert published.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
        assert published.is_signature_valid(
            x509.load_der_x509_certificate(authority.certificate_der).public_key()
        )  # type: ignore[arg-type]
    assert current_crl(ca_runtime, issuing).next_update_utc - current_crl(
        ca_runtime, issuing
    ).last_update_utc == timedelta(hours=24)


def test_revocation_updates_crl_and_ocsp_together(
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    certificate: IssuedCertificate,
    people: People,
) -> None:
    issuing = hierarchy[1]
    serial = int(certificate.serial, 16)
    good = ask_ocsp(ca_runtime, issuing, serial, nonce=os.urandom(16))
    assert good.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert good.certificate_status == ocsp.OCSPCertStatus.GOOD
    compromised_at = ca_runtime.clock.now() - timedelta(days=2)
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            serial=certificate.serial,
            reason="keyCompromise",
            invalidity_date=compromised_at,
        )
    published = named_crl(ca_runtime, certificate)
    # One number sequence per issuer: #1 the full CRL at set-up, #2 the partition's CRL when the
    # certificate opened it, #3 the partition's again; the full CRL waits for the maintenance
    # pass (ca_admin.revocation.publish_crls).
    assert published.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3
    assert len(current_crl(ca_runtime, issuing)) == 0
    entry = published.get_revoked_certificate_by_serial_number(serial)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        == x509.ReasonFlags.key_compromise
    )
    assert entry.extensions.get_extension_for_class(
        x509.InvalidityDate
    ).value.invalidity_date_utc == compromised_at.replace(microsecond=0)
    revoked = ask_ocsp(ca_runtime, issuing, serial)
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason == x509.ReasonFlags.key_compromise
    assert revoked.revocation_time_utc == entry.revocation_date_utc
    with transaction(ca_runtime.session_factory) as session:
        actions = [e.action for e in audit.tail(session, limit=2, action_prefix="ca.")]
        # The certificate's partition CRL.
        assert sorted(actions) == ["ca.certificate.revoked", "ca.crl.published"]
    with pytest.raises(AlreadyRevoked), transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=certificate.serial,
            reason="superseded",
        )
    assert (
        named_crl(ca_runtime, certificate)
        .extensions.get_extension_for_class(x509.CRLNumber)
        .value.crl_number
        == 3
    )


def test_hold_then_release_then_revoke(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], certificate: IssuedCertificate
) -> None:
    issuing = hierarchy[1]
    serial = int(certificate.serial, 16)
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=certificate.serial,
            reason="certificateHold",
        )
    assert (
        ask_ocsp(ca_runtime, issuing, serial).revocation_reason == x509.ReasonFlags.certificate_hold
    )
    assert named_crl(ca_runtime, certificate).get_revoked_certificate_by_serial_number(serial)
    with transaction(ca_runtime.session_factory) as session:
        revocation.release_hold(
            session=session, runtime=ca_runtime, actor="test", serial=certificate.serial
        )
    assert ask_ocsp(ca_runtime, issuing, serial).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert (
        named_crl(ca_runtime, certificate).get_revoked_certificate_by_serial_number(serial) is None
    )
    with pytest.raises(Conflict), transaction(ca_runtime.session_factory) as session:
        revocation.release_hold(
            session=session, runtime=ca_runtime, actor="test", serial=certificate.serial
        )
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=certificate.serial,
            reason="certificateHold",
        )
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=certificate.serial,
            reason="affiliationChanged",
        )
    assert (
        ask_ocsp(ca_runtime, issuing, serial).revocation_reason
        == x509.ReasonFlags.affiliation_changed
    )


def test_expired_certificates_can_still_be_revoked(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], certificate: IssuedCertificate
) -> None:
    assert isinstance(ca_runtime.clock, FixedClock)
    ca_runtime.clock.advance(days=3 * 365)
    assert certificate.not_after < ca_runtime.clock.now()
    with transaction(ca_runtime.session_factory) as session:
        revoked = revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=certificate.serial,
            reason="keyCompromise",
        )
        assert revoked.status == "revoked"


@pytest.mark.parametrize(
    "serial, reason, error",
    [
        ("zz-not-hex", "keyCompromise", UnknownCertificate),
        ("01" + "ab" * 16, "keyCompromise", UnknownCertificate),
        (None, "removeFromCRL", PolicyViolation),
        (None, "caCompromise", PolicyViolation),
    ],
)
def test_revocation_errors_are_precise_and_change_nothing(
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    certificate: IssuedCertificate,
    serial: str | None,
    reason: str,
    error: type[Exception],
) -> None:
    with pytest.raises(error), transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=serial or certificate.serial,
            reason=reason,
        )
    with transaction(ca_runtime.session_factory) as session:
        assert (
            session.scalar(
                select(IssuedCertificate.status).where(IssuedCertificate.id == certificate.id)
            )
            == "good"
        )
        assert audit.tail(session, limit=1)[0].action != "ca.certificate.revoked"


def test_future_invalidity_date_is_refused(
    ca_runtime: CaRuntime, hierarchy: object, certificate: IssuedCertificate
) -> None:
    with pytest.raises(PolicyViolation), transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=certificate.serial,
            reason="keyCompromise",
            invalidity_date=ca_runtime.clock.now() + timedelta(days=1),
        )


def test_ocsp_unknown_nonce_and_bad_requests(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], certificate: IssuedCertificate
) -> None:
    issuing = hierarchy[1]
    assert (
        ask_ocsp(ca_runtime, issuing, int("01" + "cd" * 16, 16)).certificate_status
        == ocsp.OCSPCertStatus.UNKNOWN
    )
    nonce = os.urandom(32)
    answer = ask_ocsp(ca_runtime, issuing, int(certificate.serial, 16), nonce=nonce)
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    responder = x509.load_der_x509_certificate(issuing.ocsp_certificate_der)  # type: ignore[arg-type]
    assert (
        answer.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(responder.public_key()).digest
    )  # type: ignore[arg-type]
    public_key = responder.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    too_long = ask_ocsp(ca_runtime, issuing, int(certificate.serial, 16), nonce=os.urandom(33))
    assert too_long.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    root = hierarchy[0]
    foreign = ask_ocsp(ca_runtime, root, int(certificate.serial, 16))
    assert foreign.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    with transaction(ca_runtime.session_factory) as session:
        for garbage in (b"", b"\x30\x03\x02\x01\x00", os.urandom(200), b"x" * 10_000):
            answer = ocsp.load_der_ocsp_response(
                ocsp_responder.respond(session=session, runtime=ca_runtime, request_der=garbage)
            )
            assert answer.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_scheduled_refresh_signs_a_new_crl_only_when_due(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority]
) -> None:
    with transaction(ca_runtime.session_factory) as session:
        assert (
            crl.refresh_due(
                session=session, runtime=ca_runtime, actor="scheduler", pass_interval=PASS
            )
            == []
        )
    assert isinstance(ca_runtime.clock, FixedClock)
    ca_runtime.clock.advance(hours=19)
    with transaction(ca_runtime.session_factory) as session:
        refreshed = crl.refresh_due(
            session=session, runtime=ca_runtime, actor="scheduler", pass_interval=PASS
        )
        assert [p.crl_number for p in refreshed] == [2]
    assert current_crl(
        ca_runtime, hierarchy[1]
    ).next_update_utc == ca_runtime.clock.now() + timedelta(hours=24)
