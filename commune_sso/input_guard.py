"""Refuse, before any route runs, a request whose path, query string or headers cannot be
stored: NUL (PostgreSQL refuses it in ``text``: a 500 on the first query that carries it) and
percent-encoded bytes that are not UTF-8 (overlong forms such as ``%C0%80``, encoded
surrogates such as ``%ED%A0%80``, stray bytes). Decoders elsewhere would silently turn the
latter into U+FFFD, so that what is looked up is not what was sent.

The answer is a 400 in the format of the endpoint asked for, chosen by the same dispatch as
the server's 5xx (:func:`commune_sso.server_errors.error_in_callers_format`). Bodies are
checked where they are read: JSON by :func:`core.web.json_body.parse_json_body`, forms by
their readers.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from commune_sso.server_errors import PageRenderer, error_in_callers_format
from core.web.i18n import N_
from idp.oauth.endpoints.discovery import PATHS

BAD_INPUT_PAGE = (
    N_("Invalid request"),
    N_("The address or the form contains characters that cannot be processed."),
)
DETAIL = "The request holds a NUL character or bytes that are not UTF-8."

# (request, msgid) -> the msgid in the API caller's language.
ApiTranslator = Callable[[Request, str], str]


# RFC 6749 §4.1.2.1: once the client and its redirect URI are known to be good, a bad parameter
# is an error *redirect*, which only the endpoint can make; it refuses control characters itself
# (idp/oauth/authorization_checks.py) before anything reaches the database.
ENDPOINTS_REFUSING_NUL_THEMSELVES = frozenset({PATHS["authorization_endpoint"]})


def is_clean_text(raw: bytes, *, nul_allowed: bool = False) -> bool:
    """True if ``raw`` (percent-decoded already, or to be decoded here) is UTF-8 without NUL."""
    decoded = unquote_to_bytes(raw) if b"%" in raw else raw
    if b"\x00" in decoded and not nul_allowed:
        return False
    try:
        decoded.decode("utf-8")  # strict: refuses overlong forms and encoded surrogates
    except UnicodeDecodeError:
        return False
    return True


def is_clean_request(scope: Scope) -> bool:
    raw_path = scope.get("raw_path")
    if isinstance(raw_path, bytes) and not is_clean_text(raw_path):
        return False
    if "\x00" in scope["path"]:
        return False
    nul_allowed = scope["path"] in ENDPOINTS_REFUSING_NUL_THEMSELVES
    if not is_clean_text(scope.get("query_string", b""), nul_allowed=nul_allowed):
        return False
    # Header values are Latin-1 octets (RFC 9110 §5.5): only NUL is refused.
    return not any(b"\x00" in value for _, value in scope.get("headers", ()))


class HostileInputGuard:
    """Pure ASGI middleware; inside :class:`ServerErrorBoundary`, outside every route."""

    def __init__(
        self, app: ASGIApp, *, render_page: PageRenderer, translate_api: ApiTranslator
    ) -> None:
        self.app = app
        self.render_page = render_page
        self.translate_api = translate_api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_clean_request(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = error_in_callers_format(
            request,
            status=400,
            oauth_error="invalid_request",
            detail=DETAIL,
            page=BAD_INPUT_PAGE,
            headers={},
            render_page=self.render_page,
            api_message=self.translate_api(request, BAD_INPUT_PAGE[1]),
        )
        await response(scope, receive, send)
