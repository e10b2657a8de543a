"""OCSP requests about several certificates: one BasicOCSPResponse, one SingleResponse each."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import ocsp as ocsp_responder
from ca_admin import revocation
from ca_admin.models import Authority
from ca_admin.runtime import CaRuntime, subject_public_key_bits
from core.db import transaction
from tests.ca_admin.conftest import People, issue_one, make_hierarchy
from tests.ca_admin.interop_support import openssl, write_pem

OCSP_HEADERS = {"Content-Type": "application/ocsp-request"}
NEVER_ISSUED = int("01" + "cd" * 16, 16)


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    """The app's own CA runtime, so the tests and the routes share one authority cache."""
    runtime: CaRuntime = app.state.ca
    return runtime


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def _cert_id(
    issuer: x509.Certificate, serial: int, algorithm: hashes.HashAlgorithm
) -> dict[str, object]:
    key_bits = x509.SubjectKeyIdentifier.from_public_key(issuer.public_key())  # type: ignore[arg-type]
    assert isinstance(algorithm, hashes.SHA1 | hashes.SHA256)
    key_hash = key_bits.digest if isinstance(algorithm, hashes.SHA1) else None
    if key_hash is None:  # SHA-256 of the subjectPublicKey BIT STRING contents
        key_hash = _digest(algorithm, subject_public_key_bits(issuer))
    return {
        "hash_algorithm": {"algorithm": algorithm.name},
        "issuer_name_hash": _digest(algorithm, issuer.subject.public_bytes()),
        "issuer_key_hash": key_hash,
        "serial_number": serial,
    }


def several_request(
    entries: list[tuple[x509.Certificate, int]],
    *,
    nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    """A DER OCSPRequest with one entry per (issuer, serial): cryptography builds only one."""
    tbs_request: dict[str, object] = {
        "request_list": [
            {"req_cert": _cert_id(issuer, serial, algorithm or hashes.SHA1())}
            for issuer, serial in entries
        ]
    }
    if nonce is not None:
        tbs_request["request_extensions"] = [
            {"extn_id": "nonce", "critical": False, "extn_value": asn1_core.OctetString(nonce)}
        ]
    return bytes(asn1_ocsp.OCSPRequest({"tbs_request": tbs_request}).dump())


def _respond(ca_runtime: CaRuntime, request_der: bytes) -> ocsp.OCSPResponse:
    with transaction(ca_runtime.session_factory) as session:
        der = ocsp_responder.respond(session=session, runtime=ca_runtime, request_der=request_der)
    return ocsp.load_der_ocsp_response(der)


def _post(web: TestClient, body: bytes) -> bytes:
    response = web.post("/ca/ocsp", content=body, headers=OCSP_HEADERS)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/ocsp-response"
    return response.content


def _revoke(ca_runtime: CaRuntime, serial: str) -> None:
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session, runtime=ca_runtime, actor="test", serial=serial, reason="keyCompromise"
        )


def _verified(answer: ocsp.OCSPResponse, issuing: x509.Certificate) -> None:
    """The signature by the delegated signer the answer carries, issued by our issuing CA."""
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    (signer,) = answer.certificates
    signer.verify_directly_issued_by(issuing)
    public_key = signer.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert answer.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    public_key.verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    assert answer.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(public_key).digest


def _nonce(answer: ocsp.OCSPResponse) -> bytes:
    return answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce


def test_two_certificates_good_and_revoked_with_nonce(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], people: People
) -> None:
    issuing = x509.load_der_x509_certificate(hierarchy[1].certificate_der)
    good, revoked = issue_one(ca_runtime, people), issue_one(ca_runtime, people)
    _revoke(ca_runtime, revoked.serial)
    nonce = os.urandom(16)
    answer = _respond(
        ca_runtime,
        several_request(
            [(issuing, int(good.serial, 16)), (issuing, int(revoked.serial, 16))], nonce=nonce
        ),
    )
    _verified(answer, issuing)
    assert _nonce(answer) == nonce
    first, second = answer.responses
    assert (first.serial_number, first.certificate_status) == (
        int(good.serial, 16),
        ocsp.OCSPCertStatus.GOOD,
    )
    assert (second.serial_number, second.certificate_status) == (
        int(revoked.serial, 16),
        ocsp.OCSPCertStatus.REVOKED,
    )
    assert second.revocation_reason == x509.ReasonFlags.key_compromise
    assert first.next_update_utc - first.this_update_utc == ca_runtime.ocsp_lifetime  # type: ignore[operator]
    # The CertIDs come back as they were asked (same hash algorithm, same hashes).
    assert (
        first.issuer_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(
            issuing.public_key()  # type: ignore[arg-type]
        ).digest
    )


