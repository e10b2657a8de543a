"""``/ca/pages/admin/requests``: the RA queue of the units the signed-in admin administers.

Scope comes from the IdP's delegated roles through ``runtime.approvers`` (the one bridge; ca_admin
never asks idp directly). Approval and rejection go through ``certificate_requests``, which
checks the scope again and refuses self-approval with its own message; both audit in the
request's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ca_admin import certificate_requests
from ca_admin.models import Approval, CertificateRequest, IssuedCertificate
from ca_admin.officials import OfficialIdentity
from ca_admin.profiles import ID_KP_DOCUMENT_SIGNING, dn_text, get_profile
from ca_admin.web.pages.page_scope import PREFIX, PageScope, run_page
from core.errors import DomainError, PermissionDenied
from core.web.i18n import N_

NOT_AN_ADMIN = N_("You do not administer any unit.")
NOTICES = {
    "approved": N_("The request was approved."),
    "rejected": N_("The request was rejected."),
}


def reach_of(scope: PageScope) -> frozenset[str] | None:
    """Units the admin administers (None: all); refuses anyone who administers none."""
    reach = scope.runtime.approvers.administered_unit_codes(
        scope.session, actor_ref=scope.signed_in.sub
    )
    if reach is not None and not reach:
        raise PermissionDenied(NOT_AN_ADMIN)
    return reach


def _key_summary(row: CertificateRequest) -> str:
    if row.server_keygen or row.csr_der is None:
        return "server"
    key = x509.load_der_x509_csr(row.csr_der).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name} ({key.key_size} bits)"
    return type(key).__name__


@dataclass(frozen=True)
class RequestCard:
    """What the approver reads before allowing a request (EJBCA's RA shows the whole request):
    who asked, the official's verified data, and the certificate that would be issued now."""

    requester_username: str
    requester_name: str | None
    official: OfficialIdentity | None
    subject: str | None  # the subject DN that will be issued (RFC 4514, attributes named)
    extensions: list[tuple[str, str]]  # (name, value) of each extension that will be issued
    not_after: datetime | None
    problem: DomainError | None  # why it cannot be issued as it stands (an incomplete record)


_KEY_USAGES = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "nonRepudiation"),
    ("key_encipherment", "keyEncipherment"),
    ("key_agreement", "keyAgreement"),
)


def _extension_text(value: x509.ExtensionType) -> str:
    if isinstance(value, x509.KeyUsage):
        return ", ".join(name for attribute, name in _KEY_USAGES if getattr(value, attribute))
    if isinstance(value, x509.ExtendedKeyUsage):
        return ", ".join(_oid_name(oid) for oid in value)
    if isinstance(value, x509.SubjectAlternativeName | x509.IssuerAlternativeName):
        return ", ".join(str(name.value) for name in value)
    if isinstance(value, x509.CRLDistributionPoints):
        return ", ".join(str(name.value) for point in value for name in (point.full_name or []))
    if isinstance(value, x509.AuthorityInformationAccess):
        return ", ".join(f"{_oid_name(d.access_method)}: {d.access_location.value}" for d in value)
    if isinstance(value, x509.BasicConstraints):
        return "CA" if value.ca else "end entity"
    if isinstance(value, x509.CertificatePolicies):
        return ", ".join(p.policy_identifier.dotted_string for p in value)
    if isinstance(value, x509.SubjectKeyIdentifier | x509.AuthorityKeyIdentifier):
        return "…"
    return type(value).__name__


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = oid._name  # cryptography's name for the OIDs it knows, else "Unknown OID"
    if oid.dotted_string == ID_KP_DOCUMENT_SIGNING.dotted_string:
        return "documentSigning"
    return name if name != "Unknown OID" else oid.dotted_string


