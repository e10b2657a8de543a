"""Validation of signatures that shared apps receive: PAdES signatures in a PDF (every one of
them) or a detached CMS signature with its document.

The report follows the spirit of ETSI EN 319 102-1: for each signature an indication
(TOTAL-PASSED, TOTAL-FAILED, INDETERMINATE) with a sub-indication named as in §5.1.3 (the
names of :mod:`pyhanko.sign.ades.report`). pyHanko does the cryptography: integrity of the
signed bytes, the CMS signature, the path to a trust anchor and the timestamp token. What is
ours is the certificate's status *at signing time*:

* for a certificate we issued, from our own status table (the one our CRLs and OCSP answers are
  built from): revoked before the best proof of existence of the signature (a trusted
  timestamp; without one, the time the signer claims) → TOTAL-FAILED/REVOKED; revoked after a
  trusted timestamp → TOTAL-PASSED; revoked after a merely claimed time → INDETERMINATE/
  REVOKED_NO_POE (§5.2.6: only a proof of existence tells that the signature came first);
* for a certificate of another configured trust anchor (e.g. the Government CA), from its OCSP
  responder or CRL, fetched by pyhanko-certvalidator.

Hostile input (not a PDF, truncated, no signature, oversize) raises a :class:`DomainError`
with a clear message; whatever a PDF parser raises on a malformed file is such an error too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from asn1crypto import cms
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESStatus, AdESSubIndic
from pyhanko.sign.general import extract_certificate_info
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko.sign.validation.pdf_embedded import async_validate_pdf_signature
from pyhanko.sign.validation.status import (
    SignatureCoverageLevel,
    StandardCMSSignatureStatus,
    TimestampSignatureStatus,
)
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from ca_admin.models import IssuedCertificate
from ca_admin.profiles import dn_text
from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from core import audit
from core.errors import DomainError
from core.web.i18n import N_

log = logging.getLogger(__name__)

PASSED = "TOTAL-PASSED"
FAILED = "TOTAL-FAILED"
INDETERMINATE = "INDETERMINATE"
_INDICATIONS = {
    AdESStatus.PASSED: PASSED,
    AdESStatus.FAILED: FAILED,
    AdESStatus.INDETERMINATE: INDETERMINATE,
}
# The worst indication wins for the whole document.
_SEVERITY = {PASSED: 0, INDETERMINATE: 1, FAILED: 2}
PDF_MEDIA_TYPE = "application/pdf"
MAX_SIGNATURES = 50


class UnreadableDocument(DomainError):
    status_code = 422
    code = "unreadable_document"


class NoSignature(DomainError):
    status_code = 422
    code = "no_signature"


class DocumentTooLarge(DomainError):
    status_code = 413
    code = "request_too_large"


def too_large(limit: int) -> DocumentTooLarge:
    return DocumentTooLarge(
        N_("The file is too large (at most %(megabytes)s MB)."),
        megabytes=max(1, limit // (1024 * 1024)),
    )


@dataclass(frozen=True)
class SignerFacts:
    subject: str
    common_name: str | None
    serial: str
    issuer: str
    issuer_common_name: str | None
    ours: bool
    # For our certificates: who the official is and where they work (from the IdP's records,
    # falling back on what the certificate says when the account is gone).
    full_name: str | None = None
    username: str | None = None
    subject_ref: str | None = None
    unit_code: str | None = None
    unit_name: str | None = None
    agency: str | None = None
    position: str | None = None


@dataclass(frozen=True)
class SignatureReport:
    """One signature's validation, as the API returns it and the page shows it. The defaults
    are what is known of a signature that could not be read at all."""

    indication: str
    sub_indication: str | None
    field_name: str | None
    intact: bool = False
    signature_valid: bool = False
    covers_whole_document: bool | None = None
    modified_after_signing: bool = False
    signer: SignerFacts | None = None
    trusted_chain: bool = False
    trust_anchor: str | None = None
    chain: tuple[str, ...] = ()
    certificate_status: str = "unknown"  # good | revoked | hold | unknown
    status_source: str | None = None  # ca_status_table | ocsp_crl
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    status_at_signing_time: str = "unknown"  # good | revoked | hold | unknown
    claimed_signing_time: datetime | None = None
    timestamp_present: bool = False
    timestamp_valid: bool = False
    timestamp_time: datetime | None = None
    timestamp_authority: str | None = None
    hash_algorithm: str | None = None

    def as_json(self) -> dict[str, Any]:
        signer = None
        if self.signer is not None:
            facts = self.signer
            signer = {
                "subject": facts.subject,
                "common_name": facts.common_name,
                "serial": facts.serial,
                "issuer": facts.issuer,
                "issuer_common_name": facts.issuer_common_name,
                "issued_by_us": facts.ours,
                "official": (
                    {
                        "full_name": facts.full_name,
                        "username": facts.username,
                        "subject_ref": facts.subject_ref,
                        "position": facts.position,
                    }
                    if facts.ours
                    else None
                ),
                "unit": (
                    {"code": facts.unit_code, "name": facts.unit_name, "agency": facts.agency}
                    if facts.ours
                    else None
                ),
            }
        return {
            "indication": self.indication,
            "sub_indication": self.sub_indication,
            "field": self.field_name,
            "integrity": {
                "intact": self.intact,
                "signature_valid": self.signature_valid,
                "covers_whole_document": self.covers_whole_document,
                "modified_after_signing": self.modified_after_signing,
                "hash_algorithm": self.hash_algorithm,
            },
            "signer": signer,
            "chain": {
                "trusted": self.trusted_chain,
                "trust_anchor": self.trust_anchor,
                "certificates": list(self.chain),
            },
            "certificate_status": {
                "current": self.certificate_status,
                "source": self.status_source,
                "revoked_at": _iso(self.revoked_at),
                "revocation_reason": self.revocation_reason,
                "at_signing_time": self.status_at_signing_time,
            },
            "signing_time": {
                "claimed": _iso(self.claimed_signing_time),
                "timestamp": _iso(self.timestamp_time),
            },
            "timestamp": {
                "present": self.timestamp_present,
                "valid": self.timestamp_valid,
                "time": _iso(self.timestamp_time),
                "authority": self.timestamp_authority,
            },
        }


@dataclass(frozen=True)
class ValidationReport:
    kind: str  # pades | cms
    document_sha256: str
    document_size: int
    validated_at: datetime
    signatures: tuple[SignatureReport, ...]

    @property
    def indication(self) -> str:
        return max((s.indication for s in self.signatures), key=_SEVERITY.__getitem__)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "indication": self.indication,
            "document": {"sha256": self.document_sha256, "size": self.document_size},
            "validated_at": _iso(self.validated_at),
            "signature_count": len(self.signatures),
            "signatures": [s.as_json() for s in self.signatures],
        }


def load_trust_anchors(pem_files: Sequence[Path]) -> tuple[x509.Certificate, ...]:
    """The certificates of PEM files (a file may hold several); raises ValueError if unreadable."""
    anchors: list[x509.Certificate] = []
    for path in pem_files:
        anchors.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return tuple(anchors)


# --------------------------------------------------------------------------------------------
# Entry points


def validate_pdf(*, session: Session, runtime: CaRuntime, pdf: bytes) -> ValidationReport:
    """Every signature of a signed PDF (PAdES / adbe.pkcs7.detached), in document order."""
    if len(pdf) > runtime.validation_max_bytes:
        raise too_large(runtime.validation_max_bytes)
    if not pdf.lstrip()[:5] == b"%PDF-":
        raise UnreadableDocument(N_("The file is not a PDF document."))
    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        embedded = [
            signature
            for signature in reader.embedded_signatures
            if signature.sig_object_type == "/Sig"
        ]
    except Exception as error:  # any parser failure on hostile input is the sender's problem
        log.info("unreadable PDF: %s", error)
        raise UnreadableDocument(
            N_("The PDF document is damaged or truncated and cannot be read.")
        ) from None
    if not embedded:
        raise NoSignature(N_("The document carries no signature."))
    if len(embedded) > MAX_SIGNATURES:
        # Each costs tens of milliseconds of CPU: a crafted file must not hold a worker.
        raise UnreadableDocument(
            N_("The document carries more than %(limit)s signatures."), limit=MAX_SIGNATURES
        )
    context = _Context.build(session, runtime)
    reports = tuple(_validate_embedded(context, signature) for signature in embedded)
    return ValidationReport(
        kind="pades",
        document_sha256=hashlib.sha256(pdf).hexdigest(),
        document_size=len(pdf),
        validated_at=runtime.clock.now(),
        signatures=reports,
    )


def validate_detached(
    *,
    session: Session,
    runtime: CaRuntime,
    document: bytes,
    signature: bytes,
) -> ValidationReport:
    """A detached CMS signature (RFC 5652, DER or PEM) over ``document``."""
    if len(document) + len(signature) > runtime.validation_max_bytes:
        raise too_large(runtime.validation_max_bytes)
    signed_data = _signed_data(signature)
    context = _Context.build(session, runtime)
    report = _validate_cms(context, signed_data, document)
    return ValidationReport(
        kind="cms",
        document_sha256=hashlib.sha256(document).hexdigest(),
        document_size=len(document),
        validated_at=runtime.clock.now(),
        signatures=(report,),
    )


def _signed_data(signature: bytes) -> cms.SignedData:
    try:
        if asn1_pem.detect(signature):
            _, _, signature = asn1_pem.unarmor(signature)
        content = cms.ContentInfo.load(signature)
        if content["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signed_data: cms.SignedData = content["content"]
        if len(signed_data["signer_infos"]) != 1:
            raise ValueError("not exactly one signer")
        signed_data.native  # noqa: B018 — parse it all now: asn1crypto parses lazily
    except Exception as error:
        log.info("unreadable CMS signature: %s", error)
        raise UnreadableDocument(
            N_("The signature file is not a CMS signature (PKCS #7) with one signer.")
        ) from None
    if signed_data["encap_content_info"]["content"].native is not None:
        raise UnreadableDocument(
            N_("The signature file holds the document itself; send a detached signature.")
        )
    return signed_data


# --------------------------------------------------------------------------------------------
# What every signature's validation shares


@dataclass
class _Context:
    session: Session
    runtime: CaRuntime
    now: datetime
    roots: list[asn1_x509.Certificate]
    intermediates: list[asn1_x509.Certificate]
    our_certificates: dict[bytes, IssuedCertificate] = field(default_factory=dict)

    @classmethod
    def build(cls, session: Session, runtime: CaRuntime) -> _Context:
        authorities = runtime.authorities(session).values()
        roots = [_asn1(a.certificate) for a in authorities if a.role == "root"]
        issuing = [_asn1(a.certificate) for a in authorities if a.role != "root"]
        return cls(
            session=session,
            runtime=runtime,
            now=runtime.clock.now(),
            roots=[*roots, *(_asn1(anchor) for anchor in runtime.validation_anchors)],
            intermediates=issuing,
        )

    def validation_context(self, *, ours: bool, moment: datetime | None) -> ValidationContext:
        """Our certificates' status comes from our table, so pyhanko fetches nothing for them;
        others' from their OCSP responders and CRLs (a failed fetch is then an error)."""
        fetch = not ours and self.runtime.validation_fetch_revocation
        return ValidationContext(
            trust_roots=self.roots,
            other_certs=self.intermediates,
            allow_fetching=fetch,
            revocation_mode="hard-fail" if fetch else "soft-fail",
            moment=moment or self.now,
            best_signature_time=moment or self.now,
        )

    def timestamp_context(self) -> ValidationContext:
        return ValidationContext(
            trust_roots=self.roots,
            other_certs=self.intermediates,
            allow_fetching=self.runtime.validation_fetch_revocation,
            revocation_mode="soft-fail",
            moment=self.now,
        )

    def ours(self, certificate: asn1_x509.Certificate | None) -> IssuedCertificate | None:
        """Our table's row for a certificate we issued (the same DER), else None."""
        if certificate is None:
            return None
        der = certificate.dump()
        if der not in self.our_certificates:
            row = self.session.scalar(
                select(IssuedCertificate).where(
                    IssuedCertificate.serial == format(certificate.serial_number, "x")
                )
            )
            if row is None or row.der != der:
                return None
            self.our_certificates[der] = row
        return self.our_certificates[der]


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


