"""What the interoperability tests share: a CA hierarchy per key/scheme variant, certificates
issued from CSRs through the real issuance service, pkilint's RFC 5280 / RFC 6960 linters, the
``openssl`` command line and a one-page PDF.

Nothing here replaces our code: the hierarchy, the certificates, the CRLs and the OCSP answers
are made by ``ca_admin`` itself; the tools only judge them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pkilint import loader, pkix
from pkilint.pkix import certificate, crl, extension, name, ocsp
from pkilint.validation import ValidationFindingSeverity, ValidatorContainer
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from ca_admin import issuance, revocation
from ca_admin.hierarchy import CaSetup, init_hierarchy
from ca_admin.key_policy import load_csr
from ca_admin.models import Authority, PartitionCrl, PublishedCrl
from ca_admin.officials import OfficialIdentity
from ca_admin.profiles import get_profile
from ca_admin.runtime import CaRuntime
from core.db import transaction

OPENSSL = "/usr/bin/openssl"
ORGANISATION = "Sở Khoa học và Công nghệ tỉnh Lào Cai"

# Key/scheme variants of the hierarchy: RSA with PKCS#1 v1.5 (the default set-up, RSA-3072
# root), P-256 throughout, and RSASSA-PSS (RFC 4055) certificate and CRL signatures.
VARIANTS: dict[str, CaSetup] = {
    "rsa-pkcs1v15": CaSetup(organisation=ORGANISATION),
    "p256": CaSetup(
        organisation=ORGANISATION,
        root_algorithm="ec-p256",
        issuing_algorithm="ec-p256",
        ocsp_algorithm="ec-p256",
    ),
    "rsa-pss": CaSetup(
        organisation=ORGANISATION,
        root_algorithm="rsa-2048",
        issuing_algorithm="rsa-2048",
        signature_scheme="pss",
    ),
}

HolderKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Pki:
    runtime: CaRuntime
    root: x509.Certificate
    issuing: x509.Certificate
    ocsp_signer: x509.Certificate
    root_name: str
    issuing_name: str


def build_pki(runtime: CaRuntime, variant: str) -> Pki:
    with transaction(runtime.session_factory) as session:
        root, issuing = init_hierarchy(
            session=session, runtime=runtime, actor="test", setup=VARIANTS[variant]
        )
        assert issuing.ocsp_certificate_der is not None
        return Pki(
            runtime=runtime,
            root=x509.load_der_x509_certificate(root.certificate_der),
            issuing=x509.load_der_x509_certificate(issuing.certificate_der),
            ocsp_signer=x509.load_der_x509_certificate(issuing.ocsp_certificate_der),
            root_name=root.name,
            issuing_name=issuing.name,
        )


def official(number: int = 1) -> OfficialIdentity:
    """Verified data as the IdP vouches for it (the CA never looks further than this)."""
    return OfficialIdentity(
        subject_ref=f"sub-interop-{number}",
        username=f"nguyen.van.an{number}",
        full_name="Nguyễn Văn An",
        citizen_id=f"0010900{number:05d}",
        province_code="15",
        province_name="Tỉnh Lào Cai",
        unit_code="04474",
        unit_name="Phường Cam Đường",
        agency="Ủy ban nhân dân phường Cam Đường",
        position="Chuyên viên",
        email=f"an{number}@laocai.gov.vn",
    )


def issue_from_csr(pki: Pki, key: HolderKey, *, number: int = 1) -> x509.Certificate:
    """A document-signing certificate for a key only the holder has, from its PKCS#10 CSR."""
    csr_pem = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ignored")]))
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.PEM)
    )
    public_key = load_csr(csr_pem).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    with transaction(pki.runtime.session_factory) as session:
        issued = issuance.issue(
            session=session,
            runtime=pki.runtime,
            actor="test",
            order=issuance.IssueOrder(
                profile=get_profile("official-document-signing"),
                identity=official(number),
                public_key=public_key,
            ),
        )
        return x509.load_der_x509_certificate(issued.der)


def holder_key(kind: str = "ec") -> HolderKey:
    """A certificate holder's own key (P-256 unless ``kind`` is "rsa")."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def sign_pdf(key: HolderKey, cert: x509.Certificate, pki: Pki) -> bytes:
    """:func:`one_page_pdf` signed (PAdES) by ``key`` with our certificate ``cert``."""
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        ),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(pki.issuing.public_bytes(Encoding.DER))]
        ),
    )
    output = signers.sign_pdf(
        IncrementalPdfFileWriter(BytesIO(one_page_pdf())),
        signers.PdfSignatureMetadata(field_name="Signature1", reason="Phê duyệt văn bản"),
        signer=signer,
    )
    return output.getvalue()


def revoke(
    pki: Pki,
    cert: x509.Certificate,
    reason: str,
    *,
    invalidity_date: datetime | None = None,
) -> None:
    with transaction(pki.runtime.session_factory) as session:
        revocation.revoke(
            session=session,
            runtime=pki.runtime,
            actor="test",
            serial=format(cert.serial_number, "x"),
            reason=reason,
            invalidity_date=invalidity_date,
        )


def stored_crl(pki: Pki, authority_name: str) -> x509.CertificateRevocationList:
    """The CRL as last published (what GET /ca/crl/{name}.crl serves)."""
    with transaction(pki.runtime.session_factory) as session:
        authority = session.query(Authority).filter_by(name=authority_name).one()
        published = session.get(PublishedCrl, authority.id)
        assert published is not None
        return x509.load_der_x509_crl(published.der)


def crldp_url(certificate: x509.Certificate) -> str:
    """The one URL of the certificate's CRL distribution point."""
    (point,) = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert point.full_name is not None
    (name,) = point.full_name
    return str(name.value)


