"""CRL, caIssuers and OCSP (RFC 6960 Appendix A) over real HTTP through the ASGI app."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin import certificate_requests, revocation
from ca_admin.certificate_requests import Submission
from ca_admin.models import Authority, IssuedCertificate
from ca_admin.runtime import CaRuntime
from core.db import transaction
from tests.ca_admin.conftest import People, make_csr
from tests.ca_admin.interop_support import crldp_path

OCSP_HEADERS = {"Content-Type": "application/ocsp-request"}


@pytest.fixture
def ca_runtime(app: Starlette) -> CaRuntime:
    """The app's own CA runtime, so the tests and the routes share one authority cache."""
    runtime: CaRuntime = app.state.ca
    return runtime


@pytest.fixture
def issued(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], people: People
) -> x509.Certificate:
    with transaction(ca_runtime.session_factory) as session:
        request = certificate_requests.submit(
            session=session,
            runtime=ca_runtime,
            actor=people.official.subject,
            submission=Submission(
                subject_ref=people.official.subject,
                profile="official-document-signing",
                csr=make_csr()[0],
            ),
        )
        request_id = request.request_id
    with transaction(ca_runtime.session_factory) as session:
        request = certificate_requests.approve(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            request_id=request_id,
        )
        row = session.get(IssuedCertificate, request.certificate_id)
        assert row is not None
        return x509.load_der_x509_certificate(row.der)


def _issuing(hierarchy: tuple[Authority, Authority]) -> x509.Certificate:
    return x509.load_der_x509_certificate(hierarchy[1].certificate_der)


def _revoke(ca_runtime: CaRuntime, serial: int, reason: str, actor: str = "test") -> None:
    with transaction(ca_runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=ca_runtime,
            actor=actor,
            serial=format(serial, "x"),
            reason=reason,
        )


def _ocsp_request(
    certificate: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def _post(web: TestClient, body: bytes) -> ocsp.OCSPResponse:
    response = web.post("/ca/ocsp", content=body, headers=OCSP_HEADERS)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(response.content)


def _get_path(body: bytes) -> str:
    # RFC 6960 A.1: base64, then URL-encoded ('/' too, though our router accepts it either way).
    return "/ca/ocsp/" + quote(base64.b64encode(body).decode("ascii"), safe="")


def _max_age(cache_control: str) -> int:
    directives = dict(
        part.strip().partition("=")[::2] for part in cache_control.split(",") if part.strip()
    )
    return int(directives["max-age"])


def _verified(answer: ocsp.OCSPResponse, issuing: x509.Certificate) -> x509.Certificate:
    """Check the response signature with the delegated signer it carries; return the signer."""
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    (signer,) = answer.certificates
    signer.verify_directly_issued_by(issuing)
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
    public_key = signer.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert answer.signature_hash_algorithm is not None
    public_key.verify(
        answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm)
    )
    assert answer.responder_key_hash == (
        x509.SubjectKeyIdentifier.from_public_key(public_key).digest
    )
    return signer


# --------------------------------------------------------------------------------------------
# CRL and caIssuers


