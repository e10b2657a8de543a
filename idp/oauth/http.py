"""The thin adapter between Starlette requests/responses and Authlib's synchronous server.

Authlib has no Starlette server integration. Routes read the body asynchronously first
(``await request.form()``), freeze it into :class:`HttpInput`, and then run Authlib in a
worker thread with an :class:`OAuthRequest` built through Authlib's payload classes (the
deprecated ``body=`` argument is never used).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from cryptography import x509
from starlette.datastructures import FormData, Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from core.settings import Settings
from core.web.client_address import configured_client_address
from core.web.client_certificate import MalformedClientCertificate, configured_client_certificate

MAX_FORM_FIELDS = 64
MAX_FIELD_LENGTH = 8192


@dataclass(frozen=True)
class HttpInput:
    """A request's parts that protocol code needs, readable from any thread."""

    method: str
    url: str
    headers: Headers  # case-insensitive: Authlib asks for "Authorization"
    query: list[tuple[str, str]]
    form: list[tuple[str, str]]
    client_address: str | None
    cookies: dict[str, str]
    # The TLS client certificate our trusted proxy forwarded (core/web/client_certificate.py);
    # ``client_certificate_malformed``: the proxy forwarded something that is not one.
    client_certificate: x509.Certificate | None = None
    client_certificate_malformed: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class FormTooLarge(Exception):
    pass


def request_client_address(request: Request, settings: Settings) -> str | None:
    """The client's address as every IdP caller records it (throttle, audit, sessions)."""
    return configured_client_address(request.scope, settings)


async def read_http_input(
    request: Request, *, settings: Settings, max_field_length: int = MAX_FIELD_LENGTH
) -> HttpInput:
    form_items: list[tuple[str, str]] = []
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
        form: FormData = await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)
        for key, value in form.multi_items():
            if isinstance(value, str):
                if len(value) > max_field_length:
                    raise FormTooLarge(key)
                form_items.append((key, value))
    try:
        certificate = configured_client_certificate(request.scope, settings)
        malformed = False
    except MalformedClientCertificate:
        certificate, malformed = None, True
    return HttpInput(
        method=request.method,
        url=str(request.url),
        headers=request.headers,
        query=list(request.query_params.multi_items()),
        form=form_items,
        client_address=request_client_address(request, settings),
        cookies=dict(request.cookies),
        client_certificate=certificate,
        client_certificate_malformed=malformed,
    )


class MultiValuePayload(OAuth2Payload):
    def __init__(self, items: list[tuple[str, str]]) -> None:
        datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            datalist[key].append(value)
        self._datalist = datalist
        self._data = {key: values[0] for key, values in datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist

    def duplicated(self) -> list[str]:
        return sorted(key for key, values in self._datalist.items() if len(values) > 1)


class OAuthRequest(OAuth2Request):
    """Authlib request whose payload is the query (GET) or the form body (POST)."""

    def __init__(self, http: HttpInput, items: list[tuple[str, str]] | None = None) -> None:
        # Authlib refuses http:// URIs unless told we are in development; TLS is terminated
        # in front of us, and the issuer setting decides what is allowed.
        super().__init__(
            http.method, http.url.replace("http://", "https://", 1), headers=http.headers
        )
        self.http = http
        if items is None:
            items = http.form if http.method == "POST" else http.query
        self.payload_items = items
        self.payload = MultiValuePayload(items)

    @property
    def args(self) -> dict[str, str]:
        return dict(self.http.query)

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def to_starlette(
    status: int, body: Any, headers: list[tuple[str, str]] | dict[str, str]
) -> Response:
    header_map = dict(headers.items() if isinstance(headers, dict) else headers)
    if status in (301, 302, 303, 307) and "Location" in header_map:
        location = header_map.pop("Location")
        response: Response = RedirectResponse(location, status_code=302, headers=header_map)
        return response
    if isinstance(body, dict | list):
        header_map.pop("Content-Type", None)
        return JSONResponse(body, status_code=status, headers={**NO_STORE, **header_map})
    if isinstance(body, str) and header_map.get("Content-Type", "").startswith("application/json"):
        return Response(body, status_code=status, headers={**NO_STORE, **header_map})
    return Response(body or b"", status_code=status, headers=header_map)


def json_error(
    status: int, error: str, description: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, str] = {"error": error}
    if description:
        body["error_description"] = description
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/json",
        headers={**NO_STORE, **(headers or {})},
    )
