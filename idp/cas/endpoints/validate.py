"""``/cas/validate`` (CAS 3.0 §2.4, the CAS 1.0 protocol): "yes" and the username on two
lines, or "no" and an empty line. No attributes and no failure codes in this format."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from idp.cas import validation
from idp.cas.responses import Success
from idp.request_scope import RequestScope, run_in_request_scope


def validate(scope: RequestScope) -> Response:
    outcome = validation.validate(scope, dict(scope.http.query))
    body = f"yes\n{outcome.user}\n" if isinstance(outcome, Success) else "no\n\n"
    return PlainTextResponse(body)


async def validate_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, validate)
