"""Every route of the identity provider."""

from __future__ import annotations

from starlette.routing import Route

from idp.admin_api import admin_api_routes
from idp.admin_api.imports import ImportsApi
from idp.cas.routes import cas_routes
from idp.federation.routes import federation_routes
from idp.oauth.endpoints.authorization import authorization_endpoint, resume_endpoint
from idp.oauth.endpoints.discovery import (
    PATHS,
    PrebuiltJsonEndpoint,
    discovery_endpoint,
    jwks_endpoint,
)
from idp.oauth.endpoints.end_session import confirm_logout_endpoint, end_session_endpoint
from idp.oauth.endpoints.introspection import introspection_endpoint
from idp.oauth.endpoints.pushed_authorization import pushed_authorization_endpoint
from idp.oauth.endpoints.revocation import revocation_endpoint
from idp.oauth.endpoints.token import token_endpoint
from idp.oauth.endpoints.userinfo import userinfo_endpoint
from idp.saml.routes import saml_routes
from idp.scim.endpoints import scim_routes
from idp.web import certificate_login, passkey_login
from idp.web.account.routes import account_routes
from idp.web.admin_pages import admin_page_routes
from idp.web.home import home_page
from idp.web.login import (
    consent_page,
    consent_submit,
    login_page,
    login_submit,
    second_factor_page,
    second_factor_submit,
)

DISCOVERY_PATH = "/.well-known/openid-configuration"


def prebuilt_answers() -> dict[str, PrebuiltJsonEndpoint]:
    """Paths answered from bytes made in advance, for the request middleware's fast lane
    (commune_sso/observability.py); their routes below serve every other request to them."""
    return {DISCOVERY_PATH: discovery_endpoint, PATHS["jwks_uri"]: jwks_endpoint}


def idp_routes() -> list[Route]:
    import_runner = ImportsApi()  # one background import runner per app (API and pages)
    return [
        Route(DISCOVERY_PATH, discovery_endpoint, methods=["GET"]),
        Route(PATHS["jwks_uri"], jwks_endpoint, methods=["GET"]),
        Route(PATHS["authorization_endpoint"], authorization_endpoint, methods=["GET", "POST"]),
        Route("/oauth2/authorize/resume", resume_endpoint, methods=["GET"]),
        Route(PATHS["token_endpoint"], token_endpoint, methods=["POST"]),
        Route(
            PATHS["pushed_authorization_request_endpoint"],
            pushed_authorization_endpoint,
            methods=["POST"],
        ),
        Route(PATHS["userinfo_endpoint"], userinfo_endpoint, methods=["GET", "POST"]),
        Route(PATHS["introspection_endpoint"], introspection_endpoint, methods=["POST"]),
        Route(PATHS["revocation_endpoint"], revocation_endpoint, methods=["POST"]),
        Route(PATHS["end_session_endpoint"], end_session_endpoint, methods=["GET", "POST"]),
        Route("/oauth2/logout/confirm", confirm_logout_endpoint, methods=["POST"]),
        Route("/", home_page, methods=["GET"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_submit, methods=["POST"]),
        Route("/login/otp", second_factor_page, methods=["GET"]),
        Route("/login/otp", second_factor_submit, methods=["POST"]),
        Route("/login/passkey", passkey_login.second_factor_page, methods=["GET"]),
        Route("/login/passkey", passkey_login.submit_endpoint, methods=["POST"]),
        Route("/login/passkey/options", passkey_login.options_endpoint, methods=["POST"]),
        Route("/login/certificate", certificate_login.submit_endpoint, methods=["POST"]),
        Route("/consent", consent_page, methods=["GET"]),
        Route("/consent", consent_submit, methods=["POST"]),
        *cas_routes(),
        *saml_routes(),
        *federation_routes(),
        *scim_routes(),
        *admin_api_routes(import_runner),
        *account_routes(),
        *admin_page_routes(import_runner),
    ]