Validator = Callable[
    [ValidationContext, ValidationContext], Coroutine[Any, Any, StandardCMSSignatureStatus]
]


def _validate_embedded(context: _Context, embedded: Any) -> SignatureReport:
    def validate(
        signer: ValidationContext, timestamps: ValidationContext
    ) -> Coroutine[Any, Any, StandardCMSSignatureStatus]:
        return async_validate_pdf_signature(
            embedded, signer_validation_context=signer, ts_validation_context=timestamps
        )

    return _validate_one(
        context, embedded.field_name, lambda: embedded.signer_cert, validate, pdf=True
    )


def _validate_cms(
    context: _Context, signed_data: cms.SignedData, document: bytes
) -> SignatureReport:
    def validate(
        signer: ValidationContext, timestamps: ValidationContext
    ) -> Coroutine[Any, Any, StandardCMSSignatureStatus]:
        return async_validate_detached_cms(
            document,
            signed_data,
            signer_validation_context=signer,
            ts_validation_context=timestamps,
        )

    return _validate_one(
        context,
        None,
        lambda: extract_certificate_info(signed_data).signer_cert,
        validate,
        pdf=False,
    )


def _validate_one(
    context: _Context,
    field_name: str | None,
    signer_certificate: Callable[[], asn1_x509.Certificate],
    validate: Validator,
    *,
    pdf: bool,
) -> SignatureReport:
    try:
        signer_cert: asn1_x509.Certificate | None = signer_certificate()
    except Exception:  # no signer certificate in the structure: judged as unreadable below
        signer_cert = None
    row = context.ours(signer_cert)

    def run(moment: datetime | None) -> StandardCMSSignatureStatus:
        # pyHanko is asynchronous; this runs in a worker thread, which has no event loop.
        return asyncio.run(
            validate(
                context.validation_context(ours=row is not None, moment=moment),
                context.timestamp_context(),
            )
        )

    return _judge(context, field_name, row, run, pdf=pdf)


