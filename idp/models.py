"""Tables of the identity provider (prefix ``idp_``).

Secrets that we hand out (client secrets, session ids, codes, refresh tokens, interaction
handles) are high-entropy random values: only their SHA-256 digest is stored (PITFALLS: never a
password hash for those, or every token request pays the argon2 price).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base, UTCDateTime


class Account(Base):
    __tablename__ = "idp_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Public, stable, non-reassignable subject identifier (OIDC Core §2 "sub"); never the row id.
    subject: Mapped[str] = mapped_column(String(64), unique=True)
    # Stored lowercase: unique and matched without regard to case (RFC 7643 §4.1.1).
    username: Mapped[str] = mapped_column(String(256), unique=True)
    # Empty when a directory provisioned the official without a name (SCIM name is optional).
    full_name: Mapped[str] = mapped_column(String(200))
    # Indexed: the password reset form finds an official by e-mail.
    email: Mapped[str | None] = mapped_column(String(254), index=True)
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
    # After a rotation with an overlap, the replaced secret is still accepted until
    # ``previous_secret_valid_until`` (a rolling deploy of the app picks up the new one).
    previous_secret_digest: Mapped[str | None] = mapped_column(String(64))
    previous_secret_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
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
    # OpenID Back-Channel Logout 1.0 §2.2 and Front-Channel Logout 1.0 §2 registration
    # metadata; both "session required" flags default to true as the specs' RPs expect a sid.
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text)
    backchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true()
    )
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(Text)
    frontchannel_logout_session_required: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true()
    )
    # The lowest authentication level (an ACR URI of idp.authentication_levels) the app accepts
    # (0024); None: any level.
    minimum_acr: Mapped[str | None] = mapped_column(String(64))
    # FAPI 2.0 parts (0027). The client's public keys for private_key_jwt (RFC 7523) and signed
    # request objects (RFC 9101): a JWK Set registered with it, or the URL where it publishes one.
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(Text)
    # RFC 9126 §6: authorization requests only by reference to a pushed request.
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # RFC 9101 §10.5 (require_signed_request_object): authorization requests only as a JWS.
    require_signed_request_object: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # RFC 9449 §5.2: every access token DPoP-bound (a token request without a proof fails).
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # RFC 8705 §2.1.2: the subject DN of the certificate the app authenticates with
    # (tls_client_auth); §3.4: access tokens bound to that certificate.
    tls_client_auth_subject_dn: Mapped[str | None] = mapped_column(Text)
    # RFC 8705 §2.1.2: or exactly one subject alternative name of the certificate (0031).
    tls_client_auth_san_dns: Mapped[str | None] = mapped_column(Text)
    tls_client_auth_san_uri: Mapped[str | None] = mapped_column(Text)
    tls_client_auth_san_ip: Mapped[str | None] = mapped_column(Text)
    tls_client_auth_san_email: Mapped[str | None] = mapped_column(Text)
    tls_client_certificate_bound_access_tokens: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # The FAPI 2.0 Security Profile as a whole (idp.oauth.fapi2).
    fapi2_profile: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

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
    # Password checked, second factor (TOTP or a recovery code) still due (0007): the account
    # whose password was right. Cleared by the interaction's completion.
    mfa_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("idp_account.id", ondelete="CASCADE")
    )


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
    # RFC 9449 §5: a public client's refresh tokens are bound to the DPoP key of the first
    # token request (its JWK SHA-256 thumbprint, RFC 7638); None: not bound.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    # RFC 8705 §3 (0031): likewise to the TLS client certificate of the first token request
    # (x5t#S256), for a public client registered for certificate-bound tokens.
    certificate_thumbprint: Mapped[str | None] = mapped_column(String(64))

    account: Mapped[Account] = relationship(lazy="joined")
    # Not joined: token requests use the cached registration of the authenticated client.
    client: Mapped[Client] = relationship(lazy="select")

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
    # RFC 9449 §10: the thumbprint of the DPoP key the code is bound to (dpop_jkt of the
    # authorization request, or of the proof sent with its push); the token request must
    # bring a proof of that key. None: not bound.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))

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


class TokenStateVersion(Base):
    """One row: how many committed changes userinfo and introspection caches have to know of
    (idp/token_state_triggers.py bumps it, idp/token_state.py reads it)."""

    __tablename__ = "idp_token_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class TokenStateChange(Base):
    """What changed at each version: a grant, an account, a revoked jti, a client..."""

    __tablename__ = "idp_token_state_change"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    changed_at: Mapped[int] = mapped_column(BigInteger)  # Unix time, for pruning


class LoginThrottle(Base):
    """Failed-attempt counter of one kind (idp.login_throttle.KINDS): an account name from one
    client address, an account name from devices it does not know, one device cookie, one
    client address. ``key`` is the kind and a digest of the rest; the account name and address
    are kept readable for the admin page."""

    __tablename__ = "idp_login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    account_name: Mapped[str | None] = mapped_column(String(150), index=True)
    client_address: Mapped[str | None] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Unit(Base):
    """An administrative unit: one of the 34 provinces or 3,321 communes, wards, special zones.

    Codes are the official ones (2-digit provinces, 5-digit wards). Units are never deleted:
    a reform renames, merges or splits them, recorded as :class:`UnitEvent` rows.
    """

    __tablename__ = "idp_unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)
    level: Mapped[str] = mapped_column(String(10))  # "province" | "ward"
    name: Mapped[str] = mapped_column(String(200))
    division_type: Mapped[str] = mapped_column(String(40))
    province_code: Mapped[str] = mapped_column(String(2), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|merged|dissolved
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("idp_unit.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Every official of the unit (and of its wards, for a province) signs in to the shared apps
    # with a passkey (phishing-resistant, 0024).
    requires_phishing_resistant: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )


class UnitSource(Base):
    """The version of the packaged unit list last loaded (``vietnam-provinces``): a start-up
    compares it with the installed package and refreshes the units only when they differ."""

    __tablename__ = "idp_unit_source"

    package: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UnitEvent(Base):
    __tablename__ = "idp_unit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("idp_unit.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # created|renamed|merged|split|dissolved
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Agency(Base):
    """An agency inside a unit (People's Committee, Party Committee, ...)."""

    __tablename__ = "idp_agency"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("idp_unit.id"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        Index("uq_idp_agency_unit_kind_name", "unit_id", "kind", "name", unique=True),
    )


class AccountProfile(Base):
    """An official's organisational data (one row per account, issue 3)."""

    __tablename__ = "idp_account_profile"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("idp_account.id", ondelete="CASCADE"), primary_key=True
    )
    # A valid CCCD (12 digits) from every path but SCIM, where a directory's value that is no
    # CCCD is kept as sent: certificates check it where they are requested.
    citizen_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("idp_unit.id"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("idp_agency.id"))
    position: Mapped[str | None] = mapped_column(String(200))
    # Lowercase, without diacritics: "nguyen van an" finds "Nguyễn Văn An".
    search_name: Mapped[str] = mapped_column(String(200), index=True)
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)
    # What a SCIM client owns and no other column holds (name parts, displayName, title, every
    # e-mail, phone and address, the enterprise extension...), as the client sent it once
    # validated (idp.scim.attributes); NULL for officials no directory has described.
    scim_attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # SCIM: a deleted account keeps its row and history but is invisible (RFC 7644 §3.6).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)  # ETag source


