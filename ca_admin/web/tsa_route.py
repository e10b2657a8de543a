"""RFC 3161 §3.4: the time-stamp protocol over HTTP, ``POST /tsa``.

The body is a DER TimeStampReq sent as ``application/timestamp-query``; the answer is always a
DER TimeStampResp as ``application/timestamp-reply`` with HTTP 200, a refusal included (its
PKIStatusInfo says why: ca_admin.time_stamping). Only a request that is not a time-stamp query
at all (another media type) gets an HTTP error, 415. No authentication: like OCSP, anyone who
must prove when a document existed may ask.

A pure ASGI endpoint answering on the event loop (issue 18: ≥ 1,000 tokens/s): no Starlette
Request/Response objects and no thread per request (:func:`time_stamping.stamp_on_loop`). The
composition root also matches it before the router's walk over every route.
"""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from ca_admin import time_stamping
from ca_admin.runtime import CaRuntime
from core.web.client_address import client_address, configured_client_address

PATH = "/tsa"
_UNSUPPORTED_MEDIA_TYPE = b"send the DER TimeStampReq as application/timestamp-query\n"


def _client_address(scope: Scope) -> str | None:
    settings = getattr(scope["app"].state, "settings", None)
    if settings is None:  # an app without the composition root's settings (none in production)
        return client_address(scope, trusted_proxies=[])
    return configured_client_address(scope, settings)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _read_limited(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The body, or None as soon as it exceeds ``limit`` (never buffers more than that) or
    the client goes away; the same rule as status_routes.read_limited."""
    declared = _header(scope, b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = b""
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return body


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", str(len(body)).encode("ascii")), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _reply(send: Send, der: bytes) -> None:
    # Each reply is unique (serial, time): never cached.
    await _send(
        send,
        200,
        der,
        [
            (b"content-type", time_stamping.REPLY_MEDIA_TYPE.encode("ascii")),
            (b"cache-control", b"no-store"),
        ],
    )


class TimeStampEndpoint:
    """``POST /tsa`` as an ASGI app (a class, so that Starlette's Route calls it as one)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = (_header(scope, b"content-type") or b"").decode("latin-1")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type != time_stamping.REQUEST_MEDIA_TYPE:
            await _send(
                send,
                415,
                _UNSUPPORTED_MEDIA_TYPE,
                [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"accept-post", time_stamping.REQUEST_MEDIA_TYPE.encode("ascii")),
                ],
            )
            return
        body = await _read_limited(scope, receive, time_stamping.MAX_REQUEST_BYTES)
        if body is None:
            await _reply(send, time_stamping.rejection("bad_data_format", "request too long").der)
            return
        runtime: CaRuntime = scope["app"].state.ca
        reply = await time_stamping.stamp_on_loop(
            runtime=runtime, request_der=body, client_address=_client_address(scope)
        )
        await _reply(send, reply.der)


tsa_endpoint = TimeStampEndpoint()


def tsa_routes() -> list[Route]:
    return [Route(PATH, tsa_endpoint, methods=["POST"])]
