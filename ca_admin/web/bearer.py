"""Bearer access tokens for the CA's REST API (RFC 6750), issued by our own IdP.

ca_admin does not import idp (DESIGN), so it sees token validation only through
:class:`AccessTokenVerifier`, which the composition root implements with the IdP's own RFC 9068
checks (signature, issuer, expiry, revoked ``jti``, revoked grant). The token's ``aud`` is the
client that asked for it; any token of ours whose scope includes the action's CA scope is
accepted, and who may do what is then decided by the token's ``sub``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from sqlalchemy.orm import Session
from starlette.requests import Request

from core.errors import DomainError, PermissionDenied
from core.settings import Settings
from core.web.client_certificate import presented_certificate
from core.web.i18n import N_

CA_READ = "ca:read"
CA_REQUEST = "ca:request"
CA_APPROVE = "ca:approve"
CA_REVOKE = "ca:revoke"
# Signature validation (POST /ca/api/v1/validations): what a shared app needs to check the
# signed documents it receives; it reveals no more than the signed documents already carry.
CA_VALIDATE = "ca:validate"
REALM = "ca"


class InvalidToken(DomainError):
    """RFC 6750 §3.1 invalid_token: missing, malformed, expired or revoked."""

    status_code = 401
    code = "invalid_token"


class MissingToken(InvalidToken):
    """No credentials at all: 401 whose challenge carries no error code (RFC 6750 §3.1)."""


class InsufficientScope(PermissionDenied):
    """RFC 6750 §3.1 insufficient_scope: the token is fine but does not allow this."""

    code = "insufficient_scope"


class DpopRefused(InvalidToken):
    """RFC 9449 §7.1: the DPoP proof beside a DPoP-bound token does not hold for this request
    (``invalid_dpop_proof``), or must carry the server's nonce (``use_dpop_nonce``, §9: the
    answer's DPoP-Nonce header gives it)."""

    def __init__(self, message: str, *, code: str, nonce: str) -> None:
        super().__init__(message)
        self.code = code
        self.nonce = nonce


BEARER, DPOP = "Bearer", "DPoP"


@dataclass(frozen=True)
class PresentedToken:
    """An access token as the request presents it: ``Authorization: Bearer`` (RFC 6750 §2.1)
    or ``Authorization: DPoP`` with its proof (RFC 9449 §7.1); what a proof is checked
    against (the method and the URL as we publish it); and the TLS client certificate our
    proxy forwarded, which a certificate-bound token needs (RFC 8705 §3)."""

    token: str
    scheme: str
    dpop_proofs: tuple[str, ...]
    method: str
    url: str
    client_certificate: x509.Certificate | None


class AccessTokenVerifier(Protocol):
    def verify(self, session: Session, presented: PresentedToken) -> dict[str, Any]:
        """The token's claims (``sub``, ``client_id``, ``scope``, ...); raises InvalidToken.
        A sender-constrained token stands only with the proof of its key or its certificate.

        Takes the request's session: the revoked-token check reads the database, and the
        request is one transaction.
        """
        ...


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's subject (an official's ``sub``, or a client for
    client_credentials tokens) and the client the token was issued to."""

    subject: str
    client_id: str
    scopes: frozenset[str]


def challenge(error: InvalidToken | InsufficientScope | None, scope: str | None = None) -> str:
    """The WWW-Authenticate value (RFC 6750 §3, RFC 9449 §7.1 for a DPoP-bound token): no
    error code without credentials."""
    value = f'{DPOP if isinstance(error, DpopRefused) else BEARER} realm="{REALM}"'
    if error is not None and not isinstance(error, MissingToken):
        value += f', error="{error.code}"'
    if isinstance(error, InsufficientScope) and scope:
        value += f', scope="{scope}"'
    return value


def presented_token(request: Request, *, base_url: str) -> PresentedToken | None:
    """The access token of the request's Authorization header (Bearer or DPoP), else None."""
    authorization = request.headers.get("authorization") or ""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if not token or scheme.lower() not in (BEARER.lower(), DPOP.lower()):
        return None
    settings: Settings | None = getattr(request.app.state, "settings", None)
    return PresentedToken(
        token=token,
        scheme=DPOP if scheme.lower() == DPOP.lower() else BEARER,
        dpop_proofs=tuple(request.headers.getlist("dpop")),
        method=request.method,
        # The URL as published (htu, RFC 9449 §4.3), not the one a proxy forwarded.
        url=f"{base_url.rstrip('/')}{request.url.path}",
        client_certificate=(
            presented_certificate(request.scope, settings) if settings is not None else None
        ),
    )


def authenticate(
    *,
    session: Session,
    verifier: AccessTokenVerifier | None,
    presented: PresentedToken | None,
    needed: str,
) -> Caller:
    if presented is None:
        raise MissingToken(N_("An access token is required (Authorization: Bearer)."))
    if verifier is None:
        raise InvalidToken(N_("The access token is invalid, expired or revoked."))
    claims = verifier.verify(session, presented)
    scopes = frozenset(str(claims.get("scope", "")).split())
    if needed not in scopes:
        raise InsufficientScope(
            N_("The access token does not carry the %(scope)s scope."), scope=needed
        )
    return Caller(
        subject=str(claims["sub"]), client_id=str(claims.get("client_id", "")), scopes=scopes
    )
