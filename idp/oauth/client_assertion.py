"""``private_key_jwt`` client authentication: RFC 7523 §2.2 and §3, OIDC Core §9.

The client posts ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer``
and a ``client_assertion`` JWT signed with one of its registered keys. We check, in order:

* the signature, with an allow-list of asymmetric algorithms (:mod:`idp.oauth.client_signed_jwts`);
* ``iss`` and ``sub`` both the client_id (and equal to a ``client_id`` field, if sent);
* ``aud``: our issuer identifier — what FAPI 2.0 §5.3.2.1 and RFC 7523bis require — or, as
  OIDC Core §9 describes, the token endpoint URL or the URL of the endpoint receiving the
  assertion (PAR, introspection, revocation). A string, or a list holding one of them;
* ``exp`` present and not passed (with :data:`CLOCK_SKEW`), at most :data:`MAX_LIFETIME` ahead
  (each is remembered until it expires); ``nbf`` and ``iat``,
  when present, not in the future;
* ``jti`` present and never seen before for this client, in the database replay cache that all
  workers and hosts share (:mod:`idp.replay_cache`).

Any failure is ``invalid_client`` (RFC 6749 §5.2).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError

from idp import replay_cache
from idp.clients import PRIVATE_KEY_JWT
from idp.oauth.client_signed_jwts import UnverifiedJwt, unverified_claims, verify_client_jwt

if TYPE_CHECKING:
    from idp.oauth.grants import OAuthClient
    from idp.oauth.server import OAuthServer

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW = 30
MAX_LIFETIME = 3600  # Authlib's client signs assertions valid for an hour
MAX_JTI_LENGTH = 256


def accepted_audiences(server: OAuthServer, request_url: str) -> frozenset[str]:
    settings = server.runtime.settings
    return frozenset(
        {
            settings.issuer,
            settings.endpoint("/oauth2/token"),
            settings.endpoint(urlsplit(request_url).path),
        }
    )


def _audience_ok(aud: Any, accepted: frozenset[str]) -> bool:
    if isinstance(aud, str):
        return aud in accepted
    return isinstance(aud, list) and any(isinstance(a, str) and a in accepted for a in aud)


def _number(claims: dict[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClientError(description=f"The assertion's '{name}' is not a number.")
    return int(value)


def check_assertion_claims(
    claims: dict[str, Any], *, client_id: str, audiences: frozenset[str], now: datetime
) -> tuple[str, datetime]:
    """RFC 7523 §3 claims of a verified assertion; returns its jti and until when to keep it."""
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise InvalidClientError(description="The assertion's iss and sub must be the client_id.")
    if not _audience_ok(claims.get("aud"), audiences):
        raise InvalidClientError(description="The assertion's audience is not this server.")
    stamp = int(now.timestamp())
    exp = _number(claims, "exp")
    if exp is None:
        raise InvalidClientError(description="The assertion has no 'exp'.")
    if exp + CLOCK_SKEW <= stamp:
        raise InvalidClientError(description="The assertion has expired.")
    if exp > stamp + MAX_LIFETIME + CLOCK_SKEW:
        raise InvalidClientError(
            description=f"The assertion must expire within {MAX_LIFETIME} seconds."
        )
    for name in ("nbf", "iat"):
        moment = _number(claims, name)
        if moment is not None and moment > stamp + CLOCK_SKEW:
            raise InvalidClientError(description=f"The assertion's '{name}' is in the future.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise InvalidClientError(description="The assertion has no usable 'jti'.")
    return jti, datetime.fromtimestamp(exp + CLOCK_SKEW, UTC)


def authenticate_private_key_jwt(server: OAuthServer, request: Any) -> OAuthClient | None:
    """Authlib client authentication hook (registered per server with the server bound)."""
    data = request.payload.data
    assertion_type, assertion = data.get("client_assertion_type"), data.get("client_assertion")
    if assertion_type is None and assertion is None:
        return None
    if assertion_type != CLIENT_ASSERTION_TYPE or not assertion:
        raise InvalidClientError(description="Unsupported 'client_assertion_type'.")
    if "client_secret" in data or request.headers.get("Authorization"):
        raise InvalidRequestError("Use one client authentication method per request.")
    try:
        client_id = unverified_claims(assertion).get("sub")
    except UnverifiedJwt as error:
        raise InvalidClientError(description=str(error)) from None
    if not isinstance(client_id, str) or data.get("client_id", client_id) != client_id:
        raise InvalidClientError(description="The assertion's subject is not the client_id.")
    client = server.query_client(client_id)
    if client is None:
        raise InvalidClientError(description="The client does not exist on this server.")
    if client.info.token_endpoint_auth_method != PRIVATE_KEY_JWT:
        raise InvalidClientError(description="The client is not registered for private_key_jwt.")
    runtime = server.runtime
    try:
        verified = verify_client_jwt(runtime, client.info, assertion)
    except UnverifiedJwt as error:
        raise InvalidClientError(description=str(error)) from None
    now = runtime.clock.now()
    jti, keep_until = check_assertion_claims(
        verified.claims,
        client_id=client_id,
        audiences=accepted_audiences(server, request.http.url),
        now=now,
    )
    if not replay_cache.use_once(
        server.session,
        kind=replay_cache.CLIENT_ASSERTION,
        issuer=client_id,
        jti=jti,
        keep_until=max(keep_until, now + timedelta(seconds=CLOCK_SKEW)),
        now=now,
    ):
        raise InvalidClientError(description="The assertion's 'jti' was already used.")
    return client
