"""Who is calling the admin API: an administrator with their own access token (RFC 6750).

The token comes from our own token endpoint through the authorization code flow, with the scope
``admin``; its ``sub`` names the account, and :func:`idp.admin_scope.scope_of` (the one place
where delegated scope is decided) says what that account may administer. Client tokens
(client_credentials) never act as an administrator: provisioning clients use SCIM.

Errors follow RFC 6750 §3.1: no token -> 401 with a bare challenge; an invalid, expired or
revoked token -> 401 ``invalid_token``; a token without the ``admin`` scope -> 403
``insufficient_scope``; the account is not (or no longer) an administrator -> 403 ``forbidden``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from babel.support import Translations
from cryptography import x509
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import DomainError, PermissionDenied
from core.web.i18n import DEFAULT_LOCALE, N_, SUPPORTED_LOCALES
from idp.admin_scope import AdminScope, scope_of
from idp.claims import ADMIN_SCOPE
from idp.oauth.access_tokens import read_access_token
from idp.oauth.http import NO_STORE
from idp.runtime import IdpRuntime

REALM = "admin"
_LANGUAGE_RANGE = re.compile(
    r"^\s*([A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q=([0-9.]+))?"
)


class MissingToken(DomainError):
    status_code = 401
    code = "unauthorized"


class InvalidToken(DomainError):
    status_code = 401
    code = "invalid_token"


class InsufficientScope(DomainError):
    status_code = 403
    code = "insufficient_scope"


@dataclass(frozen=True)
class AdminCaller:
    account_id: int
    username: str
    reach: AdminScope

    @property
    def actor(self) -> str:
        # The same actor the CLI records for ``import-users --as <username>``.
        return f"user:{self.username.lower()}"


def authenticate(
    runtime: IdpRuntime,
    session: Session,
    authorization: str | None,
    client_certificate: x509.Certificate | None = None,
) -> AdminCaller:
    """The administrator behind ``Authorization: Bearer ...`` or a typed error (see module);
    a token bound to a certificate (RFC 8705 §3) only with ``client_certificate``, the one our
    proxy forwarded."""
    if not authorization or authorization[:7].lower() != "bearer " or not authorization[7:].strip():
        raise MissingToken(N_("A bearer access token is required."))
    view = read_access_token(
        runtime, session, authorization[7:].strip(), client_certificate=client_certificate
    )
    if view is None:
        raise InvalidToken(N_("The access token is invalid or expired."))
    if ADMIN_SCOPE not in str(view.claims.get("scope", "")).split():
        raise InsufficientScope(N_("The access token does not carry the admin scope."))
    if view.grant is None:
        raise InsufficientScope(
            N_("The admin API needs an administrator's own token, not an application's.")
        )
    account = view.grant.account
    reach = scope_of(session, account)
    if not reach.is_admin:
        raise PermissionDenied(N_("This account is not an administrator."))
    return AdminCaller(account_id=account.id, username=account.username, reach=reach)


def challenge(error: DomainError) -> str:
    value = f'Bearer realm="{REALM}"'
    if isinstance(error, InvalidToken):
        value += f', error="{error.code}"'
    elif isinstance(error, InsufficientScope):
        value += f', error="{error.code}", scope="{ADMIN_SCOPE}"'
    return value


def accept_language(header: str | None) -> str:
    """The best supported language of an Accept-Language header (RFC 9110 §12.5.4);
    Vietnamese when none is supported."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")[:20]):
        match = _LANGUAGE_RANGE.match(part)
        if not match:
            continue
        try:
            quality = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        primary = match.group(1).replace("_", "-").split("-", 1)[0].lower()
        if quality > 0 and primary in SUPPORTED_LOCALES:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LOCALE


def locale_of(request: Request) -> str:
    return accept_language(request.headers.get("accept-language"))


def error_response(
    error: DomainError, translations: dict[str, Translations], locale: str
) -> Response:
    """``{"error": code, "message": text}`` in the caller's language, plus the RFC 6750
    challenge on 401 and on ``insufficient_scope``."""
    catalogue = translations.get(locale)
    translate = catalogue.gettext if catalogue is not None else str
    headers = {**NO_STORE, "Content-Language": locale}
    if isinstance(error, MissingToken | InvalidToken | InsufficientScope):
        headers["WWW-Authenticate"] = challenge(error)
    body: dict[str, Any] = {"error": error.code, "message": error.text(translate)}
    if error.field:
        body["field"] = error.field
    return JSONResponse(body, status_code=error.status_code, headers=headers)
