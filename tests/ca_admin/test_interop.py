"""Interoperability: what we issue and publish, judged by independent tools.

* pkilint (RFC 5280 certificate and CRL linters, RFC 6960 OCSP response linter): no ERROR or
  FATAL finding for the root, the issuing CA, the OCSP signer, a document-signing certificate,
  a CRL with reason codes and an invalidityDate, and good/revoked OCSP answers; RSA PKCS#1 v1.5,
  P-256 and RSASSA-PSS hierarchies.
* OpenSSL 3: ``openssl verify -crl_check`` / ``-crl_check_all`` accepts a good certificate and
  rejects a revoked one; ``openssl ocsp`` against the running service reports good / revoked.
* pyHanko: a PDF signed with a key whose certificate we issued from its CSR validates against our
  root with revocation checking required (CRLs and OCSP fetched over HTTP from the running
  service), and the same check fails once the certificate is revoked.

The live tests run the real app under uvicorn on the loopback port its issuer URL names (see
tests/idp/live_server.py), so the CRL distribution points and AIA URLs inside the certificates
reach it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from ca_admin import maintenance, ocsp, revocation
from ca_admin.runtime import CaRuntime
from core.db import transaction
from tests.ca_admin.interop_support import (
    VARIANTS,
    Pki,
    build_pki,
    crl_named_by,
    errors_of,
    holder_key,
    issue_from_csr,
    lint_report,
    openssl,
    pkilint,
    revoke,
    sign_pdf,
    stored_crl,
    write_pem,
)
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    LiveServer,
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
)

# The file-based checks do not depend on the database: run them on SQLite only.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _ocsp_request(pki: Pki, cert: x509.Certificate, nonce: bytes | None = None) -> bytes:
    # SHA-1 CertID hashes: what RFC 5019 clients (and openssl) send.
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, pki.issuing, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def _assert_lints_clean(document: str, kind: str, der: bytes) -> None:
    findings = pkilint(kind, der)
    assert not errors_of(findings), f"pkilint on {document}:\n{lint_report(findings)}"


# --------------------------------------------------------------------------------------------
# pkilint


@sqlite_only
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pkilint_finds_no_error_in_certificates_crls_and_ocsp_answers(
    ca_runtime: CaRuntime, variant: str
) -> None:
    pki = build_pki(ca_runtime, variant)
    good = issue_from_csr(pki, holder_key("rsa" if variant == "rsa-pkcs1v15" else "ec"))
    compromised = issue_from_csr(pki, holder_key(), number=2)
    moved = issue_from_csr(pki, holder_key(), number=3)
    held = issue_from_csr(pki, holder_key(), number=4)

    for document, cert in (
        ("root CA", pki.root),
        ("issuing CA", pki.issuing),
        ("OCSP signer", pki.ocsp_signer),
        ("document-signing certificate", good),
    ):
        _assert_lints_clean(f"{variant} {document}", "certificate", cert.public_bytes(Encoding.DER))

    # Key compromise noticed ten minutes after issuance, suspected five minutes before.
    ca_runtime.clock.advance(minutes=10)  # type: ignore[attr-defined]
    revoke(
        pki,
        compromised,
        "keyCompromise",
        invalidity_date=ca_runtime.clock.now() - timedelta(minutes=5),
    )
    revoke(pki, moved, "affiliationChanged")
    revoke(pki, held, "certificateHold")
    # The CRL the certificates name (their partition's, signed by each revocation) and the full
    # CRL (signed by the maintenance pass that follows).
    maintenance.run_due(ca_runtime)
    for scope, issuing_crl in (
        ("partition", crl_named_by(ca_runtime, compromised)),
        ("full", stored_crl(pki, pki.issuing_name)),
    ):
        # The CRL under lint is the one we mean to lint: three entries, reasons, an
        # invalidityDate.
        assert len(issuing_crl) == 3
        entry = issuing_crl.get_revoked_certificate_by_serial_number(compromised.serial_number)
        assert entry is not None
        assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
            x509.ReasonFlags.key_compromise
        )
        assert entry.extensions.get_extension_for_class(x509.InvalidityDate) is not None
        _assert_lints_clean(
            f"{variant} issuing CA's {scope} CRL", "crl", issuing_crl.public_bytes(Encoding.DER)
        )
    root_crl = stored_crl(pki, pki.root_name)
    assert len(root_crl) == 0
    _assert_lints_clean(f"{variant} root CRL (empty)", "crl", root_crl.public_bytes(Encoding.DER))

    nonce = secrets.token_bytes(16)
    with transaction(ca_runtime.session_factory) as session:
        answers = {
            name: ocsp.respond(
                session=session, runtime=ca_runtime, request_der=_ocsp_request(pki, cert, nonce)
            )
            for name, cert in (("good", good), ("revoked", compromised), ("on hold", held))
        }
    expected = {
        "good": x509_ocsp.OCSPCertStatus.GOOD,
        "revoked": x509_ocsp.OCSPCertStatus.REVOKED,
        "on hold": x509_ocsp.OCSPCertStatus.REVOKED,
    }
    for name, der in answers.items():
        parsed = x509_ocsp.load_der_ocsp_response(der)
        assert parsed.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
        assert parsed.certificate_status == expected[name]
        assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        _assert_lints_clean(f"{variant} OCSP answer ({name})", "ocsp", der)


# --------------------------------------------------------------------------------------------
# openssl verify with CRLs (files) and openssl ocsp (live service)


@sqlite_only
@pytest.mark.parametrize("variant", ["rsa-pkcs1v15", "p256"])
def test_openssl_verify_accepts_good_and_rejects_revoked_with_crls(
    ca_runtime: CaRuntime, variant: str, tmp_path: Path
) -> None:
    pki = build_pki(ca_runtime, variant)
    good = issue_from_csr(pki, holder_key())
    revoked = issue_from_csr(pki, holder_key(), number=2)
    revoke(pki, revoked, "keyCompromise")

    root = write_pem(tmp_path, "root.pem", pki.root)
    issuing = write_pem(tmp_path, "issuing.pem", pki.issuing)
    # The CRL both certificates name: their partition's, signed by the revocation.
    named = crl_named_by(ca_runtime, revoked)
    issuing_crl = write_pem(tmp_path, "issuing-crl.pem", named)
    both_crls = write_pem(tmp_path, "crls.pem", named, stored_crl(pki, pki.root_name))
    good_pem = write_pem(tmp_path, "good.pem", good)
    revoked_pem = write_pem(tmp_path, "revoked.pem", revoked)

    for check, crl_file in (("-crl_check", issuing_crl), ("-crl_check_all", both_crls)):
        common: list[str | Path] = [
            "verify",
            "-CAfile",
            root,
            "-untrusted",
            issuing,
            check,
            "-CRLfile",
            crl_file,
        ]
        accepted = openssl(*common, good_pem)
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
        assert f"{good_pem}: OK" in accepted.stdout
        rejected = openssl(*common, revoked_pem)
        assert rejected.returncode != 0
        assert "certificate revoked" in rejected.stdout + rejected.stderr

    # -crl_check_all without the root's CRL must fail: the issuing CA's status is unknown.
    unknown = openssl(
        "verify",
        "-CAfile",
        root,
        "-untrusted",
        issuing,
        "-crl_check_all",
        "-CRLfile",
        issuing_crl,
        good_pem,
    )
    assert unknown.returncode != 0
    assert "unable to get certificate CRL" in unknown.stdout + unknown.stderr


def _openssl_ocsp(
    live_server: LiveServer, tmp_path: Path, pki: Pki, cert: x509.Certificate, file_name: str
) -> str:
    cert_pem = write_pem(tmp_path, file_name, cert)
    result = openssl(
        "ocsp",
        "-issuer",
        write_pem(tmp_path, "issuing.pem", pki.issuing),
        "-cert",
        cert_pem,
        "-url",
        live_server.url("/ca/ocsp"),
        "-CAfile",
        write_pem(tmp_path, "root.pem", pki.root),
        # The delegated responder's certificate is in the answer; its issuer is not trusted.
        "-verify_other",
        write_pem(tmp_path, "issuing.pem", pki.issuing),
        "-nonce",
        "-resp_text",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Response verify OK" in result.stdout + result.stderr, result.stdout + result.stderr
    assert "WARNING: no nonce in response" not in result.stdout + result.stderr
    return result.stdout


@sqlite_only
def test_openssl_ocsp_reports_good_and_revoked_from_the_live_service(
    app_ca: CaRuntime, live_server: LiveServer, tmp_path: Path
) -> None:
    pki = build_pki(app_ca, "rsa-pkcs1v15")
    good = issue_from_csr(pki, holder_key())
    revoked = issue_from_csr(pki, holder_key(), number=2)
    revoke(pki, revoked, "keyCompromise")

    good_output = _openssl_ocsp(live_server, tmp_path, pki, good, "good.pem")
    assert f"{tmp_path / 'good.pem'}: good" in good_output
    assert "OCSP Nonce" in good_output
    revoked_output = _openssl_ocsp(live_server, tmp_path, pki, revoked, "revoked.pem")
    assert f"{tmp_path / 'revoked.pem'}: revoked" in revoked_output
    assert "Reason: keyCompromise" in revoked_output


# --------------------------------------------------------------------------------------------
# pyHanko: sign a PDF, validate it with hard-fail revocation checking against the live service


def _validate(pdf: bytes, pki: Pki) -> tuple[PdfSignatureStatus, ValidationContext]:
    reader = PdfFileReader(BytesIO(pdf))
    (embedded,) = reader.embedded_signatures
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(pki.root.public_bytes(Encoding.DER))],
        allow_fetching=True,
        revocation_mode="require",  # hard-fail: every certificate's status must be known
    )
    return validate_pdf_signature(embedded, signer_validation_context=context), context


def test_pyhanko_signature_validates_with_revocation_checking_until_revoked(
    app_ca: CaRuntime, live_server: LiveServer
) -> None:
    pki = build_pki(app_ca, "rsa-pkcs1v15")
    key = holder_key("rsa")
    cert = issue_from_csr(pki, key)
    # The status URLs in the certificates are the live server's.
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name is not None
    assert cdp[0].full_name[0].value.startswith(live_server.issuer)

    pdf = sign_pdf(key, cert, pki)
    status, context = _validate(pdf, pki)
    assert status.intact and status.valid, status.pretty_print_details()
    assert status.trusted, status.pretty_print_details()
    assert status.revocation_details is None
    # The answers really came over HTTP from the service: OCSP for the signer's certificate,
    # the root's CRL for the issuing CA (it has no OCSP URL).
    assert [response["response_status"].native for response in context.ocsps] == ["successful"]
    assert pki.root.subject.public_bytes() in [
        crl["tbs_cert_list"]["issuer"].dump() for crl in context.crls
    ]

    revoke(pki, cert, "keyCompromise")
    status, _ = _validate(pdf, pki)
    assert status.intact and status.valid  # the signed bytes did not change
    assert not status.trusted, status.pretty_print_details()
    assert status.revocation_details is not None, status.pretty_print_details()
    assert status.revocation_details.revocation_reason.native == "key_compromise"


def test_pyhanko_needs_the_root_crl_for_the_issuing_ca(
    app_ca: CaRuntime, live_server: LiveServer
) -> None:
    """The issuing CA has no OCSP: its status comes only from the root's CRL, served by us."""
    pki = build_pki(app_ca, "p256")
    key = holder_key()
    cert = issue_from_csr(pki, key)
    pdf = sign_pdf(key, cert, pki)
    assert _validate(pdf, pki)[0].trusted

    # Revoke the issuing CA itself in the root's revocation table: the root CRL now lists it.
    with transaction(app_ca.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=app_ca,
            actor="test",
            serial=format(pki.issuing.serial_number, "x"),
            reason="cessationOfOperation",
        )
    status, _ = _validate(pdf, pki)
    assert not status.trusted, status.pretty_print_details()
    assert status.revocation_details is not None  # the issuing CA's revocation
