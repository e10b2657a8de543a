"""``/ca/pages/certificates/{serial}/report-lost``: the holder reports a lost or compromised key.

Like a renewal, only after a fresh authentication (the password confirmed within five minutes,
``key_request_form.is_fresh``): a session left open on a shared computer must not be enough to
revoke an official's certificate. CSRF is checked by ``run_page``; ``key_compromise.report``
revokes, audits in the same transaction and tells the holder by e-mail.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ca_admin import key_compromise
from ca_admin.models import IssuedCertificate
from ca_admin.serials import openssl_serial
from ca_admin.web.pages.admin_certificates import parse_date
from ca_admin.web.pages.key_request_form import is_fresh
from ca_admin.web.pages.my_certificates import readable_certificate, view_of
from ca_admin.web.pages.page_scope import PREFIX, PageScope, login_location, run_page
from core.errors import DomainError, PermissionDenied
from core.web.i18n import N_


def _own(scope: PageScope) -> IssuedCertificate:
    certificate = readable_certificate(scope, scope.request.path_params["serial"])
    if certificate.subject_ref != scope.signed_in.sub:
        raise PermissionDenied(N_("Only the holder can report their key lost or compromised."))
    return certificate


def may_report(certificate: IssuedCertificate) -> bool:
    """Valid, on hold, or revoked for another reason (the reason becomes keyCompromise)."""
    return certificate.status in ("good", "hold") or (
        certificate.status == "revoked" and certificate.revocation_reason != "keyCompromise"
    )


def _render(
    scope: PageScope,
    certificate: IssuedCertificate,
    *,
    errors: dict[str, DomainError] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return scope.render(
        "report_key.html",
        {
            "certificate": view_of(certificate, scope.runtime.clock.now()),
            "may_report": may_report(certificate),
            "fresh": is_fresh(scope),
            "reauth_url": login_location(scope.request, reauth=True),
            "errors": errors or {},
            "values": values or {},
        },
        status_code=status_code,
    )


def _show(scope: PageScope) -> Response:
    return _render(scope, _own(scope))


def _submit(scope: PageScope) -> Response:
    certificate = _own(scope)
    values = {"invalidity_date": scope.form.get("invalidity_date", "")}
    if not may_report(certificate):
        return _render(scope, certificate, values=values, status_code=409)
    if not is_fresh(scope):
        error = DomainError(
            N_(
                "For your security, confirm your password again (the last confirmation is "
                "more than 5 minutes old), then send the report again."
            )
        )
        return _render(scope, certificate, errors={"reauth": error}, values=values, status_code=401)
    try:
        day = parse_date(values["invalidity_date"])
        with scope.session.begin_nested():
            key_compromise.report(
                session=scope.session,
                runtime=scope.runtime,
                actor=scope.signed_in.sub,
                serial=certificate.serial,
                invalidity_date=datetime.combine(day, time(), tzinfo=UTC) if day else None,
            )
    except DomainError as error:
        scope.session.refresh(certificate)
        return _render(
            scope,
            certificate,
            errors={"invalidity_date": error},
            values=values,
            status_code=error.status_code,
        )
    return RedirectResponse(
        f"{PREFIX}/?done=key_reported#cert-{openssl_serial(certificate.serial)}", status_code=303
    )


async def report_page(request: Request) -> Response:
    return await run_page(request, _show)


async def report_submit(request: Request) -> Response:
    return await run_page(request, _submit)
