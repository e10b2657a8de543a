"""``/ca/pages/admin/requests``: the RA queue of the units the signed-in admin administers.

Scope comes from the IdP's delegated roles through ``runtime.approvers`` (the one bridge; ca_admin
never asks idp directly). Approval and rejection go through ``certificate_requests``, which
checks the scope again and refuses self-approval with its own message; both audit in the
request's transaction.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ca_admin import certificate_requests
from ca_admin.models import Approval, CertificateRequest, IssuedCertificate
from ca_admin.profiles import get_profile
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
        return f"EC {key.curve.name}"
    return type(key).__name__


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
