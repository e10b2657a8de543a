"""``/ca/pages/renew/{serial}``: an official renews their own certificate (issue 5).

Only inside the profile's renewal window (default 30 days before expiry), and, like every
request an official sends, only after a fresh authentication and with the key made one of
three ways (``key_request_form.py``). The request names the certificate it renews
(``renewal_of_serial``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ca_admin import renewals
from ca_admin.models import IssuedCertificate
from ca_admin.profiles import get_profile
from ca_admin.serials import openssl_serial
from ca_admin.web.pages import key_request_form
from ca_admin.web.pages.key_request_form import KeyRequest
from ca_admin.web.pages.my_certificates import CertificateView, readable_certificate, view_of
from ca_admin.web.pages.page_scope import PREFIX, PageScope, run_page
from core.errors import DomainError, PermissionDenied
from core.web.i18n import N_


def _own(scope: PageScope) -> IssuedCertificate:
    certificate = readable_certificate(scope, scope.request.path_params["serial"])
    if certificate.subject_ref != scope.signed_in.sub:
        raise PermissionDenied(N_("Only the holder can renew a certificate."))
    return certificate


def _view(scope: PageScope, certificate: IssuedCertificate) -> CertificateView:
    renewed = certificate.id in renewals.renewed_ids(scope.session, [certificate.id])
    return view_of(certificate, scope.runtime.clock.now(), renewed=renewed)


def _kind(certificate: IssuedCertificate) -> KeyRequest:
    return KeyRequest(
        action=f"{PREFIX}/renew/{openssl_serial(certificate.serial)}",
        profile=certificate.profile,
        renewal_of_serial=certificate.serial,
        done_notice="renewal",
        submit_label=N_("Send the renewal request"),
        reauth_hint=N_(
            "For your security, confirm your password (and your one-time code, if you use "
            "one) before renewing."
        ),
    )


def _render(
    scope: PageScope,
    certificate: IssuedCertificate,
    *,
    errors: dict[str, DomainError] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    profile = get_profile(certificate.profile)
    return scope.render(
        "renewal.html",
        {
            "certificate": _view(scope, certificate),
            "window_days": profile.renewal_window_days,
            "holder": certificate.common_name,
            **key_request_form.form_context(
                scope,
                _kind(certificate),
                server_keygen_allowed=profile.server_keygen_allowed,
                errors=errors,
                values=values,
            ),
        },
        status_code=status_code,
    )


def _show(scope: PageScope) -> Response:
    return _render(scope, _own(scope))


def _submit(scope: PageScope) -> Response:
    certificate = _own(scope)
    if not _view(scope, certificate).renewable:
        values = key_request_form.form_values(scope)
        return _render(scope, certificate, values=values, status_code=409)

    def rerender(errors: dict[str, DomainError], values: dict[str, str], status: int) -> Response:
        return _render(scope, certificate, errors=errors, values=values, status_code=status)

    return key_request_form.submit(scope, _kind(certificate), rerender)


async def renewal_page(request: Request) -> Response:
    return await run_page(request, _show)


async def renewal_submit(request: Request) -> Response:
    return await run_page(request, _submit)
