"""What a caller gets when the server, not the request, is at fault: 500 for a bug, 503 with
``Retry-After`` (RFC 9110 §10.2.3) while the database is unavailable, in the format the caller
reads, and always with ``Connection: close``.

Starlette's own handler for ``Exception`` runs in ``ServerErrorMiddleware``, which sends the
response and then re-raises: uvicorn logs the exception again and drops the connection, so a
proxy's next request on that keep-alive connection is reset. :class:`ServerErrorBoundary` sits
inside it, answers, logs once and lets nothing escape after a complete response.
``Connection: close`` on every 5xx (RFC 9112 §9.6) makes uvicorn close the connection cleanly
after the response: a worker that failed once may be in trouble, and the proxy then retries on
a fresh connection (possibly to another host) instead of reusing this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ca_admin.web.api import PREFIX as CA_API_PREFIX
from core.db import is_database_unavailable
from core.web.i18n import N_
from idp.admin_api.imports import PREFIX as ADMIN_API_PREFIX
from idp.oauth.endpoints.discovery import PATHS
from idp.scim.endpoints import PREFIX as SCIM_PREFIX
from idp.scim.errors import ScimError, error_response

log = logging.getLogger("commune_sso")

# OAuth endpoints that servers call (never a browser): always RFC 6749 §5.2-style JSON.
OAUTH_BACK_CHANNEL = frozenset(
    PATHS[name]
    for name in (
        "token_endpoint",
        "userinfo_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "jwks_uri",
    )
)

# JSON APIs whose errors are {"error": code, "message": text} (ca_admin/web/api.py,
# idp/admin_api/auth.py).
JSON_API_PREFIXES = (CA_API_PREFIX, ADMIN_API_PREFIX)

# (title, message) msgids of the error page.
UNAVAILABLE_PAGE = (
    N_("Service temporarily unavailable"),
    N_("The service cannot reach its database right now. Please try again in a few moments."),
)
BROKEN_PAGE = (N_("Something went wrong"), N_("Please try again later."))

# Renders the HTML error page: (request, title, message, status) -> response.
PageRenderer = Callable[[Request, str, str, int], Response]


class _ScimServerError(ScimError):
    """The SCIM Error body of a 5xx (RFC 7644 §3.12); ``status`` set per instance."""


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def server_error_response(
    request: Request, error: BaseException, *, render_page: PageRenderer, retry_after: int
) -> Response:
    """The 503 (database unavailable) or 500 (anything else) answer for ``request``."""
    if is_database_unavailable(error):
        status, oauth_error = 503, "temporarily_unavailable"  # RFC 6749 §4.1.2.1
        title, message = UNAVAILABLE_PAGE
        detail = "The service is temporarily unavailable; try again later."
        headers = {"Retry-After": str(retry_after)}
    else:
        status, oauth_error = 500, "server_error"
        title, message = BROKEN_PAGE
        detail = "The server could not complete the request."
        headers = {}
    return error_in_callers_format(
        request,
        status=status,
        oauth_error=oauth_error,
        detail=detail,
        page=(title, message),
        headers=headers,
        render_page=render_page,
    )


def under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def error_in_callers_format(
    request: Request,
    *,
    status: int,
    oauth_error: str,
    detail: str,
    page: tuple[str, str],
    headers: dict[str, str],
    render_page: PageRenderer,
    api_message: str | None = None,
) -> Response:
    """One error in the format the caller of ``request.url.path`` reads: a SCIM Error (RFC
    7644 §3.12) under /scim/v2, ``{"error", "message"}`` under the CA and admin APIs, RFC 6749
    §5.2 JSON on back-channel endpoints and for non-browser callers, else the (title, message)
    HTML page. ``detail`` is English; ``api_message`` is the APIs' translated text."""
    path = request.url.path
    if under(path, SCIM_PREFIX):
        scim = _ScimServerError(detail, headers=headers)
        scim.status = status
        if status < 500:
            scim.scim_type = "invalidValue"
        return error_response(scim)
    if any(under(path, prefix) for prefix in JSON_API_PREFIXES):
        body = {"error": oauth_error, "message": api_message or detail}
        return JSONResponse(body, status_code=status, headers=headers)
    if path in OAUTH_BACK_CHANNEL or not wants_html(request):
        body = {"error": oauth_error, "error_description": detail}
        return JSONResponse(body, status_code=status, headers=headers)
    title, message = page
    try:
        response = render_page(request, title, message, status)
    except Exception:
        log.exception("the error page could not be rendered")
        return JSONResponse({"error": oauth_error}, status_code=status, headers=headers)
    response.headers.update(headers)
    return response


def database_cause(error: BaseException) -> str:
    """The driver's first line, never SQLAlchemy's text: that quotes the statement and its
    parameters (token digests, password hashes)."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class ServerErrorBoundary:
    """Pure ASGI middleware: the last catch for exceptions, and ``Connection: close`` on 5xx."""

    def __init__(
        self, app: ASGIApp, *, render_page: PageRenderer, retry_after: Callable[[], int]
    ) -> None:
        self.app = app
        self.render_page = render_page
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        finished = False

        async def send_closing(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 500:
                    headers = [
                        (name, value)
                        for name, value in message.get("headers", [])
                        if name.lower() != b"connection"
                    ]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, send_closing)
        except Exception as error:
            request = Request(scope)
            if finished:
                # The caller has its whole answer; raising would only make uvicorn reset the
                # connection. Background work after the response failed: log it.
                log.exception("error after the response to %s %s", scope["method"], scope["path"])
                return
            if started:
                raise  # a half-sent body: only closing the connection tells the client
            if is_database_unavailable(error):
                # Expected during an outage: one line, no stack trace per request.
                log.warning(
                    "database unavailable on %s %s: %s",
                    scope["method"],
                    scope["path"],
                    database_cause(error),
                )
            else:
                # The cause goes to the log; the caller sees no stack trace (CONVENTIONS §3).
                log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            response = server_error_response(
                request, error, render_page=self.render_page, retry_after=self.retry_after()
            )
            await response(scope, receive, send_closing)
