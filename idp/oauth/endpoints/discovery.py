"""OpenID Provider metadata (OIDC Discovery 1.0 §3, RFC 8414) and the JWKS (RFC 7517 §5).

Only what works is advertised: every value here is exercised by a test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json
from starlette.types import Receive, Scope, Send

from core.settings import Settings
from core.web.i18n import SUPPORTED_LOCALES
from idp.authentication_levels import LEVELS
from idp.claims import SUPPORTED_CLAIMS, SUPPORTED_SCOPES
from idp.clients import MTLS_AUTH_METHODS
from idp.oauth.authorization_checks import PROMPT_VALUES
from idp.oauth.client_signed_jwts import CLIENT_SIGNING_ALGORITHMS
from idp.oauth.dpop import DPOP_ALGORITHMS
from idp.oauth.grants import CONFIDENTIAL_ONLY, CONFIDENTIAL_OR_PUBLIC
from keys.keyring import SUPPORTED_ALGORITHMS

if TYPE_CHECKING:
    from idp.runtime import IdpRuntime

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


def offered(methods: list[str], settings: Settings) -> list[str]:
    """The client authentication methods that work here: mTLS (RFC 8705 §2) only where a
    trusted proxy forwards client certificates."""
    if settings.client_certificate_header:
        return list(methods)
    return [method for method in methods if method not in MTLS_AUTH_METHODS]


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
            # mTLS: RFC 8705 §2 (idp/oauth/mutual_tls.py).
            "token_endpoint_auth_methods_supported": offered(CONFIDENTIAL_OR_PUBLIC, settings),
            "token_endpoint_auth_signing_alg_values_supported": list(CLIENT_SIGNING_ALGORITHMS),
            "revocation_endpoint_auth_methods_supported": offered(CONFIDENTIAL_OR_PUBLIC, settings),
            "revocation_endpoint_auth_signing_alg_values_supported": list(
                CLIENT_SIGNING_ALGORITHMS
            ),
            "introspection_endpoint_auth_methods_supported": offered(CONFIDENTIAL_ONLY, settings),
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
    if settings.client_certificate_header:
        # RFC 8705 §3.3: access tokens bound to the client's certificate. Every endpoint
        # takes certificates at its usual address (no mtls_endpoint_aliases, §5): the proxy
        # asks for one on every connection and a client without one is served as before.
        metadata["tls_client_certificate_bound_access_tokens"] = True
    return metadata


class PrebuiltJsonEndpoint:
    """A pure ASGI endpoint answering a GET with a JSON body encoded once and reused.

    Discovery and the JWKS are fetched by every shared app and resource server, often on each
    start or token check; they change only with the settings or the key ring. Skipping
    Starlette's Request/Response objects and the JSON encoding per request halves their cost
    (issue 15: at least twice the peer's rate)."""

    def __init__(
        self,
        *,
        media_type: str,
        body_of: Callable[[IdpRuntime], bytes],
        max_age_of: Callable[[Settings], int],
    ) -> None:
        self.media_type = media_type.encode("ascii")
        self.body_of = body_of
        self.max_age_of = max_age_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime: IdpRuntime = scope["app"].state.idp
        body = self.body_of(runtime)
        cache_control = f"public, max-age={self.max_age_of(runtime.settings)}"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                # A new list each time: middleware may append to it (the language cookie).
                "headers": [
                    (b"content-type", self.media_type),
                    (b"content-length", str(len(body)).encode("ascii")),
                    (b"cache-control", cache_control.encode("ascii")),
                    (b"access-control-allow-origin", b"*"),
                ],
            }
        )
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else body})


# The document of the last Settings object asked for: a served app has one for its life (tests
# make many, and pay one encoding when they alternate).
_encoded_metadata: tuple[Settings, bytes] | None = None


def encoded_provider_metadata(settings: Settings) -> bytes:
    global _encoded_metadata
    cached = _encoded_metadata
    if cached is None or cached[0] is not settings:
        cached = _encoded_metadata = (settings, to_json(provider_metadata(settings)))
    return cached[1]


discovery_endpoint = PrebuiltJsonEndpoint(
    media_type="application/json",
    body_of=lambda runtime: encoded_provider_metadata(runtime.settings),
    max_age_of=lambda settings: 300,
)
jwks_endpoint = PrebuiltJsonEndpoint(
    media_type="application/jwk-set+json",
    body_of=lambda runtime: runtime.keyring.public_jwks_json(now=runtime.clock.now()),
    max_age_of=lambda settings: settings.jwks_max_age,
)
