"""Pre-produced OCSP answers (RFC 5019, RFC 6960 §2.4) through the real app, SQLite and PostgreSQL.

What the responder serves for a request without a nonce is the row stored for the certificate;
these tests check that row says what a live signature would say, changes in the same
transaction as the status, is re-signed by the maintenance pass before nextUpdate, and that
requests with a nonce (or another CertID hash) are still signed live.
"""

from __future__ import annotations

import os
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import update
from starlette.testclient import TestClient

from ca_admin import maintenance, preproduced_ocsp, revocation
from ca_admin import ocsp as responder
from ca_admin.models import Authority, IssuedCertificate, PreproducedOcspResponse
from ca_admin.runtime import CaRuntime
from ca_admin.serials import serial_hex
from core.clock import FixedClock
from core.db import transaction
from tests.ca_admin import test_status_http
from tests.ca_admin.interop_support import crldp_path, openssl, write_pem
from tests.ca_admin.test_status_http import (
    _get_path,
    _max_age,
    _ocsp_request,
    _post,
    _verified,
)

# The app's own CA runtime (the tests and the routes share one authority cache) and a
# certificate it issued, as the HTTP status tests use them.
ca_runtime = test_status_http.ca_runtime
just_issued = test_status_http.issued


@pytest.fixture
def issued(ca_runtime: CaRuntime, just_issued: x509.Certificate) -> x509.Certificate:
    """A certificate whose answer the maintenance pass has pre-produced (issuance leaves it to
    the pass), as every certificate a few minutes after its issuance."""
    maintenance.run_due(ca_runtime)
    return just_issued


def _stored(ca_runtime: CaRuntime, certificate: x509.Certificate) -> PreproducedOcspResponse:
    with transaction(ca_runtime.session_factory) as session:
        row = session.get(PreproducedOcspResponse, serial_hex(certificate.serial_number))
        assert row is not None
        session.expunge(row)
        return row


def _clock(ca_runtime: CaRuntime) -> FixedClock:
    assert isinstance(ca_runtime.clock, FixedClock)
    return ca_runtime.clock


def _issuing(hierarchy: tuple[Authority, Authority]) -> x509.Certificate:
    return x509.load_der_x509_certificate(hierarchy[1].certificate_der)


