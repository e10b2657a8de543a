"""Pushed authorization requests (RFC 9126): stored when a client pushes them, taken once.

The request_uri is ``urn:ietf:params:oauth:request_uri:`` and 256 random bits; only its digest
is stored. It lives :data:`LIFETIME` seconds (RFC 9126 §2.2: "a short time") and is taken at
most once (§4: one-time use), by the client that pushed it, with a compare-and-set: two
authorization requests racing with the same request_uri get it once between them.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from core.clock import Clock
from core.opaque_tokens import digest, new_opaque_token
from idp.models import PushedAuthorizationRequest

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
LIFETIME = 60


def push(*, session: Session, clock: Clock, client_pk: int, params: list[tuple[str, str]]) -> str:
    """Store the request's parameters; returns the request_uri that refers to them."""
    now = clock.now()
    # Expired pushes are of no use to anyone: drop them as new ones come (indexed).
    session.execute(
        delete(PushedAuthorizationRequest).where(PushedAuthorizationRequest.expires_at < now)
    )
    request_uri = REQUEST_URI_PREFIX + new_opaque_token()
    session.add(
        PushedAuthorizationRequest(
            request_uri_digest=digest(request_uri),
            client_pk=client_pk,
            params=[list(pair) for pair in params],
            created_at=now,
            expires_at=now + timedelta(seconds=LIFETIME),
        )
    )
    return request_uri


def take(
    *, session: Session, clock: Clock, request_uri: str, client_pk: int
) -> list[tuple[str, str]] | None:
    """The pushed parameters, once: None when unknown, of another client, expired or used."""
    if not request_uri.startswith(REQUEST_URI_PREFIX) or len(request_uri) > 200:
        return None
    now = clock.now()
    params = session.execute(
        update(PushedAuthorizationRequest)
        .where(
            PushedAuthorizationRequest.request_uri_digest == digest(request_uri),
            PushedAuthorizationRequest.client_pk == client_pk,
            PushedAuthorizationRequest.used_at.is_(None),
            PushedAuthorizationRequest.expires_at > now,
        )
        .values(used_at=now)
        .returning(PushedAuthorizationRequest.params)
    ).scalar_one_or_none()
    if params is None:
        return None
    return [(str(name), str(value)) for name, value in params]
