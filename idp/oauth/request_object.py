"""Signed request objects: RFC 9101 (JAR) and OIDC Core §6.1, at the authorization endpoint
(``request=``) and inside a pushed request (RFC 9126 §3).

The browser brings ``client_id`` and ``request``; the request object is a JWS the client signed
with one of its registered keys (JWK Set or jwks_uri), with the same allow-list of asymmetric
algorithms as private_key_jwt (:mod:`idp.oauth.client_signed_jwts`: never ``none``, never an
HMAC). We check, in order (RFC 9101 §6):

* the signature (:func:`~idp.oauth.client_signed_jwts.verify_client_jwt`);
* ``typ``, when present, ``oauth-authz-req+jwt`` (§10.8) or ``JWT`` (what OIDC clients send);
* ``iss`` the client_id, and ``client_id``, when present, the same (§5);
* ``aud`` our issuer identifier (§4; a string or a list holding it);
* ``exp`` present, not passed and at most :data:`MAX_LIFETIME` ahead; ``nbf`` and ``iat``, when
  present, not in the future and ``nbf`` not older than :data:`MAX_LIFETIME` (FAPI 2.0 Message
  Signing §5.3.1 asks the same of its clients);
* ``jti``, when present, used once per client (the replay cache shared by every worker).

Then the request object's parameters are the request (§6.3: only them, even when the query
repeats one), with the client_id. ``request_uri`` by reference is not fetched from anywhere
(RFC 9101 §5.2 allows a server to refuse it: ``request_uri_parameter_supported`` is false); a
request object travels by reference only as a pushed request (RFC 9126).

Failures are ``invalid_request_object`` (RFC 9101 §6.3, OIDC Core §6.4); a client that
registered no keys gets ``request_not_supported``. Until the signature is verified, nothing in
the object is believed, its redirect_uri included; after it, the error goes to the object's
redirect_uri when it is registered (the authorization endpoint otherwise falls back on the
query's, when registered, or its own error page).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from authlib.oidc.core.errors import InvalidRequestObjectError, RequestNotSupportedError

from idp import replay_cache
from idp.oauth.client_signed_jwts import MAX_JWT_LENGTH, UnverifiedJwt, verify_client_jwt

if TYPE_CHECKING:
    from idp.oauth.grants import OAuthClient
    from idp.oauth.server import OAuthServer

REQUEST_OBJECT_TYPE = "oauth-authz-req+jwt"  # RFC 9101 §10.8 explicit typing
ACCEPTED_TYPES = frozenset({REQUEST_OBJECT_TYPE, "jwt"})  # compared without case
CLOCK_SKEW = 30
MAX_LIFETIME = 3600
MAX_JTI_LENGTH = 256
# Claims about the JWT itself, not authorization request parameters.
JWT_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})


class RequestObjectRefused(InvalidRequestObjectError):
    """Why a request object was refused; ``redirect_uri`` only once the signature is good."""


def _refuse(description: str, redirect_uri: str | None = None) -> RequestObjectRefused:
    return RequestObjectRefused(description=description, redirect_uri=redirect_uri)


def _number(claims: dict[str, Any], name: str, redirect_uri: str | None) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(f"The request object's '{name}' is not a number.", redirect_uri)
    return int(value)


def _audience_is(aud: Any, issuer: str) -> bool:
    if isinstance(aud, str):
        return aud == issuer
    return isinstance(aud, list) and issuer in aud


def _parameter_value(name: str, value: Any, redirect_uri: str | None) -> str:
    """OIDC Core §6.1: request parameters as JSON members. Strings as they are, integers
    (``max_age``) in decimal, objects (``claims``) as the JSON the query would carry."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    raise _refuse(f"The request object's '{name}' is not a string.", redirect_uri)


def _registered_redirect_uri(client: OAuthClient, claims: dict[str, Any]) -> str | None:
    redirect_uri = claims.get("redirect_uri")
    if isinstance(redirect_uri, str) and client.check_redirect_uri(redirect_uri):
        return redirect_uri
    return None


