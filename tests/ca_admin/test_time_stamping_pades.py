"""pyHanko uses our TSA for a PAdES B-T signature (RFC 3161 over HTTP against the real app under
uvicorn) with a signing certificate we issued, and its validation, trusting only our root and
checking revocation of every certificate over HTTP, reports the signature and its timestamp
valid and trusted."""

from __future__ import annotations

from io import BytesIO

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore
from starlette.applications import Starlette

from ca_admin.models import TimeStampToken
from ca_admin.runtime import CaRuntime
from ca_admin.serials import serial_hex
from ca_admin.tsa_certificate import issue_tsa_unit
from core.db import transaction
from tests.ca_admin.interop_support import build_pki, issue_from_csr, one_page_pdf
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    LiveServer,
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
)


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def test_pyhanko_pades_b_t_with_our_tsa_validates(app: Starlette, live_server: LiveServer) -> None:
    runtime: CaRuntime = app.state.ca
    pki = build_pki(runtime, "p256")
    with transaction(runtime.session_factory) as session:
        unit = issue_tsa_unit(session=session, runtime=runtime, actor="test")
        tsa_certificate = x509.load_der_x509_certificate(unit.certificate_der)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = issue_from_csr(pki, key)

    signer = signers.SimpleSigner(
        signing_cert=_asn1(certificate),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        ),
        cert_registry=SimpleCertificateStore.from_certs([_asn1(pki.issuing)]),
    )
    signed = signers.sign_pdf(
        IncrementalPdfFileWriter(BytesIO(one_page_pdf())),
        signers.PdfSignatureMetadata(
            field_name="Signature1",
            reason="Phê duyệt văn bản",
            subfilter=fields.SigSeedSubFilter.PADES,
        ),
        signer=signer,
        timestamper=HTTPTimeStamper(live_server.url("/tsa")),
    ).getvalue()

    (embedded,) = PdfFileReader(BytesIO(signed)).embedded_signatures
    context = ValidationContext(
        trust_roots=[_asn1(pki.root)],
        allow_fetching=True,
        revocation_mode="require",  # every certificate's status, the TSA's included, over HTTP
    )
    status = validate_pdf_signature(
        embedded, signer_validation_context=context, ts_validation_context=context
    )
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    timestamp = status.timestamp_validity
    assert timestamp is not None, "no signature timestamp: not PAdES B-T"
    assert timestamp.intact and timestamp.valid and timestamp.trusted, status.pretty_print_details()
    assert timestamp.signing_cert.serial_number == tsa_certificate.serial_number
    # The token the document carries is one we recorded (pyHanko asks for one more first, to
    # size the signature's placeholder).
    (token,) = (
        attribute["values"][0]["content"]
        for attribute in embedded.signer_info["unsigned_attrs"]
        if attribute["type"].native == "signature_time_stamp_token"
    )
    serial = token["encap_content_info"]["content"].parsed["serial_number"].native
    with transaction(runtime.session_factory) as session:
        assert session.get(TimeStampToken, serial_hex(serial)) is not None
