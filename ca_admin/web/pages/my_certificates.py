"""``/ca/pages/``: the official's own certificates and requests, downloads, key-file collection.

An official sees only rows whose ``subject_ref`` is their ``sub``; an admin may also download
the certificates of the units they administer (the same rule as the REST API).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ca_admin import certificate_requests, labels, pkcs12_delivery, renewals, revocation
from ca_admin.errors import PolicyViolation
from ca_admin.hierarchy import chain_of
from ca_admin.models import CertificateRequest, IssuedCertificate
from ca_admin.profiles import get_profile
from ca_admin.serials import openssl_serial
from ca_admin.web.pages import first_certificate
from ca_admin.web.pages.page_scope import PREFIX, PageScope, run_page
from core.errors import DomainError, PermissionDenied
from core.web.i18n import N_

# Notices after a POST-redirect-GET (?done=...): a fixed list, never text from the URL.
NOTICES = {
    "renewal": N_(
        "Your renewal request was sent. It is waiting for approval by your unit's administrator."
    ),
    "issued": N_("Your new certificate was issued."),
    "key_reported": N_(
        "The certificate was revoked because its key is lost or compromised. A message was "
        "sent to your e-mail address."
    ),
    "request": N_(
        "Your certificate request was sent. It is waiting for approval by your unit's "
        "administrator."
    ),
}
STATUS_LABELS = labels.CERTIFICATE_STATUSES
REQUEST_STATUS_LABELS = labels.REQUEST_STATUSES


@dataclass(frozen=True)
class CertificateView:
    serial: str
    common_name: str
    profile_title: str
    unit_code: str | None
    status: str  # good | renewed (a valid successor is issued) | hold | revoked | expired
    not_before: datetime
    not_after: datetime
    days_left: int
    renewable: bool  # inside the renewal window, valid
    window_opens: datetime
    revocation_reason: str | None


def renewal_window_opens(certificate: IssuedCertificate) -> datetime:
    window = get_profile(certificate.profile).renewal_window_days
    return certificate.not_after - timedelta(days=window)


def view_of(
    certificate: IssuedCertificate, now: datetime, *, renewed: bool = False
) -> CertificateView:
    """``renewed``: a valid successor is issued (``renewals.renewed_ids``): shown "renewed",
    with no second renewal, until it is superseded."""
    expired = certificate.not_after <= now
    status = "expired" if expired and certificate.status == "good" else certificate.status
    if status == "good" and renewed:
        status = "renewed"
    try:
        profile_title = get_profile(certificate.profile).title
        opens = renewal_window_opens(certificate)
    except PolicyViolation:  # a CA's own certificate: not an official's to renew
        profile_title, opens = certificate.profile, certificate.not_after
    return CertificateView(
        serial=certificate.serial,
        common_name=certificate.common_name,
        profile_title=profile_title,
        unit_code=certificate.unit_code,
        status=status,
        not_before=certificate.not_before,
        not_after=certificate.not_after,
        days_left=max(0, math.ceil((certificate.not_after - now) / timedelta(days=1))),
        renewable=status == "good" and opens <= now < certificate.not_after,
        window_opens=opens,
        revocation_reason=certificate.revocation_reason,
    )


def _show(scope: PageScope) -> Response:
    if scope.user is None:
        return scope.render("ca_welcome.html")
    session, now = scope.session, scope.runtime.clock.now()
    certificates = session.scalars(
        select(IssuedCertificate)
        .where(IssuedCertificate.subject_ref == scope.user.sub)
        .order_by(IssuedCertificate.not_after.desc())
        .limit(100)
    ).all()
    renewed = renewals.renewed_ids(session, [c.id for c in certificates])
    requests = session.scalars(
        select(CertificateRequest)
        .where(CertificateRequest.subject_ref == scope.user.sub)
        .order_by(CertificateRequest.id.desc())
        .limit(20)
    ).all()
    return scope.render(
        "my_certificates.html",
        {
            "certificates": [view_of(c, now, renewed=c.id in renewed) for c in certificates],
            "requests": requests,
            "status_labels": STATUS_LABELS,
            "request_status_labels": REQUEST_STATUS_LABELS,
            "notice": NOTICES.get(scope.query.get("done", "")),
            "may_request": first_certificate.reason_not_to_request(scope) is None,
        },
    )


def readable_certificate(scope: PageScope, serial: str) -> IssuedCertificate:
    """The holder's own certificate, or one of a unit the signed-in admin administers."""
    certificate = revocation.find_certificate(scope.session, serial)
    user = scope.signed_in
    if certificate.subject_ref != user.sub and not scope.runtime.approvers.may_administer(
        scope.session, actor_ref=user.sub, unit_code=certificate.unit_code
    ):
        raise PermissionDenied(N_("This certificate is not yours."))
    return certificate


def _download(scope: PageScope) -> Response:
    certificate = readable_certificate(scope, scope.request.path_params["serial"])
    form = scope.query.get("format", "pem")
    if form == "der":
        return Response(
            certificate.der,
            media_type="application/pkix-cert",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="{openssl_serial(certificate.serial)}.cer"'
                )
            },
        )
    ders = [certificate.der]
    name = f"{openssl_serial(certificate.serial)}.pem"
    if form == "chain":
        chain = chain_of(scope.session, scope.runtime, certificate.authority_id)
        ders += [ca.public_bytes(Encoding.DER) for ca in chain]
        name = f"{openssl_serial(certificate.serial)}-chain.pem"
    pem = b"".join(x509.load_der_x509_certificate(d).public_bytes(Encoding.PEM) for d in ders)
    return Response(
        pem,
        media_type="application/x-pem-file",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def _own_request(scope: PageScope) -> CertificateRequest:
    request = certificate_requests.find_request(
        scope.session, scope.request.path_params["request_id"]
    )
    if request.subject_ref != scope.signed_in.sub:
        raise PermissionDenied(N_("Only the official can collect their own key file."))
    return request


def _collect_form(scope: PageScope) -> Response:
    request = _own_request(scope)
    return scope.render("collect_key.html", {"request_row": request, "errors": {}})


def _collect(scope: PageScope) -> Response:
    request = _own_request(scope)
    password = scope.form.get("password", "")
    confirm = scope.form.get("password_confirm", "")
    errors: dict[str, DomainError] = {}
    try:
        pkcs12_delivery.check_password(password)
    except DomainError as error:
        errors["password"] = error
    if not errors and password != confirm:
        errors["password_confirm"] = DomainError(N_("The two passwords are not the same."))
    if errors:
        return scope.render(
            "collect_key.html", {"request_row": request, "errors": errors}, status_code=400
        )
    issued, data = certificate_requests.collect_pkcs12(
        session=scope.session,
        runtime=scope.runtime,
        actor=scope.signed_in.sub,
        request_id=request.request_id,
        password=password,
    )
    return Response(
        data,
        media_type="application/x-pkcs12",
        headers={
            "Content-Disposition": f'attachment; filename="{openssl_serial(issued.serial)}.p12"',
            "Cache-Control": "no-store",
        },
    )


async def home(request: Request) -> Response:
    return await run_page(request, _show, login_required=False)


async def home_redirect(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=308)


async def download(request: Request) -> Response:
    return await run_page(request, _download)


async def collect_form(request: Request) -> Response:
    return await run_page(request, _collect_form)


async def collect(request: Request) -> Response:
    return await run_page(request, _collect)
