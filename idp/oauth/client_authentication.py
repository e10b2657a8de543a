"""Client authentication at the token, introspection and revocation endpoints.

``client_secret_basic``: RFC 6749 §2.3.1 over HTTP Basic (RFC 7617). Replaces Authlib's
parser, which raised (and so answered 500) on an empty ``Basic `` header and on credentials
that are not UTF-8. A header we cannot read authenticates nobody; the endpoint then answers
invalid_client like for any other failed authentication.

One method per request (RFC 6749 §2.3: the client "MUST NOT use more than one authentication
method in each request"): Authlib tries its methods in turn and keeps the first that succeeds,
so a request with Basic credentials *and* a secret in the body was answered for the Basic
client whatever the body said. :func:`refuse_several_methods` answers such a request 400
``invalid_request`` (§5.2) before any method is tried.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError

from idp.oauth.grants import OAuthClient


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """The client_id and secret of a ``Basic`` Authorization header, or None.

    Both are form-urlencoded before Base64 (RFC 6749 §2.3.1); like Authlib we undo only the
    percent-encoding, so an unencoded "+" in a secret keeps working.
    """
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id or not secret:
        return None
    return unquote(client_id), unquote(secret)


def authenticate_client_secret_basic(
    query_client: Callable[[str], OAuthClient | None], request: Any
) -> OAuthClient | None:
    credentials = basic_credentials(request.headers.get("Authorization"))
    if credentials is None:
        return None
    client_id, secret = credentials
    client = query_client(client_id)
    if client is None:
        # RFC 6749 §5.2: credentials sent in the Authorization header get a 401.
        raise InvalidClientError(
            status_code=401, description="The client does not exist on this server."
        )
    return client if client.check_client_secret(secret) else None


# RFC 7521 §4.2 / RFC 7523 §2.2: the body fields of an assertion (private_key_jwt,
# client_secret_jwt); either one alone already says the client chose that method.
ASSERTION_FIELDS = ("client_assertion", "client_assertion_type")


def is_basic_attempt(authorization: str | None) -> bool:
    """An Authorization header of the Basic scheme, readable or not: the client chose Basic."""
    if not authorization:
        return False
    return authorization.strip().partition(" ")[0].lower() == "basic"


def presented_methods(authorization: str | None, form: Mapping[str, str]) -> list[str]:
    """The client authentication methods a request carries credentials for (RFC 6749 §2.3).

    A ``client_id`` in the body is no method of its own: a public client names itself that
    way (§3.2.1, method ``none``), and a confidential one may repeat it (see
    :func:`refuse_several_methods`)."""
    methods = []
    if is_basic_attempt(authorization):
        methods.append("client_secret_basic")
    if "client_secret" in form:
        methods.append("client_secret_post")
    if any(name in form for name in ASSERTION_FIELDS):
        methods.append("client_assertion")
    return methods


def refuse_several_methods(authorization: str | None, form: Mapping[str, str]) -> None:
    """RFC 6749 §2.3 and §5.2: more than one authentication method is ``invalid_request``.

    A ``client_id`` in the body beside Basic credentials is accepted when it names the same
    client (as Keycloak and OpenIddict do; RFC 6749 §3.2.1 lets a client send it), refused
    when it names another: the request would otherwise speak for two clients at once."""
    if len(presented_methods(authorization, form)) > 1:
        raise InvalidRequestError(
            "More than one client authentication method was used; use exactly one."
        )
    body_client_id = form.get("client_id")
    if body_client_id is None or not is_basic_attempt(authorization):
        return
    credentials = basic_credentials(authorization)
    if credentials is not None and credentials[0] != body_client_id:
        raise InvalidRequestError(
            "The client_id in the body is not the client of the Authorization header."
        )