def test_crl_is_served_signed_and_lists_a_revocation(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    issued: x509.Certificate,
) -> None:
    issuing = _issuing(hierarchy)
    # The CRL the certificate names (its partition's), signed again by the revocation itself.
    path = crldp_path(ca_runtime, issued)
    assert path == f"/ca/crl/{hierarchy[1].name}/1.crl"
    before = web.get(path)
    assert before.status_code == 200
    assert before.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(before.content)
    assert crl.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]
    assert crl.issuer == issuing.subject
    assert crl.get_revoked_certificate_by_serial_number(issued.serial_number) is None
    cache_control = before.headers["cache-control"]
    assert cache_control.startswith("public, max-age=")
    assert 0 < int(cache_control.rsplit("=", 1)[1]) <= 300
    assert before.headers["last-modified"].endswith("GMT")

    _revoke(ca_runtime, issued.serial_number, "keyCompromise")
    after = web.get(path)
    assert after.status_code == 200
    crl_after = x509.load_der_x509_crl(after.content)
    assert crl_after.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]
    entry = crl_after.get_revoked_certificate_by_serial_number(issued.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason == x509.ReasonFlags.key_compromise
    number = crl_after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number > crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    # The served bytes are the stored ones: a second GET returns exactly the same CRL.
    assert web.get(path).content == after.content
    assert web.get(path, headers={"If-None-Match": after.headers["etag"]}).status_code == 304


def test_root_crl_and_unknown_names(
    web: TestClient, hierarchy: tuple[Authority, Authority]
) -> None:
    root = x509.load_der_x509_certificate(hierarchy[0].certificate_der)
    response = web.get(f"/ca/crl/{hierarchy[0].name}.crl")
    assert response.status_code == 200
    assert x509.load_der_x509_crl(response.content).is_signature_valid(root.public_key())  # type: ignore[arg-type]
    assert web.get("/ca/crl/nobody.crl").status_code == 404
    assert web.get("/ca/certs/nobody.cer").status_code == 404


def test_ca_issuers_serves_one_der_certificate(
    web: TestClient, hierarchy: tuple[Authority, Authority], issued: x509.Certificate
) -> None:
    aia = issued.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    (ca_issuers,) = [
        d.access_location.value
        for d in aia
        if d.access_method == x509.oid.AuthorityInformationAccessOID.CA_ISSUERS
    ]
    # The URL in the certificate is the one we serve.
    path = ca_issuers.removeprefix("http://127.0.0.1:8000")
    response = web.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pkix-cert"
    served = x509.load_der_x509_certificate(response.content)
    assert served == _issuing(hierarchy)
    issued.verify_directly_issued_by(served)


# --------------------------------------------------------------------------------------------
# OCSP


def test_ocsp_post_good_with_nonce_echoed(
    web: TestClient, hierarchy: tuple[Authority, Authority], issued: x509.Certificate
) -> None:
    issuing = _issuing(hierarchy)
    nonce = os.urandom(16)
    answer = _post(web, _ocsp_request(issued, issuing, nonce))
    _verified(answer, issuing)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert answer.serial_number == issued.serial_number
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert answer.next_update_utc is not None and answer.next_update_utc > answer.this_update_utc


def test_ocsp_get_good_is_cacheable_without_nonce_only(
    web: TestClient, hierarchy: tuple[Authority, Authority], issued: x509.Certificate
) -> None:
    issuing = _issuing(hierarchy)
    plain = web.get(_get_path(_ocsp_request(issued, issuing)))
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "application/ocsp-response"
    answer = ocsp.load_der_ocsp_response(plain.content)
    _verified(answer, issuing)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    max_age = _max_age(plain.headers["cache-control"])
    assert answer.next_update_utc is not None
    assert 0 < max_age <= (answer.next_update_utc - answer.this_update_utc).total_seconds()

    with_nonce = web.get(_get_path(_ocsp_request(issued, issuing, os.urandom(16))))
    assert with_nonce.status_code == 200
    assert with_nonce.headers["cache-control"] == "no-store"
    assert ocsp.load_der_ocsp_response(with_nonce.content).certificate_status == (
        ocsp.OCSPCertStatus.GOOD
    )
    # Not URL-encoded at all ('/' and '+' left as they are) still works.
    raw = web.get("/ca/ocsp/" + base64.b64encode(_ocsp_request(issued, issuing)).decode())
    assert ocsp.load_der_ocsp_response(raw.content).certificate_status == (ocsp.OCSPCertStatus.GOOD)


def test_ocsp_revoked_hold_and_release(
    web: TestClient,
    ca_runtime: CaRuntime,
    hierarchy: tuple[Authority, Authority],
    issued: x509.Certificate,
) -> None:
    issuing = _issuing(hierarchy)
    request = _ocsp_request(issued, issuing, os.urandom(16))

    _revoke(ca_runtime, issued.serial_number, "certificateHold")
    held = _post(web, request)
    _verified(held, issuing)
    assert held.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert held.revocation_reason == x509.ReasonFlags.certificate_hold

    with transaction(ca_runtime.session_factory) as session:
        revocation.release_hold(
            session=session,
            runtime=ca_runtime,
            actor="test",
            serial=format(issued.serial_number, "x"),
        )
    assert _post(web, request).certificate_status == ocsp.OCSPCertStatus.GOOD

    _revoke(ca_runtime, issued.serial_number, "keyCompromise")
    for answer in (
        _post(web, request),
        ocsp.load_der_ocsp_response(web.get(_get_path(_ocsp_request(issued, issuing))).content),
    ):
        _verified(answer, issuing)
        assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert answer.revocation_reason == x509.ReasonFlags.key_compromise
        assert answer.revocation_time_utc is not None


def test_ocsp_unknown_serial(
    web: TestClient, hierarchy: tuple[Authority, Authority], issued: x509.Certificate
) -> None:
    issuing = _issuing(hierarchy)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            issuer_name_hash=_sha1(issuing.subject.public_bytes()),
            issuer_key_hash=x509.SubjectKeyIdentifier.from_public_key(
                issuing.public_key()  # type: ignore[arg-type]
            ).digest,
            serial_number=issued.serial_number + 1,
            algorithm=hashes.SHA1(),
        )
        .build()
        .public_bytes(Encoding.DER)
    )
    answer = _post(web, request)
    _verified(answer, issuing)
    assert answer.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def _sha1(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA1())
    digest.update(data)
    return digest.finalize()


def test_ocsp_refusals(
    web: TestClient, hierarchy: tuple[Authority, Authority], issued: x509.Certificate
) -> None:
    issuing = _issuing(hierarchy)
    malformed = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # RFC 8954: a nonce over 32 octets is refused.
    assert _post(web, _ocsp_request(issued, issuing, os.urandom(33))).response_status == malformed
    assert _post(web, b"\x30\x03garbage").response_status == malformed
    assert _post(web, b"").response_status == malformed
    assert _post(web, b"\x30" * 5000).response_status == malformed  # over 4 KB
    for path in ("/ca/ocsp/not-base64!!", "/ca/ocsp/" + "A" * 30000):
        response = web.get(path)
        assert response.status_code == 200
        assert ocsp.load_der_ocsp_response(response.content).response_status == malformed
        assert response.headers["cache-control"] == "no-store"

    # A certificate of an issuer we do not serve: unauthorized (RFC 6960 §2.3).
    foreign_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Someone else's CA")])
    now = datetime.now(UTC)
    foreign = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(foreign_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(foreign_key, hashes.SHA256())
    )
    answer = _post(web, _ocsp_request(foreign, foreign))
    assert answer.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED

    wrong_type = web.post("/ca/ocsp", content=_ocsp_request(issued, issuing))
    assert wrong_type.status_code == 415
    json_type = web.post("/ca/ocsp", content=b"{}", headers={"Content-Type": "application/json"})
    assert json_type.status_code == 415