def check_claims(
    claims: dict[str, Any],
    *,
    client_id: str,
    issuer: str,
    now: datetime,
    redirect_uri: str | None,
) -> tuple[str | None, datetime]:
    """RFC 9101 §4-§6 claims of a verified request object; returns its jti (if any) and until
    when to remember it."""
    if claims.get("iss") != client_id:
        raise _refuse("The request object's 'iss' must be the client_id.", redirect_uri)
    if claims.get("client_id", client_id) != client_id:
        raise _refuse("The request object's 'client_id' is not the request's.", redirect_uri)
    if not _audience_is(claims.get("aud"), issuer):
        raise _refuse("The request object's 'aud' must be this server's issuer.", redirect_uri)
    stamp = int(now.timestamp())
    exp = _number(claims, "exp", redirect_uri)
    if exp is None:
        raise _refuse("The request object has no 'exp'.", redirect_uri)
    if exp + CLOCK_SKEW <= stamp:
        raise _refuse("The request object has expired.", redirect_uri)
    if exp > stamp + MAX_LIFETIME + CLOCK_SKEW:
        raise _refuse(
            f"The request object must expire within {MAX_LIFETIME} seconds.", redirect_uri
        )
    for name in ("nbf", "iat"):
        moment = _number(claims, name, redirect_uri)
        if moment is not None and moment > stamp + CLOCK_SKEW:
            raise _refuse(f"The request object's '{name}' is in the future.", redirect_uri)
    nbf = _number(claims, "nbf", redirect_uri)
    if nbf is not None and nbf < stamp - MAX_LIFETIME - CLOCK_SKEW:
        raise _refuse("The request object's 'nbf' is too old.", redirect_uri)
    jti = claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH):
        raise _refuse("The request object's 'jti' is not usable.", redirect_uri)
    return jti, datetime.fromtimestamp(exp + CLOCK_SKEW, UTC)


def request_parameters(
    server: OAuthServer, client: OAuthClient, request_object: str
) -> list[tuple[str, str]]:
    """The authorization request a verified request object carries (RFC 9101 §6.3: its
    parameters only, plus the client_id), or :class:`RequestObjectRefused`."""
    if client.info.jwks is None and client.info.jwks_uri is None:
        # OIDC Core §6.1: nothing to verify it with, so this client cannot use the parameter.
        raise RequestNotSupportedError(
            description="The client registered no keys to sign request objects with."
        )
    if len(request_object) > MAX_JWT_LENGTH or request_object.count(".") != 2:
        raise _refuse("The request object is not a compact JWS (signed JWT).")
    try:
        verified = verify_client_jwt(server.runtime, client.info, request_object)
    except UnverifiedJwt as error:
        raise _refuse(str(error)) from None
    claims = verified.claims
    redirect_uri = _registered_redirect_uri(client, claims)
    try:
        return _parameters_of(server, client, verified.header, claims, redirect_uri)
    except RequestObjectRefused as error:
        state = claims.get("state")
        # RFC 6749 §4.1.2.1: the error goes back with the request's state.
        error.state = state if isinstance(state, str) and redirect_uri else None
        raise


def _parameters_of(
    server: OAuthServer,
    client: OAuthClient,
    header: dict[str, Any],
    claims: dict[str, Any],
    redirect_uri: str | None,
) -> list[tuple[str, str]]:
    runtime = server.runtime
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        raise _refuse(f"The request object's typ must be {REQUEST_OBJECT_TYPE}.", redirect_uri)
    now = runtime.clock.now()
    jti, keep_until = check_claims(
        claims,
        client_id=client.client_id,
        issuer=runtime.settings.issuer,
        now=now,
        redirect_uri=redirect_uri,
    )
    if "request" in claims or "request_uri" in claims:
        raise _refuse("A request object cannot hold another request or request_uri.", redirect_uri)
    items = [("client_id", client.client_id)]
    items.extend(
        (name, _parameter_value(name, value, redirect_uri))
        for name, value in claims.items()
        if name not in JWT_CLAIMS and name != "client_id"
    )
    if jti is not None and not replay_cache.use_once(
        server.session,
        kind=replay_cache.REQUEST_OBJECT,
        issuer=client.client_id,
        jti=jti,
        keep_until=max(keep_until, now + timedelta(seconds=CLOCK_SKEW)),
        now=now,
    ):
        raise _refuse("The request object was already used (its 'jti').", redirect_uri)
    return items
