"""RFC 3161 §3.4: the time-stamp protocol over HTTP, ``POST /tsa``.

The body is a DER TimeStampReq sent as ``application/timestamp-query``; the answer is always a
DER TimeStampResp as ``application/timestamp-reply`` with HTTP 200, a refusal included (its
PKIStatusInfo says why: ca_admin.time_stamping). Only a request that is not a time-stamp query
at all (another media type) gets an HTTP error, 415. No authentication: like OCSP, anyone who
must prove when a document existed may ask.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ca_admin import time_stamping
from ca_admin.runtime import CaRuntime
from ca_admin.web.status_routes import read_limited
from core.web.client_address import client_address, configured_client_address


def _client_address(request: Request) -> str | None:
    settings = getattr(request.app.state, "settings", None)
    if settings is None:  # an app without the composition root's settings (none in production)
        return client_address(request.scope, trusted_proxies=[])
    return configured_client_address(request.scope, settings)


def _reply(der: bytes) -> Response:
    # Each reply is unique (serial, time): never cached.
    return Response(
        der, media_type=time_stamping.REPLY_MEDIA_TYPE, headers={"Cache-Control": "no-store"}
    )


async def tsa_endpoint(request: Request) -> Response:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != time_stamping.REQUEST_MEDIA_TYPE:
        return Response(
            b"send the DER TimeStampReq as application/timestamp-query\n",
            status_code=415,
            media_type="text/plain",
            headers={"Accept-Post": time_stamping.REQUEST_MEDIA_TYPE},
        )
    body = await read_limited(request, time_stamping.MAX_REQUEST_BYTES)
    if body is None:
        return _reply(time_stamping.rejection("bad_data_format", "request too long").der)
    runtime: CaRuntime = request.app.state.ca
    reply = await run_in_threadpool(
        time_stamping.stamp,
        runtime=runtime,
        request_der=body,
        client_address=_client_address(request),
    )
    return _reply(reply.der)


def tsa_routes() -> list[Route]:
    return [Route("/tsa", tsa_endpoint, methods=["POST"])]