class AccountMove(Base):
    __tablename__ = "idp_account_move"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("idp_account.id"), index=True)
    from_unit_id: Mapped[int | None] = mapped_column(ForeignKey("idp_unit.id"))
    to_unit_id: Mapped[int | None] = mapped_column(ForeignKey("idp_unit.id"))
    reason: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))


class AdminRole(Base):
    """Delegated administration: province admin (a province unit) or unit admin (a ward)."""

    __tablename__ = "idp_admin_role"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("idp_account.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))  # province_admin|unit_admin
    unit_id: Mapped[int] = mapped_column(ForeignKey("idp_unit.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("uq_idp_admin_role_account_role_unit", "account_id", "role", "unit_id", unique=True),
    )


class ClientUnitScope(Base):
    """Units a provisioning (SCIM) client may manage."""

    __tablename__ = "idp_client_unit_scope"

    client_pk: Mapped[int] = mapped_column(
        ForeignKey("idp_client.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("idp_unit.id"), primary_key=True)


class Group(Base):
    __tablename__ = "idp_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    scim_id: Mapped[str] = mapped_column(String(36), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("idp_unit.id"))
    external_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # SCIM displayName filters ignore case and diacritics, like officials' names (0006).
    search_name: Mapped[str] = mapped_column(String(200), default="", server_default=text("''"))

    __table_args__ = (
        Index("ix_idp_group_unit_id", "unit_id"),
        Index("ix_idp_group_search_name", "search_name"),
    )


class GroupMember(Base):
    __tablename__ = "idp_group_member"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("idp_group.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("idp_account.id", ondelete="CASCADE"), primary_key=True
    )

    # A User's readOnly ``groups`` attribute is looked up by account (0006).
    __table_args__ = (Index("ix_idp_group_member_account_id", "account_id"),)


# SCIM paging (0006): the live officials in account order, with their unit, read from the
# index alone; OFFSET then skips index entries instead of joined rows.
Index(
    "ix_idp_account_profile_live",
    AccountProfile.account_id,
    AccountProfile.unit_id,
    postgresql_where=AccountProfile.deleted_at.is_(None),
    sqlite_where=AccountProfile.deleted_at.is_(None),
)
# ... and counted by unit (0009): the total of a page reads the caller's units only.
Index(
    "ix_idp_account_profile_live_unit",
    AccountProfile.unit_id,
    postgresql_where=AccountProfile.deleted_at.is_(None),
    sqlite_where=AccountProfile.deleted_at.is_(None),
)


class UnitLiveOfficials(Base):
    """Live officials per unit, kept by triggers (idp.live_officials); unit key 0: no unit."""

    __tablename__ = "idp_unit_live_officials"

    unit_key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    live: Mapped[int] = mapped_column(Integer)


class UnitLiveOfficialsChange(Base):
    """A statement's change to a unit's live officials, not yet folded into
    :class:`UnitLiveOfficials` (PostgreSQL: idp.live_officials)."""

    __tablename__ = "idp_unit_live_officials_change"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    unit_key: Mapped[int] = mapped_column(Integer, index=True)
    change: Mapped[int] = mapped_column(Integer)


class ActivationCode(Base):
    """One-time code that lets an imported official set a first password."""

    __tablename__ = "idp_activation_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("idp_account.id", ondelete="CASCADE"))
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PasswordReset(Base):
    """A self-service password reset link sent to the official's verified e-mail: single use,
    short-lived, stored as the SHA-256 digest of its token (a 256-bit random value)."""

    __tablename__ = "idp_password_reset"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("idp_account.id", ondelete="CASCADE"), index=True
    )
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    client_address: Mapped[str | None] = mapped_column(String(64))


class LifecycleEvent(Base):
    """Outbox of account lifecycle events (disabled, deleted, moved) for other parts (the CA
    module, shared apps' logout) to consume in order by id."""

    __tablename__ = "idp_lifecycle_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    account_subject: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ImportJob(Base):
    """A bulk import (CSV/XLSX): progress and per-row results, resumable after a crash."""

    __tablename__ = "idp_import_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(43), unique=True)
    file_name: Mapped[str] = mapped_column(String(300))
    file_digest: Mapped[str] = mapped_column(String(64), index=True)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))  # running|finished|failed
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LogoutDelivery(Base):
    """Outbox of back-channel logout notifications (OpenID Back-Channel Logout 1.0 §2.5):
    one row per client to tell, written in the transaction that ends the session, sent and
    retried by the delivery worker. ``log`` keeps every attempt for the admins."""

    __tablename__ = "idp_logout_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The OIDC client told; None for a notice of another protocol (``protocol``).
    client_pk: Mapped[int | None] = mapped_column(ForeignKey("idp_client.id", ondelete="CASCADE"))
    # The participant as the log shows it: a client_id, or "cas:<service id>" (0014).
    client_id: Mapped[str] = mapped_column(String(64))
    # "oidc": a logout token signed when sent; "cas": the CAS 3.0 logoutRequest in ``payload``,
    # built when queued (0014).
    protocol: Mapped[str] = mapped_column(String(16), default="oidc", server_default="oidc")
    payload: Mapped[str | None] = mapped_column(Text)
    uri: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(64))
    sid: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A worker owns the row until claimed_until; another may take it over after that.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    __table_args__ = (
        Index("ix_idp_logout_delivery_due", "status", "next_attempt_at"),
        Index("ix_idp_logout_delivery_client_pk", "client_pk"),
    )


