"""The form an official sends a certificate request with, for a renewal (``renewal.py``) and a
first certificate (``first_certificate.py``) alike.

Only after a fresh authentication: the ID token's ``auth_time`` must be at most five minutes
old, checked when the form is shown and again when it is sent (the sign-in link asks the IdP
for ``max_age=300``). Three ways to make the key: upload or paste a CSR; let the browser make
the key pair and the CSR (``/static/renew.js``, WebCrypto: the private key never leaves the
browser); or, if the profile allows it, a key made by the server and delivered as a
password-protected PKCS#12 after approval. The request goes to the RA step
(``certificate_requests.submit``); a hidden random form token is its idempotency key, so a
double submit makes one request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import RedirectResponse, Response

from ca_admin import certificate_requests
from ca_admin.certificate_requests import Submission
from ca_admin.web.pages.page_scope import (
    FORM_TOKEN_PATTERN,
    MAX_UPLOAD_BYTES,
    PREFIX,
    PageScope,
    login_location,
    new_form_token,
)
from core.errors import DomainError
from core.web.i18n import N_

FRESH_AUTH_SECONDS = 300
METHODS = ("csr", "browser", "server")


@dataclass(frozen=True)
class KeyRequest:
    """What one kind of request fixes: where its form is sent, the certificate profile, the
    certificate it renews (None: a first certificate), the notice after it is sent (a key of
    ``my_certificates.NOTICES``) and the texts that name it (msgids)."""

    action: str
    profile: str
    renewal_of_serial: str | None
    done_notice: str
    submit_label: str
    reauth_hint: str


# Re-shows the page with errors next to the fields: (errors, values, status_code) -> page.
Rerender = Callable[[dict[str, DomainError], dict[str, str], int], Response]


def is_fresh(scope: PageScope) -> bool:
    age = scope.runtime.clock.now().timestamp() - scope.signed_in.auth_time
    return age <= FRESH_AUTH_SECONDS


def form_context(
    scope: PageScope,
    kind: KeyRequest,
    *,
    server_keygen_allowed: bool,
    errors: dict[str, DomainError] | None,
    values: dict[str, str] | None,
) -> dict[str, Any]:
    """What the templates' shared part (``key_request.html``) needs."""
    return {
        "key_request": kind,
        "server_keygen_allowed": server_keygen_allowed,
        "fresh": is_fresh(scope),
        "reauth_url": login_location(scope.request, reauth=True),
        "errors": errors or {},
        "values": values or {},
        "method": (values or {}).get("method", "csr"),
        # One token per form shown: sending the same form twice is one request.
        "tokens": {m: new_form_token() for m in METHODS},
    }


def form_values(scope: PageScope) -> dict[str, str]:
    """What was sent, kept to show the form again."""
    return {"method": scope.form.get("method", ""), "csr_text": scope.form.get("csr_text", "")}


def submit(scope: PageScope, kind: KeyRequest, rerender: Rerender) -> Response:
    """Check the sent form and record the request; the page again with errors if refused."""
    form = scope.form
    values = form_values(scope)
    method = values["method"]
    if not is_fresh(scope):
        error = DomainError(
            N_(
                "For your security, confirm your password again (the last confirmation is "
                "more than 5 minutes old), then send the request again."
            ),
            field="reauth",
        )
        return rerender({"reauth": error}, values, 401)
    if method not in METHODS:
        error = DomainError(N_("Choose how to make the new key."), field="method")
        return rerender({"method": error}, values, 400)
    token = form.get("form_token", "")
    if not FORM_TOKEN_PATTERN.fullmatch(token):
        token = new_form_token()  # a tampered token must not break the request
    csr: bytes | None = None
    if method in ("csr", "browser"):
        upload = scope.files.get("csr_file")
        if upload is not None and len(upload) > MAX_UPLOAD_BYTES:
            error = DomainError(N_("The file is too large to be a CSR."), field="csr")
            return rerender({"csr": error}, values, 400)
        csr = upload or (values["csr_text"].strip().encode("utf-8") or None)
        if csr is None:
            error = DomainError(
                N_("Choose a CSR file or paste the CSR (PEM) into the box."), field="csr"
            )
            return rerender({"csr": error}, values, 400)
    try:
        with scope.session.begin_nested():  # a refused CSR leaves nothing behind
            certificate_requests.submit(
                session=scope.session,
                runtime=scope.runtime,
                actor=scope.signed_in.sub,
                submission=Submission(
                    subject_ref=scope.signed_in.sub,
                    profile=kind.profile,
                    csr=csr,
                    server_keygen=method == "server",
                    renewal_of_serial=kind.renewal_of_serial,
                    idempotency_key=f"page-{token}",
                ),
            )
    except DomainError as error:
        field = "csr" if error.field in (None, "csr", "renewal_of") else error.field
        if field == "profile":  # about the official's record, not the CSR: shown above
            field = "method"
        return rerender({field: error}, values, 400)
    return RedirectResponse(f"{PREFIX}/?done={kind.done_notice}", status_code=303)
