"""``/cas/serviceValidate`` (CAS 3.0 §2.5) and ``/cas/p3/serviceValidate`` (§2.7): the
service trades a ticket for the official's username and released attributes, in XML or, with
``format=JSON``, in JSON. Both paths answer the same (attributes included), as CAS servers do."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.cas import validation
from idp.cas.responses import FORMATS, INVALID_REQUEST, XML, Failure, service_response
from idp.request_scope import RequestScope, run_in_request_scope


def service_validate(scope: RequestScope) -> Response:
    params = dict(scope.http.query)
    requested_format = params.get("format", XML).upper()
    if requested_format not in FORMATS:
        return service_response(
            Failure(INVALID_REQUEST, "The format parameter must be XML or JSON."), XML
        )
    return service_response(validation.validate(scope, params), requested_format)


async def service_validate_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, service_validate)
