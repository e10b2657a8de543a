"""SCIM errors (RFC 7644 §3.12), raised as typed exceptions and rendered in one place."""

from __future__ import annotations

from scim2_models import Error
from starlette.responses import Response

SCIM_MEDIA_TYPE = "application/scim+json"


class ScimError(Exception):
    status = 400
    scim_type: str | None = None

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class InvalidFilter(ScimError):
    scim_type = "invalidFilter"


class InvalidValue(ScimError):
    scim_type = "invalidValue"


class TooMany(ScimError):
    scim_type = "tooMany"


class Unauthorized(ScimError):
    status = 401


class Forbidden(ScimError):
    status = 403


class NotFound(ScimError):
    status = 404


def error_response(error: ScimError) -> Response:
    """The Error schema body, with ``status`` as a string (RFC 7644 §3.12)."""
    body = Error(status=error.status, scim_type=error.scim_type, detail=error.detail)
    return Response(
        body.model_dump_json(),
        status_code=error.status,
        media_type=SCIM_MEDIA_TYPE,
        headers=error.headers,
    )


class InvalidSyntax(ScimError):
    scim_type = "invalidSyntax"


class NoTarget(ScimError):
    scim_type = "noTarget"


class InvalidPath(ScimError):
    scim_type = "invalidPath"


class Mutability(ScimError):
    scim_type = "mutability"


class Uniqueness(ScimError):
    status = 409
    scim_type = "uniqueness"


class PreconditionFailed(ScimError):
    """RFC 7644 §3.12 names no scimType for 412."""

    status = 412


class MethodNotAllowed(ScimError):
    status = 405


class PayloadTooLarge(ScimError):
    status = 413