# --------------------------------------------------------------------------------------------
# The judgement (ETSI EN 319 102-1 §5.3 and §5.5, simplified to what the service can prove)


def _judge(
    context: _Context,
    field_name: str | None,
    row: IssuedCertificate | None,
    run: Callable[[datetime | None], StandardCMSSignatureStatus],
    *,
    pdf: bool,
) -> SignatureReport:
    try:
        status = run(None)
    except Exception as error:  # a malformed signature dictionary or CMS structure
        log.info("signature %s could not be validated: %s", field_name, error)
        return _unreadable(field_name)
    timestamp = status.timestamp_validity
    proof_of_existence = _proof_of_existence(context, timestamp)
    if (
        status.trust_problem_indic
        in (AdESIndeterminate.OUT_OF_BOUNDS_NO_POE, AdESIndeterminate.EXPIRED)
        and proof_of_existence is not None
    ):
        # Expired now, but a trusted timestamp proves the signature existed earlier: judge the
        # certificate at that time (§5.5.4).
        try:
            status = run(proof_of_existence)
        except Exception as error:
            log.info("signature %s could not be validated again: %s", field_name, error)
            return _unreadable(field_name)

    claimed = status.signer_reported_dt
    indication, sub = _cryptographic_verdict(status, pdf=pdf)
    certificate_status, source, revoked_at, reason, at_signing = "unknown", None, None, None, ""
    if indication == PASSED:
        if row is not None:
            certificate_status, revoked_at, reason = (
                row.status,
                row.revoked_at,
                row.revocation_reason,
            )
            source = "ca_status_table"
            indication, sub, at_signing = _our_status_verdict(
                context, status, row, proof_of_existence, claimed
            )
        else:
            source = "ocsp_crl"
            indication, sub, at_signing, revoked_at, reason = _foreign_status_verdict(
                status, proof_of_existence, claimed
            )
            certificate_status = "revoked" if revoked_at else "good"
    if not at_signing:
        at_signing = "unknown"
    signer = _signer_facts(context, status.signing_cert, row)
    path = status.validation_path
    chain = (
        tuple(_rfc4514(cert) for cert in path.iter_certs(include_root=True))
        if path is not None
        else ()
    )
    coverage = getattr(status, "coverage", None)
    return SignatureReport(
        indication=indication,
        sub_indication=sub,
        field_name=field_name,
        intact=bool(status.intact),
        signature_valid=bool(status.valid),
        covers_whole_document=(coverage == SignatureCoverageLevel.ENTIRE_FILE) if pdf else None,
        modified_after_signing=pdf and _modified(status),
        signer=signer,
        trusted_chain=path is not None and status.trust_problem_indic is None,
        trust_anchor=chain[0] if chain else None,
        chain=chain,
        certificate_status=certificate_status,
        status_source=source,
        revoked_at=revoked_at,
        revocation_reason=reason,
        status_at_signing_time=at_signing,
        claimed_signing_time=claimed,
        timestamp_present=timestamp is not None,
        timestamp_valid=proof_of_existence is not None,
        timestamp_time=timestamp.timestamp if timestamp is not None else None,
        timestamp_authority=(_rfc4514(timestamp.signing_cert) if timestamp is not None else None),
        hash_algorithm=status.md_algorithm,
    )


