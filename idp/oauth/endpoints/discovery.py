"""OpenID Provider metadata (OIDC Discovery 1.0 §3, RFC 8414) and the JWKS (RFC 7517 §5).

Only what works is advertised: every value here is exercised by a test.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.settings import Settings
from core.web.i18n import SUPPORTED_LOCALES
from idp.authentication_levels import LEVELS
from idp.claims import SUPPORTED_CLAIMS, SUPPORTED_SCOPES
from idp.oauth.authorization_checks import PROMPT_VALUES
from idp.oauth.client_signed_jwts import CLIENT_SIGNING_ALGORITHMS
from idp.oauth.dpop import DPOP_ALGORITHMS
from idp.oauth.grants import CONFIDENTIAL_ONLY, CONFIDENTIAL_OR_PUBLIC
from idp.request_scope import runtime_of
from keys.keyring import SUPPORTED_ALGORITHMS

PATHS = {
    "authorization_endpoint": "/oauth2/authorize",
    "token_endpoint": "/oauth2/token",
    "userinfo_endpoint": "/oauth2/userinfo",
    "jwks_uri": "/oauth2/jwks",
    "end_session_endpoint": "/oauth2/logout",
    "revocation_endpoint": "/oauth2/revoke",
    "introspection_endpoint": "/oauth2/introspect",
    # RFC 9126 §5 (idp/oauth/endpoints/pushed_authorization.py).
    "pushed_authorization_request_endpoint": "/oauth2/par",
}


def provider_metadata(settings: Settings) -> dict[str, Any]:
    metadata: dict[str, Any] = {"issuer": settings.issuer}
    metadata.update({name: settings.endpoint(path) for name, path in PATHS.items()})
    metadata.update(
        {
            "scopes_supported": list(SUPPORTED_SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(SUPPORTED_ALGORITHMS),
            # RFC 8414 §2; private_key_jwt: RFC 7523 §2.2 (idp/oauth/client_assertion.py).
            "token_endpoint_auth_methods_supported": CONFIDENTIAL_OR_PUBLIC,
            "token_endpoint_auth_signing_alg_values_supported": list(CLIENT_SIGNING_ALGORITHMS),
            "revocation_endpoint_auth_methods_supported": CONFIDENTIAL_OR_PUBLIC,
            "revocation_endpoint_auth_signing_alg_values_supported": list(
                CLIENT_SIGNING_ALGORITHMS
            ),
            "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_ONLY,
            "introspection_endpoint_auth_signing_alg_values_supported": list(
                CLIENT_SIGNING_ALGORITHMS
            ),
            "code_challenge_methods_supported": ["S256"],
            # RFC 9449 §5.1 (idp/oauth/dpop.py): token endpoint, userinfo, introspection.
            "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
            # RFC 9126 §5: pushing is required per client (require_pushed_authorization_requests
            # in its registration), not for every client.
            "require_pushed_authorization_requests": False,
            "claims_supported": list(SUPPORTED_CLAIMS),
            # OIDC Discovery §3; the levels and their order: idp.authentication_levels.
            "acr_values_supported": list(LEVELS),
            "claim_types_supported": ["normal"],
            "claims_parameter_supported": False,
            # RFC 9101 (idp/oauth/request_object.py): signed request objects by value, and by
            # reference only as a pushed request (RFC 9126); no request_uri is fetched.
            "request_parameter_supported": True,
            "request_object_signing_alg_values_supported": list(CLIENT_SIGNING_ALGORITHMS),
            "request_uri_parameter_supported": False,
            "require_request_uri_registration": False,
            # RFC 9101 §10.5: required per client (require_signed_request_object), not for all.
            "require_signed_request_object": False,
            "prompt_values_supported": list(PROMPT_VALUES),
            "ui_locales_supported": list(SUPPORTED_LOCALES),
            "claims_locales_supported": ["vi"],
            "authorization_response_iss_parameter_supported": True,
            # OpenID Back-Channel Logout 1.0 §2.1, Front-Channel Logout 1.0 §3 (idp/logout/).
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "frontchannel_logout_supported": True,
            "frontchannel_logout_session_supported": True,
        }
    )
    return metadata


async def discovery_endpoint(request: Request) -> Response:
    runtime = runtime_of(request)
    return JSONResponse(
        provider_metadata(runtime.settings),
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


async def jwks_endpoint(request: Request) -> Response:
    runtime = runtime_of(request)
    jwks = runtime.keyring.public_jwks(now=runtime.clock.now())
    return JSONResponse(
        jwks,
        media_type="application/jwk-set+json",
        headers={
            "Cache-Control": f"public, max-age={runtime.settings.jwks_max_age}",
            "Access-Control-Allow-Origin": "*",
        },
    )
