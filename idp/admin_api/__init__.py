"""The admin HTTP API under ``/admin/api/v1`` (JSON, RFC 6750 Bearer tokens with scope
``admin``): :mod:`auth` says who is calling and what they administer, :mod:`imports` holds
the bulk-import endpoints. The admin pages call the same endpoints."""

from __future__ import annotations

from starlette.routing import Route

from idp.admin_api.imports import PREFIX, ImportsApi


def admin_api_routes(imports: ImportsApi) -> list[Route]:
    """The routes of one app; ``imports`` owns the app's one import runner (a background
    thread), shared with the admin pages so an API import and a page import queue together."""
    job = f"{PREFIX}/imports/{{job_id}}"
    return [
        Route(f"{PREFIX}/imports", imports.submit, methods=["POST"]),
        Route(job, imports.show, methods=["GET"]),
        Route(f"{job}/results.csv", imports.results, methods=["GET"]),
        Route(f"{job}/activation-codes.zip", imports.activation_codes, methods=["GET"]),
        Route(f"{job}/resume", imports.resume, methods=["POST"]),
    ]