def _unreadable(field_name: str | None) -> SignatureReport:
    return SignatureReport(
        indication=INDETERMINATE, sub_indication="FORMAT_FAILURE", field_name=field_name
    )


def _proof_of_existence(
    context: _Context, timestamp: TimestampSignatureStatus | None
) -> datetime | None:
    """The time a valid, trusted signature timestamp proves (§5.4); else None. A TSA
    certificate of ours counts only while our table does not say it was revoked before the
    time it vouches for."""
    if timestamp is None or not (timestamp.intact and timestamp.valid and timestamp.trusted):
        return None
    tsa = context.ours(timestamp.signing_cert)
    if tsa is not None and tsa.status != "good" and tsa.revoked_at is not None:
        effective = min(tsa.revoked_at, tsa.invalidity_date or tsa.revoked_at)
        if effective <= timestamp.timestamp:
            return None
    return timestamp.timestamp


def _modified(status: Any) -> bool:
    """Changes after signing that are more than adding signatures or validation data."""
    if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        return False
    return not status.docmdp_ok


def _name(sub: AdESSubIndic | None) -> str | None:
    return sub.name if isinstance(sub, AdESFailure | AdESIndeterminate) else None


def _cryptographic_verdict(status: Any, *, pdf: bool) -> tuple[str, str | None]:
    """Integrity, signature and chain, before the certificate's status (§5.2.7, §5.2.6)."""
    if not status.intact:
        return FAILED, AdESFailure.HASH_FAILURE.name
    if not status.valid:
        return FAILED, AdESFailure.SIG_CRYPTO_FAILURE.name
    if pdf and _modified(status):
        # The signed revision is intact but what a reader sees was changed afterwards.
        return FAILED, AdESFailure.HASH_FAILURE.name
    if status.validation_path is None:
        # pyHanko names a self-signed stranger a chain constraints failure; for the reader it
        # is a signer we cannot tie to any trusted authority.
        return INDETERMINATE, AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND.name
    if status.trust_problem_indic is not None:
        sub = status.trust_problem_indic
        if sub == AdESFailure.REVOKED or sub in (
            AdESIndeterminate.REVOKED_NO_POE,
            AdESIndeterminate.REVOKED_CA_NO_POE,
        ):
            # Judged below against the time of signing.
            return PASSED, None
        return _INDICATIONS[sub.status], _name(sub)
    return PASSED, None


