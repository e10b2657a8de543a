"""JWTs a client signs with its own keys: private_key_jwt client assertions (RFC 7523) and
request objects (RFC 9101). The signature is checked against the client's registered JWK Set
or its jwks_uri (:mod:`idp.client_keys`), with an allow-list of asymmetric algorithms: never
"none", never an HMAC (which would make a public key a shared secret).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.util import urlsafe_b64decode

from idp.client_keys import ClientKeysUnavailable
from idp.clients import ClientInfo
from idp.runtime import IdpRuntime

log = logging.getLogger(__name__)

# RS256 is kept for clients outside the FAPI 2.0 profile (OIDC Core §9 names it; our own
# upstream brokering signs with it); FAPI 2.0 §5.4.1 allows PS256, ES256 and EdDSA only.
CLIENT_SIGNING_ALGORITHMS = ("PS256", "ES256", "EdDSA", "RS256")
FAPI2_SIGNING_ALGORITHMS = ("PS256", "ES256", "EdDSA")
MAX_JWT_LENGTH = 16 * 1024


class UnverifiedJwt(Exception):
    """Not a JWS of this client (the message says why; it is safe to show the client)."""


@dataclass(frozen=True)
class VerifiedJwt:
    header: dict[str, Any]
    claims: dict[str, Any]


def algorithms_for(client: ClientInfo) -> tuple[str, ...]:
    return FAPI2_SIGNING_ALGORITHMS if client.fapi2_profile else CLIENT_SIGNING_ALGORITHMS


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS before its signature is checked: only to learn which
    client claims to have signed it."""
    if len(token) > MAX_JWT_LENGTH or token.count(".") != 2:
        raise UnverifiedJwt("Not a compact JWS.")
    try:
        claims = json.loads(urlsafe_b64decode(token.split(".")[1].encode("ascii")))
    except (ValueError, UnicodeError, RecursionError):  # json.loads recurses (PITFALLS)
        raise UnverifiedJwt("The JWT payload cannot be read.") from None
    if not isinstance(claims, dict):
        raise UnverifiedJwt("The JWT payload is not an object.")
    return claims


def _verify(token: str, keys: KeySet, algorithms: tuple[str, ...]) -> VerifiedJwt | None:
    try:
        header = json.loads(urlsafe_b64decode(token.split(".")[0].encode("ascii")))
    except (ValueError, UnicodeError, RecursionError):  # json.loads recurses (PITFALLS)
        raise UnverifiedJwt("The JWT header cannot be read.") from None
    if not isinstance(header, dict) or header.get("alg") not in algorithms:
        raise UnverifiedJwt(f"The JWT must be signed with one of {', '.join(algorithms)}.")
    if "crit" in header:
        raise UnverifiedJwt("No critical header parameter is understood.")
    kid = header.get("kid")
    candidates = [key for key in keys if kid is None or key.kid == kid]
    for key in candidates:
        try:
            verified = jws.deserialize_compact(token, key, algorithms=[header["alg"]])
        except (JoseError, ValueError, TypeError):
            continue
        try:
            claims = json.loads(verified.payload)
        except (ValueError, RecursionError):
            raise UnverifiedJwt("The JWT payload cannot be read.") from None
        if not isinstance(claims, dict):
            raise UnverifiedJwt("The JWT payload is not an object.")
        return VerifiedJwt(header=dict(verified.headers()), claims=claims)
    return None


def verify_client_jwt(runtime: IdpRuntime, client: ClientInfo, token: str) -> VerifiedJwt:
    """The header and claims of a JWS signed by one of the client's keys (claims unchecked)."""
    algorithms = algorithms_for(client)
    for refresh in (False, True):
        try:
            keys = runtime.client_keys.key_set(
                jwks=client.jwks, jwks_uri=client.jwks_uri, refresh=refresh
            )
        except ClientKeysUnavailable as error:
            log.warning("client %s: keys unavailable: %s", client.client_id, error)
            raise UnverifiedJwt("The client's keys cannot be obtained.") from None
        verified = _verify(token, keys, algorithms)
        if verified is not None:
            return verified
        if client.jwks_uri is None:
            break
    raise UnverifiedJwt("The JWT is not signed by a key of the client.")
