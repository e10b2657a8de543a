"""``/ca/pages/request``: an official asks for a signing certificate when they have none that
is valid (issue 19: the first certificate, or a new one after the last expired or was
revoked). A valid certificate is renewed instead (``renewal.py``); one open request at a time.

The request is the same as a renewal's (``key_request_form.py``: a fresh authentication, the
key made one of three ways) without a certificate to renew, and goes to the same RA step: the
unit's administrator approves it, and nobody approves their own request.
"""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from ca_admin.models import CertificateRequest, IssuedCertificate
from ca_admin.profiles import OFFICIAL_DOCUMENT_SIGNING
from ca_admin.web.pages import key_request_form
from ca_admin.web.pages.key_request_form import KeyRequest
from ca_admin.web.pages.page_scope import PREFIX, PageScope, run_page
from core.errors import DomainError
from core.web.i18n import N_

PROFILE = OFFICIAL_DOCUMENT_SIGNING
# A request still on its way to a certificate: waiting for approval, or approved with a
# server-made key not yet collected.
OPEN_REQUEST_STATUSES = ("pending", "approved")
KIND = KeyRequest(
    action=f"{PREFIX}/request",
    profile=PROFILE.name,
    renewal_of_serial=None,
    done_notice="request",
    submit_label=N_("Send the certificate request"),
    reauth_hint=N_(
        "For your security, confirm your password (and your one-time code, if you use one) "
        "before requesting a certificate."
    ),
)


def reason_not_to_request(scope: PageScope) -> str | None:
    """Why the signed-in official may not request a certificate now (a msgid), or None."""
    subject_ref = scope.signed_in.sub
    valid = scope.session.scalar(
        select(IssuedCertificate.id)
        .where(
            IssuedCertificate.subject_ref == subject_ref,
            IssuedCertificate.profile == PROFILE.name,
            IssuedCertificate.status.in_(("good", "hold")),
            IssuedCertificate.not_after > scope.runtime.clock.now(),
        )
        .limit(1)
    )
    if valid is not None:
        return N_(
            "You have a valid signing certificate: renew it on the page of your certificates "
            "when its renewal opens."
        )
    waiting = scope.session.scalar(
        select(CertificateRequest.id)
        .where(
            CertificateRequest.subject_ref == subject_ref,
            CertificateRequest.profile == PROFILE.name,
            CertificateRequest.status.in_(OPEN_REQUEST_STATUSES),
        )
        .limit(1)
    )
    if waiting is not None:
        return N_("You have sent a request already: it is listed on the page of your certificates.")
    return None


def _render(
    scope: PageScope,
    *,
    errors: dict[str, DomainError] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return scope.render(
        "first_certificate.html",
        {
            "holder": scope.signed_in.name,
            "profile_title": PROFILE.title,
            "closed": reason_not_to_request(scope),
            **key_request_form.form_context(
                scope,
                KIND,
                server_keygen_allowed=PROFILE.server_keygen_allowed,
                errors=errors,
                values=values,
            ),
        },
        status_code=status_code,
    )


def _show(scope: PageScope) -> Response:
    return _render(scope)


def _submit(scope: PageScope) -> Response:
    if reason_not_to_request(scope) is not None:
        return _render(scope, values=key_request_form.form_values(scope), status_code=409)

    def rerender(errors: dict[str, DomainError], values: dict[str, str], status: int) -> Response:
        return _render(scope, errors=errors, values=values, status_code=status)

    return key_request_form.submit(scope, KIND, rerender)


async def request_page(request: Request) -> Response:
    return await run_page(request, _show)


async def request_submit(request: Request) -> Response:
    return await run_page(request, _submit)