def _revocation_verdict(
    revoked_at: datetime, proof_of_existence: datetime | None, claimed: datetime | None
) -> tuple[str, str | None, str]:
    """§5.5.4: revoked after a proven time passes; before it (or before the signer's own
    claimed time) fails; after an unproven claimed time is indeterminate."""
    if proof_of_existence is not None:
        if proof_of_existence < revoked_at:
            return PASSED, None, "good"
        return FAILED, AdESFailure.REVOKED.name, "revoked"
    if claimed is not None and claimed >= revoked_at:
        return FAILED, AdESFailure.REVOKED.name, "revoked"
    return INDETERMINATE, AdESIndeterminate.REVOKED_NO_POE.name, "unknown"


def _our_status_verdict(
    context: _Context,
    status: Any,
    row: IssuedCertificate,
    proof_of_existence: datetime | None,
    claimed: datetime | None,
) -> tuple[str, str | None, str]:
    # The issuing CA is in our table too (the root's revocations): its revocation counts.
    chain_rows = [row]
    path = status.validation_path
    if path is not None:
        for certificate in path.iter_certs(include_root=False):
            ca_row = context.ours(certificate)
            if ca_row is not None and ca_row is not row:
                chain_rows.append(ca_row)
    verdict: tuple[str, str | None, str] = (PASSED, None, "good")
    for certificate in chain_rows:
        if certificate.status == "good" or certificate.revoked_at is None:
            continue
        # A key compromised before it was reported: signatures after the invalidity date are
        # not the holder's either.
        effective = certificate.revoked_at
        if certificate.invalidity_date is not None:
            effective = min(effective, certificate.invalidity_date)
        if certificate.status == "hold":
            moment = proof_of_existence or claimed or context.now
            if moment >= effective:
                # §5.2.6: on hold may still be released.
                verdict = _worse(verdict, (INDETERMINATE, AdESIndeterminate.TRY_LATER.name, "hold"))
            continue
        outcome = _revocation_verdict(effective, proof_of_existence, claimed)
        if certificate is not row and outcome[0] != PASSED:
            # §5.2.6: the CA's own revocation.
            outcome = (
                outcome[0],
                AdESIndeterminate.REVOKED_CA_NO_POE.name
                if outcome[0] == INDETERMINATE
                else outcome[1],
                outcome[2],
            )
        verdict = _worse(verdict, outcome)
    return verdict