def crldp_path(runtime: CaRuntime, certificate: x509.Certificate) -> str:
    """The path under our service of the CRL the certificate names, for a test client."""
    return crldp_url(certificate).removeprefix(runtime.base_url)


def crl_named_by(
    runtime: CaRuntime, certificate: x509.Certificate
) -> x509.CertificateRevocationList:
    """The stored CRL that ``certificate``'s CRL distribution point names (what a relying party
    fetches for it): /ca/crl/<ca>.crl, the full CRL, or /ca/crl/<ca>/<n>.crl, partition n's."""
    url = crldp_url(certificate)
    path = url.removeprefix(f"{runtime.base_url}/ca/crl/").removesuffix(".crl")
    name, _, partition = path.partition("/")
    with transaction(runtime.session_factory) as session:
        authority = session.query(Authority).filter_by(name=name).one()
        published = (
            session.get(PartitionCrl, (authority.id, int(partition)))
            if partition
            else session.get(PublishedCrl, authority.id)
        )
        assert published is not None
        return x509.load_der_x509_crl(published.der)


# --------------------------------------------------------------------------------------------
# pkilint: the validator sets its lint_pkix_cert, lint_crl (PKIX profile) and
# lint_ocsp_response commands assemble.


def _certificate_validator() -> ValidatorContainer:
    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


def _crl_validator() -> ValidatorContainer:
    return crl.create_pkix_crl_validator_container(
        [
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [
            crl.create_issuer_validator_container([]),
            crl.create_validity_validator_container([]),
            crl.create_extensions_validator_container([]),
        ],
    )


def _ocsp_validator() -> ValidatorContainer:
    return ocsp.create_pkix_ocsp_response_validator_container(
        [
            ocsp.create_response_decoder(),
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [],
    )


@dataclass(frozen=True)
class LintFinding:
    severity: ValidationFindingSeverity
    code: str
    message: str | None
    path: str

    def __str__(self) -> str:
        message = f": {self.message}" if self.message else ""
        return f"{self.severity.name} {self.code} at {self.path}{message}"


def pkilint(kind: str, der: bytes) -> list[LintFinding]:
    """Findings of pkilint's RFC 5280 (certificate, CRL) or RFC 6960 (OCSP) linters."""
    if kind == "certificate":
        document = loader.load_der_certificate(der, "certificate")
        validator = _certificate_validator()
    elif kind == "crl":
        document = loader.load_der_crl(der, "crl")
        validator = _crl_validator()
    elif kind == "ocsp":
        document = loader.load_der_ocsp_response(der, "ocsp")
        validator = _ocsp_validator()
    else:
        raise ValueError(kind)
    return [
        LintFinding(
            severity=description.finding.severity,
            code=description.finding.code,
            message=description.message,
            path=result.node.path,
        )
        for result in validator.validate(document.root)
        for description in result.finding_descriptions
    ]


def lint_report(findings: list[LintFinding]) -> str:
    """Everything at NOTICE or above, for the assertion message."""
    relevant = [f for f in findings if f.severity <= ValidationFindingSeverity.NOTICE]
    return "\n".join(str(finding) for finding in relevant) or "(no findings)"


def errors_of(findings: list[LintFinding]) -> list[LintFinding]:
    return [f for f in findings if f.severity <= ValidationFindingSeverity.ERROR]


# --------------------------------------------------------------------------------------------
# openssl and files


def write_pem(directory: Path, file_name: str, *objects: object) -> Path:
    """Certificates and CRLs in PEM, concatenated (as openssl's -CAfile/-CRLfile take them)."""
    path = directory / file_name
    path.write_bytes(b"".join(item.public_bytes(Encoding.PEM) for item in objects))  # type: ignore[attr-defined]
    return path


def openssl(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENSSL, *(str(argument) for argument in arguments)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def one_page_pdf() -> bytes:
    """A blank A4 page written by pyhanko's own writer."""
    writer = PdfFileWriter()
    page = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Page"),
            generic.pdf_name("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(n) for n in (0, 0, 595, 842)]
            ),
            generic.pdf_name("/Resources"): generic.DictionaryObject(),
        }
    )
    writer.insert_page(page)
    output = BytesIO()
    writer.write(output)
    return output.getvalue()
