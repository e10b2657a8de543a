"""The SAML 2.0 IdP endpoints (our metadata names them)."""

from __future__ import annotations

from starlette.routing import Route

from idp.saml.endpoints.metadata import metadata_endpoint
from idp.saml.endpoints.slo import slo_endpoint
from idp.saml.endpoints.sso import (
    CONTINUE_PATH,
    INITIATE_PATH,
    RESUME_PATH,
    continue_endpoint,
    initiate_endpoint,
    resume_endpoint,
    sso_endpoint,
)
from idp.saml.idp_metadata import METADATA_PATH, SLO_PATH, SSO_PATH


def saml_routes() -> list[Route]:
    return [
        Route(METADATA_PATH, metadata_endpoint, methods=["GET"]),
        Route(SSO_PATH, sso_endpoint, methods=["GET", "POST"]),
        Route(CONTINUE_PATH, continue_endpoint, methods=["GET"]),
        Route(INITIATE_PATH, initiate_endpoint, methods=["GET"]),
        Route(RESUME_PATH, resume_endpoint, methods=["GET"]),
        Route(SLO_PATH, slo_endpoint, methods=["GET", "POST"]),
    ]
