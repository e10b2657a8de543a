"""What the FAPI 2.0 Security Profile (final, 2025) asks of a client registered under it, as
registration rules; the protocol side of the same profile is enforced in ``idp/oauth/``
(pushed requests, PKCE S256, sender-constrained tokens, key-based client authentication).

FAPI 2.0 §5.3.1.1 and §5.3.2.1: only confidential clients, authenticated by private_key_jwt or
mTLS (never a shared secret); §5.3.2.2: authorization requests only through PAR with PKCE S256
(ours requires S256 for every client already); §5.3.2.1 item 5: access tokens sender-constrained
by DPoP or mTLS (RFC 8705: tls_client_auth / self_signed_tls_client_auth, and tokens bound to
the client's certificate in place of DPoP, idp/oauth/mutual_tls.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.web.i18n import N_

if TYPE_CHECKING:
    from idp.clients import ClientSettings, FieldProblem

# FAPI 2.0 §5.3.2.1: client authentication by key or certificate (RFC 8705).
FAPI2_AUTH_METHODS = ("private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth")
FAPI2_NEEDS_KEY_AUTH = N_(
    "A FAPI 2.0 app authenticates with private_key_jwt or a TLS client certificate, never with "
    "a shared secret."
)
JAR_NEEDS_KEYS = N_(
    "Signed request objects (RFC 9101) are checked with the app's public keys: give a JWK Set "
    "or a JWKS URL."
)


def profile_problems(settings: ClientSettings, *, auth_method: str) -> list[FieldProblem]:
    from idp.clients import FieldProblem  # the registration service imports this module

    problems: list[FieldProblem] = []
    if settings.fapi2_profile and auth_method not in FAPI2_AUTH_METHODS:
        problems.append(FieldProblem("fapi2_profile", FAPI2_NEEDS_KEY_AUTH))
    if settings.require_signed_request_object and settings.jwks is None and not settings.jwks_uri:
        problems.append(FieldProblem("require_signed_request_object", JAR_NEEDS_KEYS))
    return problems
