"""Upstream providers officials may sign in through: registered by an administrator from the
issuer's discovery document, listed, removed. Every change is audited in its transaction."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import Conflict, DomainError, NotFound
from core.sealed_values import open_sealed, seal
from core.web.i18n import N_
from idp.federation.discovery import ProviderMetadata
from idp.federation.linking import LINK_CLAIMS, REFUSED_LINK_CLAIMS
from idp.models import UpstreamProvider
from idp.registry import SoftRemovedRegistry

UPSTREAM_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,47}")
CLIENT_SECRET_BASIC = "client_secret_basic"
PRIVATE_KEY_JWT = "private_key_jwt"
AUTH_METHODS = (CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT)
DEFAULT_SCOPE = "openid"
_SECRET_PURPOSE = b"commune-sso/idp/upstream-client-secret/v1"


def _bound_to(upstream_id: str) -> bytes:
    return f"upstream:{upstream_id}".encode("ascii")


def client_secret(provider: UpstreamProvider, *, server_secret: bytes) -> str | None:
    """The client secret in plaintext, for one token request; None with private_key_jwt."""
    if provider.sealed_client_secret is None:
        return None
    return open_sealed(
        provider.sealed_client_secret,
        server_secret=server_secret,
        purpose=_SECRET_PURPOSE,
        bound_to=_bound_to(provider.upstream_id),
    ).decode("utf-8")


def default_upstream_id(issuer: str) -> str:
    """The id an administrator gets when they choose none: the issuer's host name."""
    host = (urlsplit(issuer).hostname or "upstream").lower()
    return re.sub(r"[^a-z0-9.-]+", "-", host).strip(".-")[:48] or "upstream"


def _checked_link_claim(link_claim: str) -> str:
    if link_claim in REFUSED_LINK_CLAIMS:
        raise DomainError(
            N_("Officials are never linked by e-mail alone: choose %(choices)s."),
            field="link_claim",
            choices=", ".join(LINK_CLAIMS),
        )
    if link_claim not in LINK_CLAIMS:
        raise DomainError(
            N_("Unknown link claim %(claim)s; choose %(choices)s."),
            field="link_claim",
            claim=link_claim,
            choices=", ".join(LINK_CLAIMS),
        )
    return link_claim


def _checked_names(name_vi: str, name_en: str | None) -> tuple[str, str | None]:
    name_vi, name_en = name_vi.strip(), (name_en or "").strip() or None
    if not name_vi or len(name_vi) > 200 or (name_en is not None and len(name_en) > 200):
        raise DomainError(N_("A provider needs a name of at most 200 characters."), field="name")
    return name_vi, name_en


def _checked_scope(scope: str) -> str:
    scopes = list(dict.fromkeys(scope.split()))
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    if len(" ".join(scopes)) > 500:
        raise DomainError(N_("The scopes are too long."), field="scope")
    return " ".join(scopes)


def register(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    upstream_id: str,
    metadata: ProviderMetadata,
    client_id: str,
    client_secret: str | None,
    server_secret: bytes,
    link_claim: str,
    name_vi: str,
    name_en: str | None = None,
    scope: str = DEFAULT_SCOPE,
    client_address: str | None = None,
) -> UpstreamProvider:
    """Register a provider whose discovery document was fetched and checked (``metadata``).

    A client secret means client_secret_basic (RFC 6749 §2.3.1); none means private_key_jwt
    (RFC 7523 §2.2, OIDC Core §9) with our token-signing keys, which the upstream reads from
    our jwks_uri."""
    if not UPSTREAM_ID_PATTERN.fullmatch(upstream_id):
        raise DomainError(
            N_("An upstream id is 1 to 48 lower-case letters, digits, '.', '_' or '-'."),
            field="upstream_id",
        )
    link_claim = _checked_link_claim(link_claim)
    name_vi, name_en = _checked_names(name_vi, name_en)
    client_id = client_id.strip()
    if not client_id or len(client_id) > 255:
        raise DomainError(N_("A client_id of 1 to 255 characters is needed."), field="client_id")
    method = CLIENT_SECRET_BASIC if client_secret else PRIVATE_KEY_JWT
    if method not in metadata.token_endpoint_auth_methods:
        raise DomainError(
            N_(
                "The provider does not accept %(method)s at its token endpoint "
                "(it offers %(offered)s)."
            ),
            field="token_endpoint_auth_method",
            method=method,
            offered=", ".join(metadata.token_endpoint_auth_methods),
        )
    if session.scalar(
        select(UpstreamProvider.id).where(UpstreamProvider.upstream_id == upstream_id)
    ):
        raise Conflict(N_("An upstream provider with this id is already registered."), field="id")
    provider = UpstreamProvider(
        upstream_id=upstream_id,
        issuer=metadata.issuer,
        name_vi=name_vi,
        name_en=name_en,
        client_id=client_id,
        token_endpoint_auth_method=method,
        sealed_client_secret=(
            seal(
                client_secret.encode("utf-8"),
                server_secret=server_secret,
                purpose=_SECRET_PURPOSE,
                bound_to=_bound_to(upstream_id),
            )
            if client_secret
            else None
        ),
        scope=_checked_scope(scope),
        link_claim=link_claim,
        authorization_endpoint=metadata.authorization_endpoint,
        token_endpoint=metadata.token_endpoint,
        jwks_uri=metadata.jwks_uri,
        end_session_endpoint=metadata.end_session_endpoint,
        id_token_algs=list(metadata.id_token_algs),
        created_at=clock.now(),
    )
    session.add(provider)
    session.flush()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="upstream.registered",
        target=f"upstream:{upstream_id}",
        client_address=client_address,
        details=as_dict(provider),
    )
    return provider


