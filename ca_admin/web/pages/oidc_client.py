"""The CA pages as an OpenID Connect client of our own IdP (DESIGN: ca_admin learns who the
official is the way any shared app does).

Authorization code flow with PKCE S256 (RFC 7636 §4.2), ``state`` and ``nonce``; the code is
exchanged at the token endpoint with the client's secret (RFC 6749 §4.1.3,
client_secret_basic), and the ID token is validated as OIDC Core §3.1.3.7 says: signature
(through :class:`IdTokenVerifier`, which the composition root implements with the IdP's key
ring, as it does for access tokens), ``iss``, ``aud``/``azp``, ``exp``, ``iat``, ``nonce`` and
``at_hash`` (§3.1.3.8). ca_admin never imports idp: it knows only the endpoints' paths.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx
from starlette.types import ASGIApp

from core.errors import DomainError
from core.web.i18n import N_

# OIDC Core §3.1.3.6: at_hash is the left half of the hash named by the JWS alg.
_HALF_HASH = {"RS256": hashlib.sha256, "ES256": hashlib.sha256, "EdDSA": hashlib.sha512}
CLOCK_SKEW = timedelta(seconds=60)
TOKEN_TIMEOUT = 10.0


class LoginFailed(DomainError):
    """The login round trip cannot be completed; the official is asked to start again."""

    status_code = 400
    code = "login_failed"


class IdTokenVerifier(Protocol):
    def verify(self, token: str) -> tuple[str, dict[str, Any]]:
        """Check the signature against the IdP's published keys; the JWS ``alg`` and the
        claims. Raises ``ValueError`` for a token that is not ours or not intact."""
        ...


@dataclass(frozen=True)
class PagesClient:
    """The CA pages' registration at the IdP and what they need to log officials in."""

    client_id: str
    client_secret: str
    issuer: str
    authorization_path: str
    token_path: str
    end_session_path: str
    scope: str
    cookie_key: bytes  # HMAC key of the pages' own cookies (derived from the server secret)
    secure_cookies: bool
    session_lifetime: timedelta
    id_tokens: IdTokenVerifier
    # Registers the client at the IdP if it is missing (idempotent; the composition root's).
    ensure_registered: Callable[[], None]

    @property
    def redirect_uri(self) -> str:
        return f"{self.issuer}/ca/pages/callback"

    @property
    def home_uri(self) -> str:
        return f"{self.issuer}/ca/pages/"


# --------------------------------------------------------------------------------------------
# Signed cookies (the pages keep no server-side session: several workers, no sticky sessions)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(key: bytes, purpose: str, payload: Mapping[str, Any]) -> str:
    """``payload.mac``: JSON signed with HMAC-SHA256; ``purpose`` keeps one cookie's value
    from being replayed as another's."""
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    mac = hmac.new(key, f"{purpose}:{body}".encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unseal(key: bytes, purpose: str, value: str | None, *, now: datetime) -> dict[str, Any] | None:
    """The payload if the MAC is right and ``exp`` (epoch seconds) has not passed."""
    if not value or value.count(".") != 1 or len(value) > 4096:
        return None
    body, mac = value.split(".")
    expected = hmac.new(key, f"{purpose}:{body}".encode("ascii"), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int | float):
        return None
    if payload["exp"] <= now.timestamp():
        return None
    return payload


# --------------------------------------------------------------------------------------------
# The authorization request (OIDC Core §3.1.2.1)


@dataclass(frozen=True)
class LoginStart:
    location: str
    state: dict[str, Any]  # kept in the signed login cookie until the callback


def start_login(
    client: PagesClient, *, now: datetime, next_path: str, max_age: int | None, locale: str
) -> LoginStart:
    verifier = secrets.token_urlsafe(48)
    challenge = _b64(hashlib.sha256(verifier.encode("ascii")).digest())
    state = secrets.token_urlsafe(24)
    nonce = secrets.token_urlsafe(24)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": client.scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "ui_locales": locale,
    }
    if max_age is not None:
        params["max_age"] = str(max_age)
    return LoginStart(
        location=f"{client.issuer}{client.authorization_path}?{urlencode(params)}",
        state={
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
            "next": next_path,
            "max_age": max_age,
            "exp": int(now.timestamp()) + 900,
        },
    )


# --------------------------------------------------------------------------------------------
# The token request (RFC 6749 §4.1.3) and the ID token (OIDC Core §3.1.3.7)


async def exchange_code(
    client: PagesClient, app: ASGIApp, *, code: str, verifier: str
) -> dict[str, Any]:
    """POST to the token endpoint of this very service, in process.

    The IdP and the CA are one ASGI app (DESIGN); calling it through an ASGI transport speaks
    the real protocol without depending on the issuer's host name being reachable from inside
    the server (behind a load balancer it often is not).
    """
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=client.issuer, timeout=TOKEN_TIMEOUT
    ) as http:
        response = await http.post(
            client.token_path,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": client.redirect_uri,
                "code_verifier": verifier,
            },
            auth=(client.client_id, client.client_secret),
            headers={"Accept": "application/json"},
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or "id_token" not in body:
        raise LoginFailed(N_("Signing in did not complete. Please try again."))
    return body


def validate_id_token(
    client: PagesClient,
    *,
    id_token: str,
    access_token: str | None,
    nonce: str,
    now: datetime,
) -> dict[str, Any]:
    """OIDC Core §3.1.3.7 steps 2-11 and §3.1.3.8 (at_hash)."""
    refused = LoginFailed(N_("Signing in did not complete. Please try again."))
    try:
        alg, claims = client.id_tokens.verify(id_token)
    except ValueError:
        raise refused from None
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if claims.get("iss") != client.issuer or not isinstance(audiences, list):
        raise refused
    if client.client_id not in audiences:
        raise refused
    if len(audiences) > 1 and claims.get("azp") != client.client_id:
        raise refused
    exp, iat, auth_time = claims.get("exp"), claims.get("iat"), claims.get("auth_time")
    if not all(isinstance(v, int) for v in (exp, iat, auth_time)):
        raise refused
    stamp = now.timestamp()
    skew = CLOCK_SKEW.total_seconds()
    if exp <= stamp - skew or iat > stamp + skew:  # type: ignore[operator]
        raise refused
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(
        claims["nonce"].encode("utf-8"), nonce.encode("utf-8")
    ):
        raise refused
    if access_token is not None and "at_hash" in claims:
        digest = _HALF_HASH.get(alg)
        if digest is None:
            raise refused
        full = digest(access_token.encode("ascii")).digest()
        if not hmac.compare_digest(_b64(full[: len(full) // 2]), str(claims["at_hash"])):
            raise refused
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise refused
    return claims


def end_session_location(client: PagesClient, id_token: str | None) -> str:
    """RP-initiated logout (OIDC RP-Initiated Logout 1.0 §2)."""
    params = {"client_id": client.client_id, "post_logout_redirect_uri": client.home_uri}
    if id_token:
        params["id_token_hint"] = id_token
    return f"{client.issuer}{client.end_session_path}?{urlencode(params)}"
