"""Registered relying parties (shared apps) and service clients."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import DomainError, NotFound
from core.opaque_tokens import digest, matches_digest, new_opaque_token
from idp import token_store
from idp.models import Client, ClientUnitScope, Unit
from keys.keyring import SUPPORTED_ALGORITHMS

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Stricter than RFC 6749 A.1 (printable ASCII): ids appear in URLs, logs and audit targets.
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._~:/-]{1,64}")


def validate_redirect_uri(uri: str) -> str:
    """RFC 6749 §3.1.2 and OAuth 2.1: absolute, no fragment, https except on loopback."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DomainError("A redirect URI must be an absolute http(s) URL.", field="redirect_uri")
    if parts.fragment or "#" in uri:
        raise DomainError("A redirect URI must not contain a fragment.", field="redirect_uri")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise DomainError(
            "A redirect URI must use https (plain http only on the loopback address).",
            field="redirect_uri",
        )
    return uri


def validate_logout_uri(uri: str, *, field: str, redirect_uris: Sequence[str] = ()) -> str:
    """Back-Channel Logout 1.0 §2.2 / Front-Channel Logout 1.0 §2: absolute, no fragment; like
    redirect URIs, https except on the loopback address (a local demo app).

    ``redirect_uris`` given (front-channel): Front-Channel Logout 1.0 §2 requires the scheme,
    host and port to be those of a registered redirect URI.
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DomainError("A logout URI must be an absolute http(s) URL.", field=field)
    if parts.fragment or "#" in uri:
        raise DomainError("A logout URI must not contain a fragment.", field=field)
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise DomainError(
            "A logout URI must use https (plain http only on the loopback address).", field=field
        )
    if redirect_uris:
        origins = {urlsplit(u)[:2] for u in redirect_uris}
        if parts[:2] not in origins:
            raise DomainError(
                "The front-channel logout URI must have the scheme, host and port of a "
                "redirect URI.",
                field=field,
            )
    return uri


@dataclass(frozen=True)
class ClientInfo:
    """An immutable copy of a registration, safe to share between threads and requests."""

    id: int
    client_id: str
    name: str
    secret_digest: str | None
    token_endpoint_auth_method: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: str
    id_token_signed_response_alg: str
    access_token_signed_response_alg: str
    first_party: bool

    @classmethod
    def of(cls, row: Client) -> ClientInfo:
        return cls(
            id=row.id,
            client_id=row.client_id,
            name=row.name,
            secret_digest=row.secret_digest,
            token_endpoint_auth_method=row.token_endpoint_auth_method,
            redirect_uris=tuple(row.redirect_uris),
            post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
            grant_types=tuple(row.grant_types),
            scope=row.scope,
            id_token_signed_response_alg=row.id_token_signed_response_alg,
            access_token_signed_response_alg=row.access_token_signed_response_alg,
            first_party=row.first_party,
        )

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


class ClientCache:
    """Registrations cached per worker process for a few seconds.

    Every token request authenticates its client; reading the row each time was most of the
    cost of a client_credentials request on PostgreSQL. A change made elsewhere (secret
    rotation, removal) reaches every worker within ``ttl`` seconds; removal also revokes the
    client's grants in the database at once, so no refresh token survives it.
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[float, ClientInfo]] = {}

    def cached(self, client_id: str) -> ClientInfo | None:
        """A fresh cached registration, without touching the database (None on a miss)."""
        cached = self._entries.get(client_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        return None

    def lookup(self, session: Session, client_id: str) -> ClientInfo | None:
        now = time.monotonic()
        cached = self._entries.get(client_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        row = find_active(session, client_id)
        if row is None:
            self._entries.pop(client_id, None)
            return None
        info = ClientInfo.of(row)
        self._entries[client_id] = (now, info)
        return info

    def forget(self, client_id: str) -> None:
        self._entries.pop(client_id, None)


def find_active(session: Session, client_id: str) -> Client | None:
    return session.scalar(
        select(Client).where(Client.client_id == client_id, Client.removed_at.is_(None))
    )


def get_active(session: Session, client_id: str) -> Client:
    client = find_active(session, client_id)
    if client is None:
        raise NotFound("No such client.", client_id=client_id)
    return client


def list_active(session: Session) -> list[Client]:
    return list(
        session.scalars(select(Client).where(Client.removed_at.is_(None)).order_by(Client.id))
    )


def check_secret(client: Client | ClientInfo, presented: str) -> bool:
    return client.secret_digest is not None and matches_digest(presented, client.secret_digest)


def create(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    name: str,
    redirect_uris: Sequence[str] = (),
    post_logout_redirect_uris: Sequence[str] = (),
    grant_types: Sequence[str] = ("authorization_code", "refresh_token"),
    scope: str = "openid profile email offline_access",
    public: bool = False,
    auth_method: str | None = None,
    id_token_alg: str = "RS256",
    access_token_alg: str = "RS256",
    first_party: bool = False,
    client_id: str | None = None,
    units: Sequence[Unit] = (),
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = True,
    frontchannel_logout_uri: str | None = None,
    frontchannel_logout_session_required: bool = True,
) -> tuple[Client, str | None]:
    """Register a client; returns it with its secret, which is shown once and stored hashed.

    The logout URIs are those of OpenID Back-Channel Logout 1.0 §2.2 and Front-Channel
    Logout 1.0 §2; the session-required flags ask for a ``sid`` in what is sent there.
    """
    if not name.strip():
        raise DomainError("A client needs a name.", field="name")
    unknown = set(grant_types) - set(GRANT_TYPES)
    if unknown or not grant_types:
        raise DomainError(
            f"Grant types must be among {', '.join(GRANT_TYPES)}.", field="grant_types"
        )
    for alg in (id_token_alg, access_token_alg):
        if alg not in SUPPORTED_ALGORITHMS:
            raise DomainError(
                f"Signing algorithms: {', '.join(SUPPORTED_ALGORITHMS)}.", field="alg"
            )
    method = auth_method or ("none" if public else "client_secret_basic")
    if method not in AUTH_METHODS or (public != (method == "none")):
        raise DomainError("A public client uses auth method 'none'; a confidential one a secret.")
    if public and "client_credentials" in grant_types:
        raise DomainError("A public client cannot use client_credentials.", field="grant_types")
    if "authorization_code" in grant_types and not redirect_uris:
        raise DomainError("The authorization code flow needs a redirect URI.", field="redirect_uri")
    uris = [validate_redirect_uri(u) for u in redirect_uris]
    logout_uris = [validate_redirect_uri(u) for u in post_logout_redirect_uris]
    if backchannel_logout_uri:
        validate_logout_uri(backchannel_logout_uri, field="backchannel_logout_uri")
    if frontchannel_logout_uri:
        if not uris:
            raise DomainError(
                "Front-channel logout needs a redirect URI.", field="frontchannel_logout_uri"
            )
        validate_logout_uri(
            frontchannel_logout_uri, field="frontchannel_logout_uri", redirect_uris=uris
        )
    # Hex: never starts with "-" (a CLI would read it as an option) and reads aloud easily.
    client_id = client_id or secrets.token_hex(12)
    if not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise DomainError(
            "A client_id is 1 to 64 letters, digits or . _ ~ : / - characters.",
            field="client_id",
        )
    if find_active(session, client_id) is not None:
        raise DomainError("That client_id is already registered.", field="client_id")
    secret = None if public else new_opaque_token()
    client = Client(
        client_id=client_id,
        name=name.strip(),
        secret_digest=digest(secret) if secret else None,
        token_endpoint_auth_method=method,
        redirect_uris=uris,
        post_logout_redirect_uris=logout_uris,
        grant_types=list(grant_types),
        scope=" ".join(dict.fromkeys(scope.split())),
        id_token_signed_response_alg=id_token_alg,
        access_token_signed_response_alg=access_token_alg,
        first_party=first_party,
        created_at=clock.now(),
        backchannel_logout_uri=backchannel_logout_uri or None,
        backchannel_logout_session_required=backchannel_logout_session_required,
        frontchannel_logout_uri=frontchannel_logout_uri or None,
        frontchannel_logout_session_required=frontchannel_logout_session_required,
    )
    session.add(client)
    session.flush()
    # A provisioning (SCIM) client reaches only these units; with none it reaches nothing.
    session.add_all(ClientUnitScope(client_pk=client.id, unit_id=unit.id) for unit in units)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="client.create",
        target=f"client:{client_id}",
        details={
            "name": client.name,
            "public": public,
            "grant_types": list(grant_types),
            "redirect_uris": uris,
            "first_party": first_party,
            "units": [unit.code for unit in units],
            "backchannel_logout_uri": backchannel_logout_uri or None,
            "frontchannel_logout_uri": frontchannel_logout_uri or None,
        },
    )
    return client, secret


def rotate_secret(*, session: Session, clock: Clock, actor: str, client: Client) -> str:
    if client.is_public:
        raise DomainError("A public client has no secret.")
    secret = new_opaque_token()
    client.secret_digest = digest(secret)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="client.rotate_secret",
        target=f"client:{client.client_id}",
    )
    return secret


def remove(*, session: Session, clock: Clock, actor: str, client: Client) -> None:
    """Soft removal: the row and its history stay, its grants are revoked."""
    client.removed_at = clock.now()
    revoked = token_store.revoke_grants_of_client(
        session=session, clock=clock, client=client, reason="client_removed"
    )
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="client.remove",
        target=f"client:{client.client_id}",
        details={"grants_revoked": revoked},
    )
