"""Signed documents for the validation tests: a key the test holds, a certificate our CA issues
for it through the real request and approval services, and PDFs and detached CMS signatures
made with it by pyHanko.

Timestamps: the service's own TSA is built elsewhere; here pyHanko's in-process
``DummyTimeStamper`` signs RFC 3161 tokens with a test TSA key under a test TSA root, which the
app under test trusts through COMMUNE_SSO_CA_VALIDATION_TRUST_ANCHORS (the setting for the
Government CA and other foreign anchors).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from ca_admin.runtime import CaRuntime
from core.db import transaction
from idp.models import Account
from tests.ca_admin.conftest import People, issue_one, make_csr
from tests.ca_admin.interop_support import one_page_pdf


@dataclass(frozen=True)
class Holder:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    issuing: x509.Certificate
    serial: str


def issue_for(ca_runtime: CaRuntime, people: People, account: Account | None = None) -> Holder:
    """A document-signing certificate for a key the test holds, requested and approved."""
    key = ec.generate_private_key(ec.SECP256R1())
    issued = issue_one(ca_runtime, people, account, csr=make_csr(key)[0])
    with transaction(ca_runtime.session_factory) as session:
        issuing = ca_runtime.authorities(session)[issued.authority_id].certificate
    return Holder(
        key=key,
        certificate=x509.load_der_x509_certificate(issued.der),
        issuing=issuing,
        serial=issued.serial,
    )


def _asn1_cert(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def _asn1_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> asn1_keys.PrivateKeyInfo:
    return asn1_keys.PrivateKeyInfo.load(
        key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    )


@dataclass(frozen=True)
class LocalTsa:
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey  # pyHanko's DummyTimeStamper signs with RSA only

    def stamper(self) -> DummyTimeStamper:
        return DummyTimeStamper(
            tsa_cert=_asn1_cert(self.certificate),
            tsa_key=_asn1_key(self.key),
            certs_to_embed=SimpleCertificateStore.from_certs([_asn1_cert(self.root)]),
        )


def _key_usage(*, signs_documents: bool) -> x509.KeyUsage:
    """digitalSignature + contentCommitment for a signer, keyCertSign + cRLSign for a CA."""
    return x509.KeyUsage(
        digital_signature=signs_documents,
        content_commitment=signs_documents,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signs_documents,
        crl_sign=not signs_documents,
        encipher_only=False,
        decipher_only=False,
    )


def make_certificate(
    common_name: str,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    *,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    usage: str,
) -> x509.Certificate:
    """A test certificate not from our CA: ``usage`` is ``ca``, ``signer`` (documents) or
    ``tsa`` (critical EKU id-kp-timeStamping, RFC 3161 §2.3); self-signed without issuer."""
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 if usage == "signer" else 3650))
        .add_extension(x509.BasicConstraints(ca=usage == "ca", path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if usage == "tsa":
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    else:
        builder = builder.add_extension(
            _key_usage(signs_documents=usage == "signer"), critical=True
        )
    if usage == "ca":
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_test_tsa(directory: Path) -> tuple[LocalTsa, Path]:
    """A test TSA root and a TSA certificate; returns it and the root's PEM file for the
    trust-anchor setting."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_certificate(
        "Test TSA Root", root_key.public_key(), issuer=None, issuer_key=root_key, usage="ca"
    )
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa = make_certificate(
        "Test TSA", tsa_key.public_key(), issuer=root, issuer_key=root_key, usage="tsa"
    )
    path = directory / "test-tsa-root.pem"
    path.write_bytes(root.public_bytes(Encoding.PEM))
    return LocalTsa(root=root, root_key=root_key, certificate=tsa, key=tsa_key), path


def _signer(holder: Holder) -> signers.SimpleSigner:
    return signers.SimpleSigner(
        signing_cert=_asn1_cert(holder.certificate),
        signing_key=_asn1_key(holder.key),
        cert_registry=SimpleCertificateStore.from_certs([_asn1_cert(holder.issuing)]),
    )


def sign_pdf(holder: Holder, *, tsa: LocalTsa | None = None, pdf: bytes | None = None) -> bytes:
    output = signers.sign_pdf(
        IncrementalPdfFileWriter(BytesIO(pdf or one_page_pdf())),
        signers.PdfSignatureMetadata(field_name="Signature1", reason="Phê duyệt văn bản"),
        signer=_signer(holder),
        timestamper=tsa.stamper() if tsa else None,
    )
    return output.getvalue()


def sign_detached(holder: Holder, document: bytes, *, tsa: LocalTsa | None = None) -> bytes:
    """A detached CMS signature (RFC 5652 SignedData without the content)."""
    content = asyncio.run(
        _signer(holder).async_sign_general_data(
            document, "sha256", detached=True, timestamper=tsa.stamper() if tsa else None
        )
    )
    return bytes(content.dump())


def change_page_content(pdf: bytes) -> bytes:
    """An incremental update that gives the signed page new content (what a forger does)."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    stream = generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 720 Td (Chi 1.000.000 dong) Tj ET")
    page[generic.pdf_name("/Contents")] = writer.add_object(stream)
    writer.update_container(page)
    output = BytesIO()
    writer.write(output)
    return output.getvalue()


def foreign_signer(anchor: LocalTsa, common_name: str) -> Holder:
    """A signer under another configured trust anchor (as a Government CA signer would be):
    no CRL or OCSP URL, so nothing to fetch."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = make_certificate(
        common_name,
        key.public_key(),
        issuer=anchor.root,
        issuer_key=anchor.root_key,
        usage="signer",
    )
    return Holder(
        key=key,
        certificate=certificate,
        issuing=anchor.root,
        serial=format(certificate.serial_number, "x"),
    )


def stranger(common_name: str) -> Holder:
    """A signer whose self-signed certificate no configured authority vouches for."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = make_certificate(
        common_name, key.public_key(), issuer=None, issuer_key=key, usage="signer"
    )
    return Holder(
        key=key,
        certificate=certificate,
        issuing=certificate,
        serial=format(certificate.serial_number, "x"),
    )


def countersign_pdf(holder: Holder, pdf: bytes) -> bytes:
    """A second signature in a new field, after the first (an approval chain)."""
    output = signers.sign_pdf(
        IncrementalPdfFileWriter(BytesIO(pdf)),
        signers.PdfSignatureMetadata(field_name="Signature2", reason="Đồng ý"),
        signer=_signer(holder),
    )
    return output.getvalue()
