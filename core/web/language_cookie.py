"""The language a person chose (``?lang=en``) is kept in a ``lang`` cookie on every response,
redirects included.

A language chosen before signing in must survive the redirects of the sign-in (an app's page
to ``/oauth2/authorize`` to ``/login`` to ``/login/otp`` to ``/consent`` and back): those
redirects do not carry ``?lang=``, and only a page that renders could set the cookie before.
The cookie is read after ``?lang=`` and the OIDC ``ui_locales`` (core.web.i18n.negotiate_locale).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.web.i18n import supported_locale

LANG_COOKIE_NAME = "lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
LANG_QUERY_PARAM = "lang"


def remember_language(response: Response, locale: str, *, secure: bool) -> None:
    """Set the ``lang`` cookie: HttpOnly and SameSite=Lax like every cookie of ours, Secure
    when the service is served over https."""
    response.set_cookie(
        LANG_COOKIE_NAME,
        locale,
        max_age=LANG_COOKIE_MAX_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def _language_cookie_header(locale: str, *, secure: bool) -> bytes:
    carrier = Response()
    remember_language(carrier, locale, secure=secure)
    return carrier.headers["set-cookie"].encode("latin-1")


def chosen_language(query_string: bytes) -> str | None:
    """The supported language named by ``?lang=`` in a raw query string, or None."""
    for name, value in parse_qsl(query_string.decode("latin-1")):
        if name == LANG_QUERY_PARAM:
            return supported_locale(value)
    return None


class RememberChosenLanguage:
    """ASGI middleware: a request with a supported ``?lang=`` gets the ``lang`` cookie on its
    response, whatever the response is (a page, a redirect, an error page)."""

    def __init__(self, app: ASGIApp, *, secure_cookies: bool) -> None:
        self.app = app
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        locale = chosen_language(scope.get("query_string", b""))
        if locale is None:
            await self.app(scope, receive, send)
            return
        cookie = _language_cookie_header(locale, secure=self.secure_cookies)
        prefix = f"{LANG_COOKIE_NAME}=".encode()

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                already = any(
                    value.encode("latin-1").startswith(prefix)
                    for value in headers.getlist("set-cookie")
                )
                if not already:
                    headers.raw.append((b"set-cookie", cookie))
            await send(message)

        await self.app(scope, receive, send_with_cookie)
