"""``/ca/pages/renew/{serial}``: an official renews their own certificate (issue 5).

Only inside the profile's renewal window (default 30 days before expiry), and only after a
fresh authentication: the ID token's ``auth_time`` must be at most five minutes old, checked
when the form is shown and again when it is sent (the sign-in link asks the IdP for
``max_age=300``). Three ways: upload or paste a CSR; let the browser make the key pair and the
CSR (``/static/renew.js``, WebCrypto: the private key never leaves the browser); or, if the
profile allows it, a key made by the server and delivered as a password-protected PKCS#12 after
approval. The request goes to the RA step (``certificate_requests.submit`` with
``renewal_of_serial``); a hidden random form token is its idempotency key, so a double submit
makes one request.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ca_admin import certificate_requests
from ca_admin.certificate_requests import Submission
from ca_admin.models import IssuedCertificate
from ca_admin.profiles import get_profile
from ca_admin.web.pages.my_certificates import readable_certificate, view_of
from ca_admin.web.pages.page_scope import (
    FORM_TOKEN_PATTERN,
    MAX_UPLOAD_BYTES,
    PREFIX,
    PageScope,
    login_location,
    new_form_token,
    run_page,
)
from core.errors import DomainError, PermissionDenied
from core.web.i18n import N_

FRESH_AUTH_SECONDS = 300
METHODS = ("csr", "browser", "server")


def _own(scope: PageScope) -> IssuedCertificate:
    certificate = readable_certificate(scope, scope.request.path_params["serial"])
    if certificate.subject_ref != scope.signed_in.sub:
        raise PermissionDenied(N_("Only the holder can renew a certificate."))
    return certificate


def _fresh(scope: PageScope) -> bool:
    age = scope.runtime.clock.now().timestamp() - scope.signed_in.auth_time
    return age <= FRESH_AUTH_SECONDS


def _render(
    scope: PageScope,
    certificate: IssuedCertificate,
    *,
    errors: dict[str, DomainError] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    view = view_of(certificate, scope.runtime.clock.now())
    profile = get_profile(certificate.profile)
    return scope.render(
        "renewal.html",
        {
            "certificate": view,
            "window_days": profile.renewal_window_days,
            "server_keygen_allowed": profile.server_keygen_allowed,
            "fresh": _fresh(scope),
            "reauth_url": login_location(scope.request, reauth=True),
            "errors": errors or {},
            "values": values or {},
            "method": (values or {}).get("method", "csr"),
            # One token per form shown: sending the same form twice is one request.
            "tokens": {m: new_form_token() for m in METHODS},
        },
        status_code=status_code,
    )


def _show(scope: PageScope) -> Response:
    return _render(scope, _own(scope))


def _submit(scope: PageScope) -> Response:
    certificate = _own(scope)
    view = view_of(certificate, scope.runtime.clock.now())
    form = scope.form
    method = form.get("method", "")
    values = {"method": method, "csr_text": form.get("csr_text", "")}
    if not view.renewable:
        return _render(scope, certificate, values=values, status_code=409)
    if not _fresh(scope):
        error = DomainError(
            N_(
                "For your security, confirm your password again (the last confirmation is "
                "more than 5 minutes old), then send the request again."
            ),
            field="reauth",
        )
        return _render(scope, certificate, errors={"reauth": error}, values=values, status_code=401)
    if method not in METHODS:
        return _render(
            scope,
            certificate,
            values=values,
            status_code=400,
            errors={"method": DomainError(N_("Choose how to make the new key."), field="method")},
        )
    token = form.get("form_token", "")
    if not FORM_TOKEN_PATTERN.fullmatch(token):
        token = new_form_token()  # a tampered token must not break the request
    csr: bytes | None = None
    if method in ("csr", "browser"):
        upload = scope.files.get("csr_file")
        if upload is not None and len(upload) > MAX_UPLOAD_BYTES:
            return _render(
                scope,
                certificate,
                values=values,
                status_code=400,
                errors={"csr": DomainError(N_("The file is too large to be a CSR."), field="csr")},
            )
        csr = upload or (values["csr_text"].strip().encode("utf-8") or None)
        if csr is None:
            return _render(
                scope,
                certificate,
                values=values,
                status_code=400,
                errors={
                    "csr": DomainError(
                        N_("Choose a CSR file or paste the CSR (PEM) into the box."), field="csr"
                    )
                },
            )
    try:
        with scope.session.begin_nested():  # a refused CSR leaves nothing behind
            certificate_requests.submit(
                session=scope.session,
                runtime=scope.runtime,
                actor=scope.signed_in.sub,
                submission=Submission(
                    subject_ref=scope.signed_in.sub,
                    profile=certificate.profile,
                    csr=csr,
                    server_keygen=method == "server",
                    renewal_of_serial=certificate.serial,
                    idempotency_key=f"page-{token}",
                ),
            )
    except DomainError as error:
        field = "csr" if error.field in (None, "csr", "renewal_of") else error.field
        if field == "profile":  # about the official's record, not the CSR: shown above
            field = "method"
        return _render(scope, certificate, errors={field: error}, values=values, status_code=400)
    return RedirectResponse(f"{PREFIX}/?done=renewal", status_code=303)


async def renewal_page(request: Request) -> Response:
    return await run_page(request, _show)


async def renewal_submit(request: Request) -> Response:
    return await run_page(request, _submit)
