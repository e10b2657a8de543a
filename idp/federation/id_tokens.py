"""The upstream's ID token, checked as OIDC Core §3.1.3.7 says before anything in it is used:
signature by a key of the upstream's JWK Set with an algorithm of our allowlist that the
upstream advertised (RFC 8725 §3.1), ``iss`` exactly the registered issuer, ``aud`` holding
our client_id (and ``azp`` naming us when there are several), ``exp`` not passed, ``iat``
present, ``nonce`` the one we sent (§3.1.3.7 step 11), ``sub`` present."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

# Clocks of two hosts differ a little; a minute is what OIDC libraries commonly allow.
CLOCK_SKEW = timedelta(seconds=60)
MAX_TOKEN_LENGTH = 16 * 1024


class IdTokenRejected(Exception):
    """The ID token is not one we may accept; the message is a short reason for the log."""


def verify_id_token(
    id_token: str,
    *,
    jwks: Any,
    algorithms: Sequence[str],
    issuer: str,
    client_id: str,
    nonce: str,
    now: datetime,
) -> dict[str, Any]:
    """The verified claims, or :class:`IdTokenRejected`."""
    if not isinstance(id_token, str) or len(id_token) > MAX_TOKEN_LENGTH:
        raise IdTokenRejected("no usable id_token")
    try:
        key_set = KeySet.import_key_set(jwks)
        token = jwt.decode(
            id_token,
            key_set,
            algorithms=list(algorithms),
            registry=JWSRegistry(algorithms=list(algorithms)),
        )
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise IdTokenRejected(f"signature: {type(error).__name__}") from None
    if token.header.get("alg") not in algorithms:
        raise IdTokenRejected("alg not allowed")
    claims = dict(token.claims)
    if claims.get("iss") != issuer:
        raise IdTokenRejected("iss is not the upstream's")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or client_id not in audiences:
        raise IdTokenRejected("aud does not name us")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise IdTokenRejected("azp does not name us")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise IdTokenRejected("exp or iat missing")
    stamp, skew = now.timestamp(), CLOCK_SKEW.total_seconds()
    if exp <= stamp - skew:
        raise IdTokenRejected("expired")
    if iat > stamp + skew:
        raise IdTokenRejected("issued in the future")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(
        sent.encode("utf-8"), nonce.encode("utf-8")
    ):
        raise IdTokenRejected("nonce is not ours")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise IdTokenRejected("sub missing")
    return claims