def change(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    provider: UpstreamProvider,
    link_claim: str,
    scope: str,
    name_vi: str,
    name_en: str | None,
    client_address: str | None = None,
) -> bool:
    """Change what an administrator may change after registration: the linking claim, the
    scopes asked for and the button's label. The endpoints and the client stay as discovered
    and registered (remove and add again for another issuer or client). Audited with what
    changed; returns False (and records nothing) when nothing did."""
    link_claim = _checked_link_claim(link_claim)
    name_vi, name_en = _checked_names(name_vi, name_en)
    scope = _checked_scope(scope)
    wanted = {"link_claim": link_claim, "scope": scope, "name_vi": name_vi, "name_en": name_en}
    changed = {
        name: {"from": getattr(provider, name), "to": value}
        for name, value in wanted.items()
        if getattr(provider, name) != value
    }
    if not changed:
        return False
    for name, value in wanted.items():
        setattr(provider, name, value)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="upstream.changed",
        target=f"upstream:{provider.upstream_id}",
        client_address=client_address,
        details=changed,
    )
    return True


def as_dict(provider: UpstreamProvider) -> dict[str, Any]:
    """What the CLI prints and the audit log keeps: never the secret."""
    return {
        "upstream_id": provider.upstream_id,
        "issuer": provider.issuer,
        "name": provider.name_vi,
        "name_en": provider.name_en,
        "client_id": provider.client_id,
        "token_endpoint_auth_method": provider.token_endpoint_auth_method,
        "scope": provider.scope,
        "link_claim": provider.link_claim,
        "id_token_algs": list(provider.id_token_algs),
        "end_session_endpoint": provider.end_session_endpoint,
    }


# Removed, the login page stops offering it and sign-ins under way through it are refused; the
# sessions it started stay until they end (and still log out upstream).
REGISTRY = SoftRemovedRegistry(
    UpstreamProvider,
    key="upstream_id",
    target_prefix="upstream",
    removed_action="upstream.removed",
    not_found=lambda: NotFound(N_("No upstream provider with this id."), field="upstream_id"),
)


@dataclass(frozen=True)
class LoginChoice:
    """What the sign-in form shows of an upstream provider: its button."""

    upstream_id: str
    name_vi: str
    name_en: str | None


# Every sign-in form reads this: three columns with a statement built once, not the whole
# registration through the ORM (issue 15: a login's CPU besides the hash).
_LOGIN_CHOICES = (
    select(UpstreamProvider.upstream_id, UpstreamProvider.name_vi, UpstreamProvider.name_en)
    .where(UpstreamProvider.removed_at.is_(None))
    .order_by(UpstreamProvider.id)
)


def login_choices(session: Session) -> list[LoginChoice]:
    """The active providers' buttons, in the order they were registered."""
    return [LoginChoice(*row) for row in session.connection().execute(_LOGIN_CHOICES)]


def display_name(provider: UpstreamProvider | LoginChoice, locale: str) -> str:
    if locale.startswith("en") and provider.name_en:
        return provider.name_en
    return provider.name_vi