def test_the_preproduced_answer_is_served_and_says_what_a_live_signature_says(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    issued: x509.Certificate,
    tmp_path: Path,
) -> None:
    issuing = _issuing(hierarchy)
    request = _ocsp_request(issued, issuing)
    stored = _stored(ca_runtime, issued)
    assert stored.status == "good"
    assert stored.this_update == ca_runtime.clock.now()
    assert stored.next_update == stored.this_update + ca_runtime.ocsp_lifetime

    posted = web.post(
        "/ca/ocsp", content=request, headers={"Content-Type": "application/ocsp-request"}
    )
    got = web.get(_get_path(request))
    # ECDSA signatures differ every time: equal bytes mean the stored answer was served.
    assert posted.content == stored.der
    assert got.content == stored.der

    with transaction(ca_runtime.session_factory) as session:
        live = ocsp.load_der_ocsp_response(
            responder.respond(session=session, runtime=ca_runtime, request_der=request)
        )
    assert live.certificate_status == ocsp.OCSPCertStatus.GOOD
    served = ocsp.load_der_ocsp_response(stored.der)
    _verified(served, issuing)
    _verified(live, issuing)
    for answer in (served, live):
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert answer.serial_number == issued.serial_number
        assert answer.hash_algorithm.name == "sha1"  # RFC 5019 §2.1.1
        assert len(list(answer.extensions)) == 0  # no nonce
    assert served.this_update_utc == live.this_update_utc == stored.this_update
    assert served.next_update_utc == live.next_update_utc == stored.next_update
    assert served.issuer_name_hash == live.issuer_name_hash
    assert served.issuer_key_hash == live.issuer_key_hash
    assert served.responder_key_hash == live.responder_key_hash
    assert served.certificates == live.certificates

    # OpenSSL, as an independent client, verifies the served bytes against our root.
    response_file = tmp_path / "response.der"
    response_file.write_bytes(got.content)
    checked = openssl(
        "ocsp",
        "-respin",
        response_file,
        "-issuer",
        write_pem(tmp_path, "issuing.pem", issuing),
        "-cert",
        write_pem(tmp_path, "official.pem", issued),
        "-CAfile",
        write_pem(
            tmp_path, "root.pem", x509.load_der_x509_certificate(hierarchy[0].certificate_der)
        ),
        "-verify_other",
        tmp_path / "issuing.pem",
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Response verify OK" in checked.stdout + checked.stderr
    assert f"{tmp_path / 'official.pem'}: good" in checked.stdout


def test_get_carries_rfc_5019_cache_headers_and_answers_304_to_its_etag(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    issued: x509.Certificate,
) -> None:
    path = _get_path(_ocsp_request(issued, _issuing(hierarchy)))
    stored = _stored(ca_runtime, issued)
    response = web.get(path)
    assert response.status_code == 200
    cache_control = response.headers["cache-control"]
    assert {"public", "no-transform", "must-revalidate"} <= {
        part.strip() for part in cache_control.split(",")
    }
    assert _max_age(cache_control) == int(ca_runtime.ocsp_lifetime.total_seconds())
    assert parsedate_to_datetime(response.headers["last-modified"]) == stored.this_update
    assert parsedate_to_datetime(response.headers["expires"]) == stored.next_update
    etag = response.headers["etag"]
    not_modified = web.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert web.get(path, headers={"If-None-Match": '"other"'}).content == stored.der


def test_revocation_hold_and_release_replace_the_answer_in_their_own_transaction(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    issued: x509.Certificate,
) -> None:
    issuing = _issuing(hierarchy)
    request = _ocsp_request(issued, issuing)
    crl_path = crldp_path(ca_runtime, issued)  # its partition's, signed in the transaction
    serial = format(issued.serial_number, "x")

    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session, runtime=ca_runtime, actor="test", serial=serial, reason="keyCompromise"
        )
        # Written in the revocation's transaction...
        pending = session.get(PreproducedOcspResponse, serial_hex(issued.serial_number))
        assert pending is not None and pending.status == "revoked"
        assert ocsp.load_der_ocsp_response(pending.der).certificate_status == (
            ocsp.OCSPCertStatus.REVOKED
        )
        # ...and invisible to others until it commits, like the CRL.
        before_commit = _post(web, request)
        assert before_commit.certificate_status == ocsp.OCSPCertStatus.GOOD
    # Committed: the CRL and both OCSP forms say revoked, and the stored answer is what is served.
    crl = x509.load_der_x509_crl(web.get(crl_path).content)
    entry = crl.get_revoked_certificate_by_serial_number(issued.serial_number)
    assert entry is not None
    stored = _stored(ca_runtime, issued)
    for response in (
        web.post("/ca/ocsp", content=request, headers={"Content-Type": "application/ocsp-request"}),
        web.get(_get_path(request)),
    ):
        assert response.content == stored.der
        answer = ocsp.load_der_ocsp_response(response.content)
        _verified(answer, issuing)
        assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert answer.revocation_reason == x509.ReasonFlags.key_compromise
        assert answer.revocation_time_utc == entry.revocation_date_utc


def test_hold_then_release_are_served_at_once(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    issued: x509.Certificate,
) -> None:
    request = _ocsp_request(issued, _issuing(hierarchy))
    serial = format(issued.serial_number, "x")
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=serial,
            reason="certificateHold",
        )
    held = _post(web, request)
    assert held.revocation_reason == x509.ReasonFlags.certificate_hold
    with transaction(ca_runtime.session_factory) as session:
        revocation.release_hold(session=session, runtime=ca_runtime, actor="test", serial=serial)
    released = web.get(_get_path(request))
    assert released.content == _stored(ca_runtime, issued).der
    assert ocsp.load_der_ocsp_response(released.content).certificate_status == (
        ocsp.OCSPCertStatus.GOOD
    )


