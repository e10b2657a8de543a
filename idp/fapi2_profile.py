"""What the FAPI 2.0 Security Profile (final, 2025) asks of a client registered under it, as
registration rules; the protocol side of the same profile is enforced in ``idp/oauth/``
(pushed requests, PKCE S256, sender-constrained tokens, key-based client authentication).

FAPI 2.0 §5.3.1.1 and §5.3.2.1: only confidential clients, authenticated by private_key_jwt or
mTLS (never a shared secret); §5.3.2.2: authorization requests only through PAR with PKCE S256
(ours requires S256 for every client already); §5.3.2.1 item 5: access tokens sender-constrained
by DPoP or mTLS (DPoP unless the app chose certificate-bound tokens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.web.i18n import N_

if TYPE_CHECKING:
    from idp.clients import ClientSettings, FieldProblem

# FAPI 2.0 §5.3.2.1: client authentication by key or certificate only.
FAPI2_AUTH_METHODS = ("private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth")
FAPI2_NEEDS_KEY_AUTH = N_(
    "A FAPI 2.0 app authenticates with private_key_jwt or a TLS client certificate, never a "
    "shared secret."
)
BOUND_TOKENS_NEED_CERTIFICATE = N_(
    "Certificate-bound tokens need an app that authenticates with a TLS client certificate."
)


def profile_problems(settings: ClientSettings, *, auth_method: str) -> list[FieldProblem]:
    from idp.clients import FieldProblem  # the registration service imports this module

    problems: list[FieldProblem] = []
    if settings.fapi2_profile and auth_method not in FAPI2_AUTH_METHODS:
        problems.append(FieldProblem("fapi2_profile", FAPI2_NEEDS_KEY_AUTH))
    if settings.tls_client_certificate_bound_access_tokens and auth_method not in (
        "tls_client_auth",
        "self_signed_tls_client_auth",
    ):
        field = "tls_client_certificate_bound_access_tokens"
        problems.append(FieldProblem(field, BOUND_TOKENS_NEED_CERTIFICATE))
    return problems
