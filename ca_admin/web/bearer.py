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

from sqlalchemy.orm import Session

from core.errors import DomainError, PermissionDenied
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


class AccessTokenVerifier(Protocol):
    def verify(self, session: Session, token: str) -> dict[str, Any]:
        """The token's claims (``sub``, ``client_id``, ``scope``, ...); raises InvalidToken.

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
    """The WWW-Authenticate value (RFC 6750 §3): no error code without credentials."""
    value = f'Bearer realm="{REALM}"'
    if error is not None and not isinstance(error, MissingToken):
        value += f', error="{error.code}"'
    if isinstance(error, InsufficientScope) and scope:
        value += f', scope="{scope}"'
    return value


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1), else None."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    token = authorization[7:].strip()
    return token or None


def authenticate(
    *, session: Session, verifier: AccessTokenVerifier | None, token: str | None, needed: str
) -> Caller:
    if token is None:
        raise MissingToken(N_("An access token is required (Authorization: Bearer)."))
    if verifier is None:
        raise InvalidToken(N_("The access token is invalid, expired or revoked."))
    claims = verifier.verify(session, token)
    scopes = frozenset(str(claims.get("scope", "")).split())
    if needed not in scopes:
        raise InsufficientScope(
            N_("The access token does not carry the %(scope)s scope."), scope=needed
        )
    return Caller(
        subject=str(claims["sub"]), client_id=str(claims.get("client_id", "")), scopes=scopes
    )