class TotpCredential(Base):
    """An official's TOTP authenticator (RFC 6238), at most one per account (0007).

    The shared secret must be readable to check codes, so it is sealed (AES-256-GCM under a key
    derived from the server secret with HKDF), not hashed. ``confirmed_at`` is empty while the
    official has not yet proven the app holds it; only a confirmed one is asked for at login.
    ``last_used_step`` refuses a code whose time step was already accepted (RFC 6238 §5.2).
    """

    __tablename__ = "idp_totp_credential"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("idp_account.id", ondelete="CASCADE"), unique=True
    )
    sealed_secret: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(Base):
    """Single-use recovery code for an account with TOTP; only its SHA-256 digest is kept."""

    __tablename__ = "idp_recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("idp_account.id", ondelete="CASCADE"))
    code_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_idp_recovery_code_account_id", "account_id"),)


class CasService(Base):
    """A service registered for CAS 3.0 (0014): an exact URL or an anchored regular expression
    matched against the normalised ``service`` parameter (idp.cas.service_urls)."""

    __tablename__ = "idp_cas_service"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Chosen by the administrator; names the service in the CLI, the audit log and the
    # delivery log ("cas:<service_id>").
    service_id: Mapped[str] = mapped_column(String(48), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # "exact" or "regex"
    match_kind: Mapped[str] = mapped_column(String(8))
    url_pattern: Mapped[str] = mapped_column(Text)
    # Attribute groups released (idp.released_attributes.RELEASABLE), in registration order.
    attributes: Mapped[list[str]] = mapped_column(JSON, default=list)
    single_logout: Mapped[bool] = mapped_column(Boolean, default=True)
    # The lowest authentication level the service accepts (idp.authentication_levels), as an
    # OIDC client's minimum_acr; None: any.
    minimum_acr: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CasTicket(Base):
    """A CAS service ticket (CAS 3.0 §3.1): only its SHA-256 digest is stored, it is
    consumed by one validation attempt, bound to one service URL and short-lived.

    ``session_index`` receives the ticket itself once a validation succeeded: from then on it
    can never validate again, and it is what the service needs to find its local session in
    the single-logout request (§2.3.3 SessionIndex)."""

    __tablename__ = "idp_cas_ticket"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_digest: Mapped[str] = mapped_column(String(64), unique=True)
    service_pk: Mapped[int] = mapped_column(ForeignKey("idp_cas_service.id", ondelete="CASCADE"))
    service_url: Mapped[str] = mapped_column(Text)
    session_id: Mapped[int] = mapped_column(ForeignKey("idp_session.id", ondelete="CASCADE"))
    from_new_login: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    session_index: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_idp_cas_ticket_session_id", "session_id"),)


class UpstreamProvider(Base):
    """An upstream OpenID provider officials may sign in through (identity brokering, 0017).

    The endpoints are those of its discovery document, fetched and checked when it was added.
    The client secret is sealed (AES-256-GCM under a key derived from the server secret, bound
    to ``upstream_id``: idp.federation.sealing); with ``private_key_jwt`` there is none."""

    __tablename__ = "idp_upstream_provider"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Chosen by the administrator: in the login URL (/login/upstream/<upstream_id>), the CLI
    # and the audit log ("upstream:<upstream_id>").
    upstream_id: Mapped[str] = mapped_column(String(48), unique=True)
    issuer: Mapped[str] = mapped_column(Text)
    name_vi: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(255))
    # "client_secret_basic" or "private_key_jwt" (RFC 7523 §2.2, signed with our key ring).
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    sealed_client_secret: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    # The ID token claim matched against an official's record (idp.federation.linking).
    link_claim: Mapped[str] = mapped_column(String(32))
    authorization_endpoint: Mapped[str] = mapped_column(Text)
    token_endpoint: Mapped[str] = mapped_column(Text)
    jwks_uri: Mapped[str] = mapped_column(Text)
    end_session_endpoint: Mapped[str | None] = mapped_column(Text)
    # The ID token algorithms we accept from it: its advertised ones within our allowlist.
    id_token_algs: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UpstreamSession(Base):
    """A browser session that began with a sign-in at an upstream provider: its ID token is
    kept (sealed) as the ``id_token_hint`` of the upstream logout when the session ends."""

    __tablename__ = "idp_upstream_session"

    session_id: Mapped[int] = mapped_column(
        ForeignKey("idp_session.id", ondelete="CASCADE"), primary_key=True
    )
    upstream_pk: Mapped[int] = mapped_column(
        ForeignKey("idp_upstream_provider.id", ondelete="CASCADE"), index=True
    )
    upstream_subject: Mapped[str] = mapped_column(String(255))
    sealed_id_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SamlServiceProvider(Base):
    """A SAML 2.0 service provider registered from its metadata (0022). The endpoints,
    certificates and flags are read from the metadata at registration; ``metadata_xml`` keeps
    what was registered, for the record."""

    __tablename__ = "idp_saml_sp"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SAML Core §8.3.6: an entity identifier is at most 1024 characters.
    entity_id: Mapped[str] = mapped_column(String(1024), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    metadata_xml: Mapped[str] = mapped_column(Text)
    # [{"url", "binding", "index", "is_default"}], in metadata order.
    assertion_consumer_services: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # [{"url", "binding", "response_url"}], in metadata order.
    single_logout_services: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Base64 DER certificates from the KeyDescriptors ("signing" / "encryption"; one without
    # ``use`` counts for both).
    signing_certificates: Mapped[list[str]] = mapped_column(JSON, default=list)
    encryption_certificates: Mapped[list[str]] = mapped_column(JSON, default=list)
    authn_requests_signed: Mapped[bool] = mapped_column(Boolean, default=False)
    want_assertions_signed: Mapped[bool] = mapped_column(Boolean, default=True)
    # The NameID format sent when the request names none (idp.saml.name_ids).
    name_id_format: Mapped[str] = mapped_column(String(128))
    # Attribute groups released (idp.released_attributes.RELEASABLE), in registration order.
    attributes: Mapped[list[str]] = mapped_column(JSON, default=list)
    encrypt_assertions: Mapped[bool] = mapped_column(Boolean, default=False)
    # The lowest authentication level the SP accepts (idp.authentication_levels), as an OIDC
    # client's minimum_acr; None: any.
    minimum_acr: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The md:Extensions/alg:SigningMethod algorithms of the metadata, in order (0026); None
    # when it declares none (then RSA-SHA256, which every SP verifies).
    signing_methods: Mapped[list[str] | None] = mapped_column(JSON)


class SamlRequestId(Base):
    """Replay cache of AuthnRequest and LogoutRequest IDs (0022), shared by every worker and
    host: a request ID is accepted once per service provider until ``expires_at``, after which
    its IssueInstant is too old to be accepted anyway."""

    __tablename__ = "idp_saml_request_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    sp_pk: Mapped[int] = mapped_column(ForeignKey("idp_saml_sp.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("sp_pk", "request_id", name="uq_idp_saml_request_id_sp_pk_request_id"),
        Index("ix_idp_saml_request_id_expires_at", "expires_at"),
    )


class SamlPersistentId(Base):
    """The persistent NameID of an official at one service provider (0022): random, pairwise
    (another SP cannot correlate it) and stable for as long as the registration lives."""

    __tablename__ = "idp_saml_persistent_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("idp_account.id", ondelete="CASCADE"))
    sp_pk: Mapped[int] = mapped_column(ForeignKey("idp_saml_sp.id", ondelete="CASCADE"))
    value: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("account_id", "sp_pk", name="uq_idp_saml_persistent_id_account_sp"),
        UniqueConstraint("sp_pk", "value", name="uq_idp_saml_persistent_id_sp_pk_value"),
    )