def test_three_certificates_over_http_verified_by_openssl(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    people: People,
    tmp_path: Path,
) -> None:
    issuing = x509.load_der_x509_certificate(hierarchy[1].certificate_der)
    good, revoked = issue_one(ca_runtime, people), issue_one(ca_runtime, people)
    _revoke(ca_runtime, revoked.serial)
    serials = [int(good.serial, 16), int(revoked.serial, 16), NEVER_ISSUED]
    request = several_request([(issuing, serial) for serial in serials], nonce=os.urandom(20))
    der = _post(web, request)
    answer = ocsp.load_der_ocsp_response(der)
    _verified(answer, issuing)
    assert [single.certificate_status for single in answer.responses] == [
        ocsp.OCSPCertStatus.GOOD,
        ocsp.OCSPCertStatus.REVOKED,
        ocsp.OCSPCertStatus.UNKNOWN,
    ]
    # A SHA-256 CertID is answered in kind.
    sha256 = ocsp.load_der_ocsp_response(
        _post(web, several_request([(issuing, s) for s in serials[:2]], algorithm=hashes.SHA256()))
    )
    assert [single.hash_algorithm.name for single in sha256.responses] == ["sha256", "sha256"]

    (signer,) = answer.certificates
    (tmp_path / "request.der").write_bytes(request)
    (tmp_path / "response.der").write_bytes(der)
    signer_pem = write_pem(tmp_path, "signer.pem", signer)
    issuing_pem = write_pem(tmp_path, "issuing.pem", issuing)
    # Signature and nonce against the request as sent (-reqin, without -serial: openssl would
    # build its own request from those and ignore -reqin).
    nonce_checked = openssl(
        "ocsp", "-reqin", tmp_path / "request.der", "-respin", tmp_path / "response.der",
        "-VAfile", signer_pem, "-CAfile", issuing_pem,
    )  # fmt: skip
    assert nonce_checked.returncode == 0, nonce_checked.stderr
    assert "Response verify OK" in nonce_checked.stderr
    assert "Nonce" not in nonce_checked.stderr
    # The status of each serial, as openssl reads it from the one response.
    statuses = openssl(
        "ocsp", "-respin", tmp_path / "response.der", "-no_nonce",
        "-VAfile", signer_pem, "-CAfile", issuing_pem, "-issuer", issuing_pem,
        *(argument for serial in serials for argument in ("-serial", hex(serial))),
    )  # fmt: skip
    assert statuses.returncode == 0, statuses.stderr
    assert "Response verify OK" in statuses.stderr
    assert [
        line.split(": ", 1)[1] for line in statuses.stdout.splitlines() if line.startswith("0x")
    ] == ["good", "revoked", "unknown"]


def test_foreign_entries_are_left_out_or_unauthorized(
    web: TestClient, ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], people: People
) -> None:
    root, issuing = (x509.load_der_x509_certificate(a.certificate_der) for a in hierarchy)
    good = issue_one(ca_runtime, people)
    # The root has no OCSP responder: its entry is left out, ours is answered.
    mixed = ocsp.load_der_ocsp_response(
        _post(web, several_request([(root, 5), (issuing, int(good.serial, 16))]))
    )
    _verified(mixed, issuing)
    assert [(s.serial_number, s.certificate_status) for s in mixed.responses] == [
        (int(good.serial, 16), ocsp.OCSPCertStatus.GOOD)
    ]
    foreign = ocsp.load_der_ocsp_response(_post(web, several_request([(root, 5), (root, 6)])))
    assert foreign.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_too_many_entries_or_too_long_a_nonce_is_malformed(
    web: TestClient, ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority]
) -> None:
    issuing = x509.load_der_x509_certificate(hierarchy[1].certificate_der)
    most = ocsp_responder.MAX_REQUEST_ENTRIES
    allowed = ocsp.load_der_ocsp_response(
        _post(web, several_request([(issuing, serial) for serial in range(1, most + 1)]))
    )
    assert len(list(allowed.responses)) == most
    for body in (
        several_request([(issuing, serial) for serial in range(1, most + 2)]),
        several_request([(issuing, 1), (issuing, 2)], nonce=os.urandom(33)),
    ):
        answer = ocsp.load_der_ocsp_response(_post(web, body))
        assert answer.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_rsa_signer_the_default_one(ca_runtime: CaRuntime, tmp_path: Path) -> None:
    """Deployments default to an RSA-2048 OCSP signer: sha256WithRSAEncryption, PKCS#1 v1.5."""
    _, authority = make_hierarchy(ca_runtime, ocsp_algorithm="rsa-2048")
    issuing = x509.load_der_x509_certificate(authority.certificate_der)
    request = several_request([(issuing, 7), (issuing, 8)], nonce=os.urandom(16))
    with transaction(ca_runtime.session_factory) as session:
        der = ocsp_responder.respond(session=session, runtime=ca_runtime, request_der=request)
    answer = ocsp.load_der_ocsp_response(der)
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    (signer,) = answer.certificates
    public_key = signer.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert answer.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSA_WITH_SHA256
    public_key.verify(
        answer.signature, answer.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256()
    )
    assert [s.certificate_status for s in answer.responses] == [ocsp.OCSPCertStatus.UNKNOWN] * 2
    (tmp_path / "request.der").write_bytes(request)
    (tmp_path / "response.der").write_bytes(der)
    checked = openssl(
        "ocsp", "-reqin", tmp_path / "request.der", "-respin", tmp_path / "response.der",
        "-VAfile", write_pem(tmp_path, "signer.pem", signer),
        "-CAfile", write_pem(tmp_path, "issuing.pem", issuing),
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "Response verify OK" in checked.stderr
    assert "Nonce" not in checked.stderr
