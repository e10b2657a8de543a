"""The authorization endpoint's checks (OIDC Core §3.1.2.1-2, RFC 6749 §4.1.1, RFC 7636 §4.3).

Two kinds: before the redirect URI is known to be registered, an error is shown on our own
page (RFC 6749 §4.1.2.1: never redirect to an unverified URI); after it, errors go back to the
client as a redirect with ``error``, ``state`` and ``iss``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidRequestError,
    OAuth2Error,
    UnsupportedResponseTypeError,
)
from authlib.oidc.core.errors import RequestNotSupportedError, RequestURINotSupportedError

from idp.oauth.grants import OAuthClient
from idp.oauth.http import OAuthRequest

if TYPE_CHECKING:
    from idp.oauth.server import OAuthServer

# OIDC Core §3.1.2.1. Not "select_account": a browser holds one SSO session here, so there is
# no account to choose between; asked for, it is an unsupported value (invalid_request, as the
# OpenID Connect Prompt Create spec §4.1 says of values not in prompt_values_supported).
PROMPT_VALUES = ("none", "login", "consent")
SUPPORTED_RESPONSE_MODES = frozenset({"query"})
MAX_STATE_OR_NONCE = 2048
# None of the grammars of RFC 6749 Appendix A (VSCHAR, NQCHAR, UNICODECHARNOCRLF, URI) admits
# these; PostgreSQL also refuses NUL in text, so a nonce carrying one would fail at code issue.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_client(
    query_client: Callable[[str], OAuthClient | None], request: OAuthRequest
) -> OAuthClient:
    client_id = request.payload.client_id
    if not client_id:
        raise InvalidClientError(description="Missing 'client_id' parameter.")
    if CONTROL_CHARACTERS.search(client_id):  # PostgreSQL refuses NUL in the lookup
        raise InvalidClientError(description="The client does not exist on this server.")
    client = query_client(client_id)
    if client is None:
        raise InvalidClientError(description="The client does not exist on this server.")
    return client


def check_redirect_uri(request: OAuthRequest, client: OAuthClient) -> str:
    redirect_uri = request.payload.redirect_uri
    if not redirect_uri:
        raise InvalidRequestError("Missing 'redirect_uri' parameter.")
    if len(request.payload.datalist.get("redirect_uri", [])) > 1:
        raise InvalidRequestError("Multiple 'redirect_uri' parameters.")
    if not client.check_redirect_uri(redirect_uri):
        raise InvalidRequestError("The 'redirect_uri' is not registered for this client.")
    return redirect_uri


def check_no_repeated_parameters(request: OAuthRequest, redirect_uri: str) -> None:
    """RFC 6749 §3.1: parameters MUST NOT be included more than once."""
    repeated = request.payload.duplicated()
    if repeated:
        raise InvalidRequestError(f"Repeated parameter '{repeated[0]}'.", redirect_uri=redirect_uri)


def check_no_control_characters(request: OAuthRequest, redirect_uri: str) -> None:
    """RFC 6749 Appendix A: no parameter of the request may carry a control character."""
    for name, value in request.payload_items:
        if CONTROL_CHARACTERS.search(name) or CONTROL_CHARACTERS.search(value):
            raise InvalidRequestError(
                "A parameter contains control characters.", redirect_uri=redirect_uri
            )


def check_response_type_present(request: OAuthRequest, redirect_uri: str) -> None:
    """RFC 6749 §4.1.2.1: a missing required parameter is invalid_request (Authlib would call a
    missing response_type unsupported_response_type)."""
    if not request.payload.data.get("response_type"):
        raise InvalidRequestError("Missing 'response_type' parameter.", redirect_uri=redirect_uri)


# RFC 6749 §4.1.2.1: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
_ERROR_TEXT = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


class UnsupportedResponseType(UnsupportedResponseTypeError):
    """Our description never quotes the value: Authlib's does, and raises ValueError (a 500)
    when the value holds a character an error description may not carry (``"``, U+202E)."""

    def get_error_description(self) -> str:
        return "The response_type is not supported."


def check_response_type_text(request: OAuthRequest, redirect_uri: str) -> None:
    """A response_type that no error description may quote is not one we support (RFC 6749
    §3.1.1 response types are ASCII names)."""
    response_type = request.payload.data.get("response_type", "")
    if not _ERROR_TEXT.fullmatch(response_type):
        raise UnsupportedResponseType(response_type, redirect_uri=redirect_uri)


def check_request_uri(request: OAuthRequest, redirect_uri: str) -> None:
    """RFC 9101 §5.2: a request_uri is fetched from nowhere (request_uri_parameter_supported
    is false); our own pushed requests' request_uris are resolved before these checks. A
    ``request`` still here sat inside a request object or a pushed request's resolution."""
    data = request.payload.data
    if "request" in data:
        raise RequestNotSupportedError(redirect_uri=redirect_uri)
    if "request_uri" in data:
        raise RequestURINotSupportedError(redirect_uri=redirect_uri)


class InvalidRequestUriError(OAuth2Error):
    """RFC 9126 §4 / RFC 9101 §7: the request_uri is unknown, expired, used or another
    client's."""

    error = "invalid_request_uri"


def check_pushed(client: OAuthClient, redirect_uri: str, *, pushed: bool) -> None:
    """RFC 9126 §6 require_pushed_authorization_requests (also under FAPI 2.0 §5.3.2.2)."""
    if client.info.requires_pushed_requests and not pushed:
        raise InvalidRequestError(
            "This client must push its authorization requests first (PAR, RFC 9126).",
            redirect_uri=redirect_uri,
        )


def check_signed(client: OAuthClient, redirect_uri: str, *, signed: bool) -> None:
    """RFC 9101 §10.5 require_signed_request_object: the client's requests only as a request
    object signed with its key."""
    if client.info.require_signed_request_object and not signed:
        raise InvalidRequestError(
            "This client must send its authorization requests as signed request objects "
            "(RFC 9101).",
            redirect_uri=redirect_uri,
        )


@dataclass(frozen=True)
class CheckedRequest:
    client: OAuthClient
    redirect_uri: str
    grant: Any  # Authlib's authorization code grant for the request
    prompts: frozenset[str]
    max_age: int | None


def check_authorization_request(
    server: OAuthServer, request: OAuthRequest, *, pushed: bool, signed: bool
) -> CheckedRequest:
    """Every check of an authorization request, in order (the authorization endpoint runs
    them on what the browser brings, the PAR endpoint on what the client pushes; a request
    object's parameters once it is verified, ``signed``). Raises the first problem as an
    OAuth2Error; those raised after the redirect URI is known carry it."""
    client = check_client(server.query_client, request)
    redirect_uri = check_redirect_uri(request, client)
    check_no_repeated_parameters(request, redirect_uri)
    check_no_control_characters(request, redirect_uri)
    check_request_uri(request, redirect_uri)
    check_pushed(client, redirect_uri, pushed=pushed)
    check_signed(client, redirect_uri, signed=signed)
    check_response_type_present(request, redirect_uri)
    check_response_type_text(request, redirect_uri)
    grant = server.get_consent_grant(request, end_user=None)
    check_response_mode(request, redirect_uri)
    check_lengths(request, redirect_uri)
    check_pkce(request, redirect_uri)
    check_dpop_jkt(request, redirect_uri)
    prompts = check_prompt(request, redirect_uri)
    max_age = check_max_age(request, redirect_uri)
    return CheckedRequest(client, redirect_uri, grant, prompts, max_age)


def check_response_mode(request: OAuthRequest, redirect_uri: str) -> None:
    mode = request.payload.data.get("response_mode")
    if mode is not None and mode not in SUPPORTED_RESPONSE_MODES:
        raise InvalidRequestError("Unsupported 'response_mode'.", redirect_uri=redirect_uri)


def check_lengths(request: OAuthRequest, redirect_uri: str) -> None:
    for name in ("state", "nonce"):
        if len(request.payload.data.get(name, "")) > MAX_STATE_OR_NONCE:
            raise InvalidRequestError(f"'{name}' is too long.", redirect_uri=redirect_uri)


def check_pkce(request: OAuthRequest, redirect_uri: str) -> None:
    """PKCE with S256 for every client, confidential ones included (RFC 9700 §2.1.1)."""
    data = request.payload.data
    if not data.get("code_challenge"):
        raise InvalidRequestError(
            "PKCE is required: send 'code_challenge' with 'code_challenge_method=S256'.",
            redirect_uri=redirect_uri,
        )
    if data.get("code_challenge_method") != "S256":
        raise InvalidRequestError(
            "Only 'code_challenge_method=S256' is accepted.", redirect_uri=redirect_uri
        )


# RFC 7638 SHA-256 thumbprint, base64url without padding.
JWK_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")


def check_dpop_jkt(request: OAuthRequest, redirect_uri: str) -> None:
    """RFC 9449 §10: dpop_jkt, when sent, is the thumbprint of the client's DPoP key."""
    jkt = request.payload.data.get("dpop_jkt")
    if jkt is not None and not JWK_THUMBPRINT.fullmatch(jkt):
        raise InvalidRequestError(
            "'dpop_jkt' must be a JWK SHA-256 thumbprint.", redirect_uri=redirect_uri
        )


def check_prompt(request: OAuthRequest, redirect_uri: str) -> frozenset[str]:
    """OIDC Core §3.1.2.1: "none" must stand alone; unknown values are an error."""
    prompts = frozenset(request.payload.data.get("prompt", "").split())
    if not prompts <= frozenset(PROMPT_VALUES):
        raise InvalidRequestError("Unsupported 'prompt' value.", redirect_uri=redirect_uri)
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError(
            "'prompt=none' cannot be combined with other values.", redirect_uri=redirect_uri
        )
    return prompts


def check_max_age(request: OAuthRequest, redirect_uri: str) -> int | None:
    raw = request.payload.data.get("max_age")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 10:
        raise InvalidRequestError(
            "'max_age' must be a non-negative integer.", redirect_uri=redirect_uri
        )
    return int(raw)