class SamlSessionParticipant(Base):
    """A service provider that received an assertion in a browser session (0022), with the
    NameID and SessionIndex it was given: what a LogoutRequest to it must carry (SAML Core
    §3.7.1) when the session ends."""

    __tablename__ = "idp_saml_session_participant"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("idp_session.id", ondelete="CASCADE"))
    sp_pk: Mapped[int] = mapped_column(ForeignKey("idp_saml_sp.id", ondelete="CASCADE"))
    name_id: Mapped[str] = mapped_column(String(256))
    name_id_format: Mapped[str] = mapped_column(String(128))
    session_index: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_idp_saml_session_participant_session_id", "session_id"),)


class Passkey(Base):
    """A WebAuthn credential of an official (0024), several per account.

    ``credential_id`` is the authenticator's id (base64url), unique across accounts: an
    assertion names it, and it must belong to the account the login is for. ``backup_eligible``
    is the BE flag of registration (WebAuthn §6.1, it never changes for a credential): a
    credential that may be synced leaves the hardware, so it counts as a software key ("swk")
    and a device-bound one as a hardware key ("hwk", RFC 8176). ``sign_count`` is the last
    counter seen (§6.1.1); ``clone_suspected_at`` records a counter that went back.
    """

    __tablename__ = "idp_passkey"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("idp_account.id", ondelete="CASCADE"))
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(100))
    aaguid: Mapped[str] = mapped_column(String(36))
    backup_eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clone_suspected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_idp_passkey_account_id", "account_id"),)


