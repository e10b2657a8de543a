"""The back-channel half of an upstream sign-in: the code exchanged at the upstream's token
endpoint (RFC 6749 §4.1.3, with the PKCE verifier of RFC 7636 §4.5) and its JWK Set (kept in
:mod:`idp.federation.document_cache`), both over HTTP with timeouts and bounded bodies, outside
any database transaction."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from core.web.json_body import JsonBodyError, parse_json_body
from idp.federation.document_cache import UpstreamDocumentCache
from idp.federation.providers import PRIVATE_KEY_JWT
from keys.keyring import KeyRing

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_BODY_BYTES = 256 * 1024
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_ASSERTION_LIFETIME = 60
CLIENT_ASSERTION_ALG = "RS256"
MAX_KID_LENGTH = 200


class UpstreamUnavailable(Exception):
    """The upstream did not answer as the protocol says; the message is for the log."""


@dataclass(frozen=True)
class TokenRequest:
    """What the exchange needs, read from the database before the network is touched."""

    token_endpoint: str
    jwks_uri: str
    client_id: str
    client_secret: str | None  # None: private_key_jwt
    auth_method: str
    redirect_uri: str
    code: str
    code_verifier: str


def client_assertion(request: TokenRequest, *, keyring: KeyRing, now: datetime) -> str:
    """RFC 7523 §3 / OIDC Core §9 private_key_jwt: iss and sub our client_id, aud the token
    endpoint, a fresh jti, a short life; signed with our key ring (published at our jwks_uri)."""
    stamp = int(now.timestamp())
    return keyring.sign_jwt(
        {
            "iss": request.client_id,
            "sub": request.client_id,
            "aud": request.token_endpoint,
            "jti": secrets.token_urlsafe(24),
            "iat": stamp,
            "exp": stamp + CLIENT_ASSERTION_LIFETIME,
        },
        alg=CLIENT_ASSERTION_ALG,
        now=now,
    )


async def _json(
    http: httpx.AsyncClient, method: str, url: str, **options: Any
) -> tuple[Any, str | None]:
    """The JSON object answered, with the response's Cache-Control header."""
    try:
        response = await http.request(method, url, **options)
    except httpx.HTTPError as error:
        raise UpstreamUnavailable(f"{url}: {type(error).__name__}") from None
    try:
        body = parse_json_body(response.content, max_bytes=MAX_BODY_BYTES)
    except JsonBodyError:
        raise UpstreamUnavailable(f"{url}: HTTP {response.status_code}, not JSON") from None
    if response.status_code != 200 or not isinstance(body, dict):
        code = body.get("error") if isinstance(body, dict) else None
        raise UpstreamUnavailable(f"{url}: HTTP {response.status_code} {code or ''}".strip())
    return body, response.headers.get("cache-control")


async def exchange_code(
    request: TokenRequest, *, keyring: KeyRing, now: datetime
) -> dict[str, Any]:
    """The token response, with an ``id_token``."""
    form = {
        "grant_type": "authorization_code",
        "code": request.code,
        "redirect_uri": request.redirect_uri,
        "code_verifier": request.code_verifier,
    }
    auth: tuple[str, str] | None = None
    if request.auth_method == PRIVATE_KEY_JWT:
        form["client_id"] = request.client_id
        form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        form["client_assertion"] = client_assertion(request, keyring=keyring, now=now)
    else:
        assert request.client_secret is not None
        # RFC 6749 §2.3.1: both form-urlencoded before they go into the Basic header.
        auth = (quote(request.client_id, safe=""), quote(request.client_secret, safe=""))
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
        tokens, _ = await _json(
            http,
            "POST",
            request.token_endpoint,
            data=form,
            auth=auth,
            headers={"Accept": "application/json"},
        )
    if not isinstance(tokens.get("id_token"), str):
        raise UpstreamUnavailable("the token response has no id_token")
    return dict(tokens)


def key_id(id_token: str) -> str | None:
    """The ``kid`` of a JWS header (RFC 7515 §4.1.4), read before anything is verified only
    to choose whether the JWK Set is to be fetched again."""
    try:
        header = json.loads(base64.urlsafe_b64decode(id_token.split(".", 1)[0] + "=="))
    except (ValueError, UnicodeDecodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) and len(kid) <= MAX_KID_LENGTH else None


async def upstream_jwks(jwks_uri: str, *, kid: str | None, cache: UpstreamDocumentCache) -> Any:
    """The upstream's JWK Set: the copy in ``cache`` while it is fresh and holds ``kid``;
    otherwise fetched (at most once per interval for a ``kid`` it lacks, so a forged one does
    not make us hammer the upstream). A failed fetch falls back on the copy in hand."""
    if not cache.jwks_to_fetch(jwks_uri, kid=kid):
        kept = cache.in_hand(jwks_uri)
        if kept is not None:
            return kept
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
            jwks, cache_control = await _json(
                http, "GET", jwks_uri, headers={"Accept": "application/json"}
            )
    except UpstreamUnavailable:
        kept = cache.in_hand(jwks_uri)
        if kept is None:
            raise
        return kept
    cache.keep(jwks_uri, jwks, cache_control=cache_control)
    return jwks
