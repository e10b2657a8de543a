"""The CAS 3.0 endpoints (Appendix A: URIs relative to the server's ``/cas`` prefix)."""

from __future__ import annotations

from starlette.routing import Route

from idp.cas.endpoints.login import login_endpoint, resume_endpoint
from idp.cas.endpoints.logout import logout_endpoint
from idp.cas.endpoints.service_validate import service_validate_endpoint
from idp.cas.endpoints.validate import validate_endpoint


def cas_routes() -> list[Route]:
    return [
        Route("/cas/login", login_endpoint, methods=["GET"]),
        Route("/cas/login/resume", resume_endpoint, methods=["GET"]),
        Route("/cas/logout", logout_endpoint, methods=["GET"]),
        Route("/cas/validate", validate_endpoint, methods=["GET"]),
        Route("/cas/serviceValidate", service_validate_endpoint, methods=["GET"]),
        Route("/cas/p3/serviceValidate", service_validate_endpoint, methods=["GET"]),
    ]