class WebAuthnChallenge(Base):
    """A ceremony's challenge (0024), kept server-side so any worker can finish it: single use
    (``used_at`` is set by a conditional UPDATE) and short-lived. ``purpose`` is "register"
    (for ``account_id``) or "authenticate" (for an interaction: ``interaction_id``; with
    ``account_id`` when it is the second factor of that account)."""

    __tablename__ = "idp_webauthn_challenge"

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge: Mapped[str] = mapped_column(String(128), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("idp_account.id", ondelete="CASCADE"))
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("idp_interaction.id", ondelete="CASCADE")
    )
    user_verification: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UsedJti(Base):
    """Single-use JWT ids (private_key_jwt client assertions, RFC 7523 §3; DPoP proofs,
    RFC 9449 §11.1), kept until the JWT could no longer be accepted anyway. In the database,
    so a replay to another worker or host is refused like one to the same worker."""

    __tablename__ = "idp_used_jti"

    # SHA-256 of the kind, the issuer (client or key) and the jti: fixed length, no raw input.
    key_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class PushedAuthorizationRequest(Base):
    """RFC 9126 §2.2: an authorization request pushed by a client, referred to once by its
    request_uri (of which only the digest is stored) before it expires."""

    __tablename__ = "idp_pushed_authorization_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_uri_digest: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("idp_client.id", ondelete="CASCADE"))
    params: Mapped[list[list[str]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