def test_maintenance_re_signs_answers_before_next_update_and_fills_in_missing_ones(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    issued: x509.Certificate,
) -> None:
    clock = _clock(ca_runtime)
    first = _stored(ca_runtime, issued)
    margin = ca_runtime.ocsp_refresh_before
    clock.advance(seconds=(ca_runtime.ocsp_lifetime - margin).total_seconds() - 60)
    maintenance.run_due(ca_runtime)
    assert _stored(ca_runtime, issued).der == first.der  # not due yet

    clock.advance(seconds=120)  # now within the refresh margin, still before nextUpdate
    maintenance.run_due(ca_runtime)
    refreshed = _stored(ca_runtime, issued)
    assert refreshed.this_update == clock.now()
    assert refreshed.next_update == clock.now() + ca_runtime.ocsp_lifetime
    request = _ocsp_request(issued, _issuing(hierarchy))
    served = web.get(_get_path(request))
    assert served.content == refreshed.der
    answer = ocsp.load_der_ocsp_response(served.content)
    _verified(answer, _issuing(hierarchy))
    assert answer.this_update_utc == clock.now()

    # A certificate without an answer (issued before the table existed) gets one.
    with transaction(ca_runtime.session_factory) as session:
        session.delete(session.get(PreproducedOcspResponse, serial_hex(issued.serial_number)))
    assert preproduced_ocsp.refresh_due(ca_runtime) >= 1
    assert _stored(ca_runtime, issued).status == "good"


def test_past_next_update_the_answer_is_signed_live_and_an_expired_certificates_row_goes(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    issued: x509.Certificate,
) -> None:
    clock = _clock(ca_runtime)
    request = _ocsp_request(issued, _issuing(hierarchy))
    stale = _stored(ca_runtime, issued)
    clock.advance(seconds=ca_runtime.ocsp_lifetime.total_seconds() + 60)  # maintenance missed
    live = web.get(_get_path(request))
    assert live.content != stale.der
    answer = ocsp.load_der_ocsp_response(live.content)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert answer.this_update_utc == clock.now()

    with transaction(ca_runtime.session_factory) as session:
        session.execute(
            update(IssuedCertificate)
            .where(IssuedCertificate.serial == serial_hex(issued.serial_number))
            .values(not_after=clock.now() - timedelta(days=1))
        )
    preproduced_ocsp.refresh_due(ca_runtime)
    with transaction(ca_runtime.session_factory) as session:
        assert session.get(PreproducedOcspResponse, serial_hex(issued.serial_number)) is None
    # Still answered, live, from the revocation table.
    assert _post(web, request).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_requests_with_a_nonce_or_a_sha256_cert_id_are_signed_live(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    issued: x509.Certificate,
) -> None:
    issuing = _issuing(hierarchy)
    stored = _stored(ca_runtime, issued)
    nonce = os.urandom(16)
    for response in (
        web.post(
            "/ca/ocsp",
            content=_ocsp_request(issued, issuing, nonce),
            headers={"Content-Type": "application/ocsp-request"},
        ),
        web.get(_get_path(_ocsp_request(issued, issuing, nonce))),
    ):
        assert response.content != stored.der
        answer = ocsp.load_der_ocsp_response(response.content)
        _verified(answer, issuing)
        assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD

    sha256_request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(issued, issuing, hashes.SHA256())
        .build()
        .public_bytes(Encoding.DER)
    )
    answer = _post(web, sha256_request)
    _verified(answer, issuing)
    assert answer.hash_algorithm.name == "sha256"  # the CertID comes back as asked
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_the_ca_certificates_of_the_root_get_no_preproduced_answer(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority]
) -> None:
    preproduced_ocsp.refresh_due(ca_runtime)
    with transaction(ca_runtime.session_factory) as session:
        stored = {row.serial: row.authority_id for row in session.query(PreproducedOcspResponse)}
    # The issuing CA's own certificate is the root's (which answers by CRL only); the OCSP
    # signer's is the issuing CA's and is answered like any other.
    assert set(stored.values()) == {hierarchy[1].id}


def test_a_new_certificate_is_answered_live_until_the_maintenance_pass_pre_produces_it(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    just_issued: x509.Certificate,
) -> None:
    """Issuance signs no OCSP answer (issue 15: the OCSP signer's RSA signature would nearly
    double a P-256 issuance); the responder answers "good" live meanwhile."""
    issuing = _issuing(hierarchy)
    request = _ocsp_request(just_issued, issuing)
    with transaction(ca_runtime.session_factory) as session:
        assert session.get(PreproducedOcspResponse, serial_hex(just_issued.serial_number)) is None
    first, second = (_post(web, request) for _ in range(2))
    for answer in (first, second):
        _verified(answer, issuing)
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert first.signature != second.signature  # ECDSA: each signed on its own

    maintenance.run_due(ca_runtime)
    stored = _stored(ca_runtime, just_issued)
    assert stored.status == "good"
    served = web.post(
        "/ca/ocsp", content=request, headers={"Content-Type": "application/ocsp-request"}
    )
    assert served.content == stored.der
