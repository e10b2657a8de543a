"""``/ca/pages/validate``: an official drops a signed PDF and sees who signed it, when, and
whether the signature holds (the same judgement as ``POST /ca/api/v1/validations``).

CSRF is checked by ``run_page``; the validation is audited like the API's. The document is
not kept: only its SHA-256 goes into the audit log.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ca_admin import signature_validation
from ca_admin.signature_validation import ValidationReport
from ca_admin.web.pages.page_scope import PageScope, run_page
from core.errors import DomainError
from core.web.i18n import N_

FILE_FIELD = "document"


def _render(
    scope: PageScope,
    *,
    report: ValidationReport | None = None,
    file_name: str | None = None,
    error: DomainError | None = None,
    status_code: int = 200,
) -> Response:
    return scope.render(
        "signature_check.html",
        {
            "report": report,
            "file_name": file_name,
            "errors": {FILE_FIELD: error} if error else {},
            "max_megabytes": scope.runtime.validation_max_bytes // (1024 * 1024),
        },
        status_code=status_code,
    )


def _show(scope: PageScope) -> Response:
    return _render(scope)


def _check(scope: PageScope) -> Response:
    upload = scope.files.get(FILE_FIELD)
    if upload is None:
        return _render(
            scope,
            error=DomainError(N_("Choose a signed PDF file to check."), field=FILE_FIELD),
            status_code=400,
        )
    try:
        report = signature_validation.validate_pdf(
            session=scope.session, runtime=scope.runtime, pdf=upload
        )
    except DomainError as error:
        return _render(scope, error=error, status_code=error.status_code)
    signature_validation.record(
        session=scope.session,
        runtime=scope.runtime,
        actor=scope.signed_in.sub,
        report=report,
        via="pages",
    )
    return _render(scope, report=report)


async def check_page(request: Request) -> Response:
    return await run_page(request, _show)


async def check_submit(request: Request) -> Response:
    runtime = request.app.state.ca
    return await run_page(request, _check, max_upload_bytes=runtime.validation_max_bytes)
