"""The token endpoint's fast path for the client credentials grant (RFC 6749 §4.4).

A service client asking for a token with its secret is the most frequent request a token
endpoint gets, and it needs no database: the registration is in the worker's
:class:`~idp.clients.ClientCache`, the secret is checked against a SHA-256 digest, and the
access token is a self-contained RFC 9068 JWT (nothing is stored per token; revocation and
introspection read the token itself and the revocation table by ``jti``). So this path runs on
the event loop, without the thread-pool hop, the database session and Authlib's request
objects of the general path, and the cost of a token is little more than its signature.

It only ever *succeeds*. Anything else (a client that is not cached yet, a wrong secret, an
unknown or repeated parameter, a scope the server does not know, a chunked or large body)
returns ``None`` and the request goes through the general path (Authlib), which then answers
exactly as it always did, errors included (RFC 6749 §5.2). For a request this path accepts,
the general path would succeed with the same token claims and the same response: the checks
below mirror it step by step (see the tests in
``tests/idp/test_client_credentials_fast_path.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response

from idp import clients
from idp.claims import SUPPORTED_SCOPES
from idp.clients import ClientCache, ClientInfo
from idp.oauth.client_authentication import basic_credentials, presented_methods
from idp.oauth.http import NO_STORE
from idp.oauth.server import is_client_id
from idp.oauth.token_issuer import issue_access_token
from idp.runtime import IdpRuntime

GRANT_TYPE = "client_credentials"
# Far above a real client_credentials body (a grant type, a scope, perhaps a client id and
# secret); a larger or chunked body takes the general path, which streams and limits it.
MAX_BODY_BYTES = 2048
MAX_FIELDS = 16
# Scopes that mean nothing without a user (the general path leaves them out too).
USER_SCOPES = frozenset({"openid", "offline_access"})
_SUPPORTED_SCOPES = frozenset(SUPPORTED_SCOPES)


def cached_client(cache: ClientCache, client_id: str) -> ClientInfo | None:
    """The client's registration if the cache holds a fresh copy (the same ``ttl`` rules as
    the general path's lookups, see :class:`~idp.clients.ClientCache`), else None."""
    # A miss must not query the database from the event loop: the general path reads the row
    # in a worker thread and fills the cache for the next requests.
    return cache.cached(client_id)


def form_fields(body: bytes) -> dict[str, str] | None:
    """The fields of a plain urlencoded body (WHATWG ``application/x-www-form-urlencoded``),
    or None for anything unusual: not ASCII, ``;`` (which Starlette's parser also treats as a
    separator), a field without ``=``, an empty name, a repeated name, too many fields."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text or ";" in text:
        return None
    pairs = text.split("&")
    if len(pairs) > MAX_FIELDS:
        return None
    fields: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            return None
        name = unquote_plus(name)
        if not name or name in fields:
            return None
        fields[name] = unquote_plus(value)
    return fields


def authenticated_client(
    runtime: IdpRuntime, authorization: str | None, fields: dict[str, str]
) -> ClientInfo | None:
    """RFC 6749 §2.3.1: the client, if it authenticates with the method it registered.

    ``client_secret_basic`` when there is an Authorization header (and no credentials in the
    body), ``client_secret_post`` otherwise. The general path handles every other combination.
    """
    # Exactly one method; two (RFC 6749 §2.3) are refused by the general path.
    if len(presented_methods(authorization, fields)) != 1:
        return None
    if authorization is not None:
        if "client_id" in fields:
            return None
        credentials = basic_credentials(authorization)
        if credentials is None:
            return None
        client_id, secret = credentials
        method = "client_secret_basic"
    else:
        client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
        if not client_id or not secret:
            return None
        method = "client_secret_post"
    if not is_client_id(client_id):
        return None
    info = cached_client(runtime.client_cache, client_id)
    if info is None or info.token_endpoint_auth_method != method:
        return None
    # A constant-time comparison of SHA-256 digests (client secrets are 256-bit random values);
    # the secret replaced by a rotation is accepted until its overlap ends, as on the general path.
    return info if clients.check_secret(info, secret, now=runtime.clock.now()) else None


def granted_scope(client: ClientInfo, requested: str | None) -> str:
    """The scope of the token: the requested (else registered) scopes the client is allowed,
    in the order asked, without the user-facing ones. The same rule as the general path's
    ``ServiceCredentialsGrant.generate_token``."""
    allowed = set(client.scope.split())
    wanted = requested or client.scope
    return " ".join(
        s for s in dict.fromkeys(wanted.split()) if s in allowed and s not in USER_SCOPES
    )


def is_supported_scope(scope: str) -> bool:
    """Authlib's check (``validate_requested_scope``): every whitespace-separated item is a
    scope the server supports."""
    return all(item in _SUPPORTED_SCOPES for item in scope.split())


async def small_form(request: Request) -> dict[str, str] | None:
    """The fields of a small, plain urlencoded body (see :func:`form_fields`), or None when
    the general path must read it: another content type, no length, chunked, too large.
    Shared with the introspection endpoint's fast path."""
    headers = request.headers
    if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    length = headers.get("content-length")
    # isascii: int() would also take other Unicode digits, and str.isdigit accepts "²".
    if not (length and length.isascii() and length.isdigit()) or int(length) > MAX_BODY_BYTES:
        return None
    # Starlette keeps the body: the general path's form parser reads it again from there.
    return form_fields(await request.body())


async def issue_without_database(request: Request, runtime: IdpRuntime) -> Response | None:
    """The RFC 6749 §5.1 response to a plain client_credentials request, or None to let the
    general path answer."""
    headers = request.headers
    if "dpop" in headers:
        return None  # a DPoP proof is checked against the database replay cache (RFC 9449)
    fields = await small_form(request)
    if fields is None or fields.get("grant_type") != GRANT_TYPE:
        return None
    scope = fields.get("scope")
    if scope and not is_supported_scope(scope):
        return None
    client = authenticated_client(runtime, headers.get("authorization"), fields)
    if client is None or GRANT_TYPE not in client.grant_types or client.sender_constrained:
        return None  # bound tokens: the general path binds them (DPoP, RFC 8705)
    granted = granted_scope(client, scope)
    access = issue_access_token(runtime, client=client, scope=granted, grant=None)
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": granted,
    }
    # The bytes and headers of the general path's JSONResponse (RFC 6749 §5.1: no-store);
    # pydantic-core writes the same compact UTF-8 JSON as json.dumps, faster.
    return Response(
        to_json(body),
        status_code=200,
        headers=NO_STORE,
        media_type="application/json",
    )
