"""Tables of the identity provider (prefix ``idp_``).

Secrets that we hand out (client secrets, session ids, codes, refresh tokens, interaction
handles) are high-entropy random values: only their SHA-256 digest is stored (PITFALLS: never a
password hash for those, or every token request pays the argon2 price).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, UTCDateTime


class Account(Base):
    __tablename__ = "idp_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Public, stable, non-reassignable subject identifier (OIDC Core §2 "sub"); never the row id.
    subject: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    phone: Mapped[str | None] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="active")
    is_system_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_active(self) -> bool:
        return self.status == "active"


class Client(Base):
    __tablename__ = "idp_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_digest: Mapped[str | None] = mapped_column(String(64))
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text)
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    access_token_signed_response_alg: Mapped[str] = mapped_column(String(16), default="RS256")
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


class BrowserSession(Base):
    """Server-side SSO session; the cookie carries a random id whose digest is stored here."""

    __tablename__ = "idp_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    id_digest: Mapped[str] = mapped_column(String(64), unique=True)
    # Public session identifier for the ID token "sid" claim (OIDC Front/Back-Channel Logout).
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("idp_account.id", ondelete="CASCADE"))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    account: Mapped[Account] = relationship(lazy="joined")

    __table_args__ = (Index("ix_idp_session_account_id", "account_id"),)


class Interaction(Base):
    """A pending authorization request while the official logs in or consents."""

    __tablename__ = "idp_interaction"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle_digest: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when the official authenticated inside this interaction (prompt=login, max_age).
    authenticated_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("idp_session.id", ondelete="CASCADE")
    )
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Consent(Base):
    __tablename__ = "idp_consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("idp_account.id", ondelete="CASCADE"))
    client_pk: Mapped[int] = mapped_column(ForeignKey("idp_client.id", ondelete="CASCADE"))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("uq_idp_consent_account_client", "account_id", "client_pk", unique=True),
    )


class Grant(Base):
    """One authorization of a client by an official: the family of every token it produced.

    Revoking the grant (code replay, refresh token reuse, logout, revocation) makes every
    refresh token and every access token of the family unusable at once.
    """

    __tablename__ = "idp_grant"

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(43), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("idp_account.id", ondelete="CASCADE"))
    client_pk: Mapped[int] = mapped_column(ForeignKey("idp_client.id", ondelete="CASCADE"))
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("idp_session.id", ondelete="SET NULL")
    )
    sid: Mapped[str | None] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(32))

    account: Mapped[Account] = relationship(lazy="joined")
    client: Mapped[Client] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_idp_grant_account_id", "account_id"),
        Index("ix_idp_grant_session_id", "session_id"),
    )


class AuthorizationCode(Base):
    __tablename__ = "idp_authorization_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    grant_pk: Mapped[int] = mapped_column(ForeignKey("idp_grant.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    grant: Mapped[Grant] = relationship(lazy="joined")


class RefreshToken(Base):
    __tablename__ = "idp_refresh_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    grant_pk: Mapped[int] = mapped_column(ForeignKey("idp_grant.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(Integer)
    scope: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when exchanged for a new one (rotation); presenting it again is reuse.
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    grant: Mapped[Grant] = relationship(lazy="joined")

    __table_args__ = (Index("ix_idp_refresh_token_grant_pk", "grant_pk"),)


class RevokedAccessToken(Base):
    """Access tokens are self-contained JWTs; revoking one records its jti until it expires."""

    __tablename__ = "idp_revoked_access_token"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginThrottle(Base):
    """Failed-login counter for one account name or one client address."""

    __tablename__ = "idp_login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