def _foreign_status_verdict(
    status: Any, proof_of_existence: datetime | None, claimed: datetime | None
) -> tuple[str, str | None, str, datetime | None, str | None]:
    details = status.revocation_details
    if details is None:
        return PASSED, None, "good", None, None
    reason = details.revocation_reason.native if details.revocation_reason else None
    verdict = _revocation_verdict(details.revocation_date, proof_of_existence, claimed)
    return *verdict, details.revocation_date, reason


def _worse(
    first: tuple[str, str | None, str], second: tuple[str, str | None, str]
) -> tuple[str, str | None, str]:
    return second if _SEVERITY[second[0]] > _SEVERITY[first[0]] else first


def _signer_facts(
    context: _Context, certificate: asn1_x509.Certificate | None, row: IssuedCertificate | None
) -> SignerFacts | None:
    if certificate is None:
        return None
    parsed = x509.load_der_x509_certificate(certificate.dump())
    facts = SignerFacts(
        subject=dn_text(parsed.subject),
        common_name=_common_name(parsed.subject),
        serial=openssl_serial(format(certificate.serial_number, "x")),
        issuer=dn_text(parsed.issuer),
        issuer_common_name=_common_name(parsed.issuer),
        ours=row is not None,
    )
    if row is None:
        return facts
    identity = (
        context.runtime.directory.find(context.session, subject_ref=row.subject_ref)
        if row.subject_ref
        else None
    )
    unit_names = (
        context.runtime.directory.unit_names(context.session, codes=[row.unit_code])
        if row.unit_code
        else {}
    )
    return SignerFacts(
        subject=facts.subject,
        common_name=facts.common_name,
        serial=facts.serial,
        issuer=facts.issuer,
        issuer_common_name=facts.issuer_common_name,
        ours=True,
        full_name=identity.full_name if identity else row.common_name,
        username=identity.username if identity else None,
        subject_ref=row.subject_ref,
        unit_code=row.unit_code,
        unit_name=unit_names.get(row.unit_code or "") or (identity.unit_name if identity else None),
        agency=identity.agency if identity else None,
        position=identity.position if identity else None,
    )


def _common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _rfc4514(certificate: asn1_x509.Certificate) -> str:
    return dn_text(x509.load_der_x509_certificate(certificate.dump()).subject)


def record(
    *, session: Session, runtime: CaRuntime, actor: str, report: ValidationReport, via: str
) -> None:
    """The audit entry of a validation, in the request's transaction: who checked which
    document (its SHA-256, never its content) and what was found."""
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.signature.validated",
        target=f"sha256:{report.document_sha256}",
        details={
            "via": via,
            "kind": report.kind,
            "indication": report.indication,
            "signatures": [
                {
                    "indication": signature.indication,
                    "sub_indication": signature.sub_indication,
                    "signer_serial": signature.signer.serial if signature.signer else None,
                }
                for signature in report.signatures
            ],
        },
    )
