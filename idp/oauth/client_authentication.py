"""``client_secret_basic``: RFC 6749 §2.3.1 over HTTP Basic (RFC 7617).

Replaces Authlib's parser, which raised (and so answered 500) on an empty ``Basic `` header
and on credentials that are not UTF-8. A header we cannot read authenticates nobody; the
endpoint then answers invalid_client like for any other failed authentication.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from authlib.oauth2.rfc6749 import InvalidClientError

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
