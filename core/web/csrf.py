"""CSRF protection for our own HTML forms: signed double-submit cookie.

The browser holds a random nonce in an HttpOnly cookie; every form carries
HMAC-SHA256(server secret, nonce). A cross-site page can neither read the cookie nor compute the
token, and a sibling subdomain that plants its own cookie still cannot forge the matching token
without the server secret (OWASP CSRF Prevention Cheat Sheet, "Signed Double-Submit Cookie").
Stateless, so it works across several workers and hosts without sticky sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from starlette.requests import Request
from starlette.responses import Response

from core.errors import DomainError
from core.web.i18n import N_

FORM_EXPIRED = N_("This form has expired. Please go back, reload the page and try again.")

# Nonces we issue are 32 random bytes, urlsafe base64 without padding (43 characters).
_NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")


class CsrfError(DomainError):
    status_code = 403
    code = "csrf_failed"

    def __init__(
        self, message: str = FORM_EXPIRED, *, field: str | None = None, **params: object
    ) -> None:
        super().__init__(message, field=field, **params)


class CsrfProtection:
    COOKIE_NAME = "csrf_nonce"
    FIELD_NAME = "csrf_token"

    def __init__(self, secret: bytes, *, secure_cookies: bool) -> None:
        if len(secret) < 16:
            raise ValueError("CSRF secret must be at least 16 bytes")
        self._secret = secret
        self.secure_cookies = secure_cookies

    def _token(self, nonce: str) -> str:
        # Domain-separated so the same server secret can key other HMACs safely.
        digest = hmac.new(self._secret, b"csrf:" + nonce.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def token_for(self, request: Request) -> str:
        """Token for the forms of this response; reuses the browser's nonce when it has one."""
        nonce: str | None = getattr(request.state, "csrf_nonce", None)
        if nonce is None:
            cookie = request.cookies.get(self.COOKIE_NAME)
            if cookie and _NONCE_PATTERN.fullmatch(cookie):
                nonce = cookie
                request.state.csrf_nonce_is_new = False
            else:
                nonce = secrets.token_urlsafe(32)
                request.state.csrf_nonce_is_new = True
            request.state.csrf_nonce = nonce
        return self._token(nonce)

    def set_cookie_if_new(self, request: Request, response: Response) -> None:
        if not getattr(request.state, "csrf_nonce_is_new", False):
            return
        # Session cookie: a form left open past browser restart just asks for a reload.
        response.set_cookie(
            self.COOKIE_NAME,
            request.state.csrf_nonce,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure_cookies,
        )

    def verify(self, request: Request, submitted: str | None) -> None:
        """Raise :class:`CsrfError` unless ``submitted`` is the token for the cookie's nonce."""
        nonce = request.cookies.get(self.COOKIE_NAME)
        if not nonce or not _NONCE_PATTERN.fullmatch(nonce) or not submitted:
            raise CsrfError()
        expected = self._token(nonce)
        # Constant-time: the comparison must not leak how many leading characters matched.
        if not hmac.compare_digest(expected.encode("ascii"), submitted.encode("utf-8")):
            raise CsrfError()