def _card(scope: PageScope, row: CertificateRequest) -> RequestCard:
    directory, session = scope.runtime.directory, scope.session
    requester = directory.find(session, subject_ref=row.requested_by)
    official = directory.find(session, subject_ref=row.subject_ref)
    subject, extensions, not_after, problem = None, [], None, None
    try:
        with session.begin_nested():
            certificate = certificate_requests.preview(
                session=session, runtime=scope.runtime, request=row
            )
        subject = dn_text(certificate.subject)
        extensions = [
            (_oid_name(extension.oid), _extension_text(extension.value))
            for extension in certificate.extensions
            if not isinstance(
                extension.value, x509.SubjectKeyIdentifier | x509.AuthorityKeyIdentifier
            )
        ]
        not_after = certificate.not_valid_after_utc
    except DomainError as error:
        problem = error
    return RequestCard(
        requester_username=requester.username if requester else row.requested_by,
        requester_name=requester.full_name if requester else None,
        official=official,
        subject=subject,
        extensions=extensions,
        not_after=not_after,
        problem=problem,
    )


def _render(
    scope: PageScope,
    *,
    row_errors: dict[str, dict[str, DomainError]] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    reach = reach_of(scope)
    statement = select(CertificateRequest).where(CertificateRequest.status == "pending")
    if reach is not None:
        statement = statement.where(CertificateRequest.unit_code.in_(sorted(reach)))
    rows = scope.session.scalars(statement.order_by(CertificateRequest.id).limit(200)).all()
    approvals = {
        row.id: list(
            scope.session.scalars(select(Approval.approver).where(Approval.request_id == row.id))
        )
        for row in rows
    }
    renewals = {
        row.id: scope.session.get(IssuedCertificate, row.renewal_of_id)
        for row in rows
        if row.renewal_of_id
    }
    return scope.render(
        "admin_requests.html",
        {
            "rows": rows,
            "approvals": approvals,
            "renewals": renewals,
            "profiles": {row.id: get_profile(row.profile).title for row in rows},
            "keys": {row.id: _key_summary(row) for row in rows},
            "cards": {row.id: _card(scope, row) for row in rows},
            "row_errors": row_errors or {},
            # An error about a request not in the list (another unit's): shown at the top.
            "other_errors": [
                error
                for request_id, errors in (row_errors or {}).items()
                if request_id not in {row.request_id for row in rows}
                for error in errors.values()
            ],
            "values": values or {},
            "notice": NOTICES.get(scope.query.get("done", "")),
        },
        status_code=status_code,
    )


def _show(scope: PageScope) -> Response:
    return _render(scope)


def _decide(scope: PageScope, decision: str) -> Response:
    reach_of(scope)
    request_id = scope.request.path_params["request_id"]
    reason = scope.form.get("reason", "").strip()
    if decision == "reject" and not reason:
        error = DomainError(N_("Give the reason for the rejection."), field="reason")
        return _render(scope, row_errors={request_id: {"reason": error}}, status_code=400)
    try:
        with scope.session.begin_nested():
            if decision == "approve":
                certificate_requests.approve(
                    session=scope.session,
                    runtime=scope.runtime,
                    actor=scope.signed_in.sub,
                    request_id=request_id,
                )
            else:
                certificate_requests.reject(
                    session=scope.session,
                    runtime=scope.runtime,
                    actor=scope.signed_in.sub,
                    request_id=request_id,
                    reason=reason,
                )
    except DomainError as error:
        return _render(
            scope,
            row_errors={request_id: {"reason" if decision == "reject" else "row": error}},
            values={"reason": reason},
            status_code=error.status_code,
        )
    done = "approved" if decision == "approve" else "rejected"
    return RedirectResponse(f"{PREFIX}/admin/requests?done={done}", status_code=303)


async def queue(request: Request) -> Response:
    return await run_page(request, _show)


async def approve(request: Request) -> Response:
    return await run_page(request, lambda scope: _decide(scope, "approve"))


async def reject(request: Request) -> Response:
    return await run_page(request, lambda scope: _decide(scope, "reject"))
