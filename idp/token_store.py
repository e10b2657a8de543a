"""Storage of grants, authorization codes, refresh tokens and revoked access tokens.

Single use is enforced with compare-and-set updates (``... WHERE consumed_at IS NULL``), so two
workers racing with the same code or refresh token cannot both win.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from core.clock import Clock
from core.opaque_tokens import digest, new_opaque_token
from idp.models import (
    Account,
    AuthorizationCode,
    BrowserSession,
    Client,
    Grant,
    RefreshToken,
    RevokedAccessToken,
)

GRANT_TABLE = cast(Table, Grant.__table__)
CODE_TABLE = cast(Table, AuthorizationCode.__table__)
REFRESH_TOKEN_TABLE = cast(Table, RefreshToken.__table__)

# Statements of every login and code exchange, built once with bound parameters: building them
# per call (``insert(...).values(row)``, ``update(...).where(... == value)``) cost several times
# their execution's Python time (issue 15: a login's CPU besides the hash).
_INSERT_GRANT = insert(GRANT_TABLE).returning(GRANT_TABLE.c.id)
_INSERT_CODE = insert(CODE_TABLE)
_INSERT_REFRESH_TOKEN = insert(REFRESH_TOKEN_TABLE)
_CODE_BY_DIGEST = select(AuthorizationCode).where(
    AuthorizationCode.code_digest == bindparam("code_digest")
)
_CONSUME_CODE = (
    update(CODE_TABLE)
    .where(CODE_TABLE.c.id == bindparam("code_id"), CODE_TABLE.c.consumed_at.is_(None))
    .values(consumed_at=bindparam("now"))
)


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# The columns a sign-in writes (the rows of create_grant_with_code and NewCode.row; the
# code's grant_pk comes from the grant).
_GRANT_FIELDS = (
    "grant_id",
    "account_id",
    "client_pk",
    "session_id",
    "sid",
    "scope",
    "auth_time",
    "amr",
    "created_at",
    "expires_at",
    "revoked_at",
    "revoked_reason",
)
_CODE_FIELDS = (
    "code_digest",
    "redirect_uri",
    "scope",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "created_at",
    "expires_at",
    "consumed_at",
    "dpop_jkt",
)


def _stored_grant(new_id: int, row: dict[str, Any], account: Account) -> Grant:
    # The Grant returned is not in the session; it carries the new row and its id.
    grant = Grant(id=new_id, **row)
    grant.account = account
    return grant


def is_grant_usable(grant: Grant, now: datetime) -> bool:
    return grant.revoked_at is None and now < grant.expires_at and grant.account.is_active


def find_grant(session: Session, grant_id: str) -> Grant | None:
    return session.scalar(select(Grant).where(Grant.grant_id == grant_id))


def revoke_grant(*, session: Session, clock: Clock, grant: Grant, reason: str) -> None:
    session.execute(
        update(Grant)
        .where(Grant.id == grant.id, Grant.revoked_at.is_(None))
        .values(revoked_at=clock.now(), revoked_reason=reason)
    )
    session.refresh(grant)


def revoke_grants_of_account(
    *, session: Session, clock: Clock, account: Account, reason: str
) -> int:
    return _rowcount(
        session.execute(
            update(Grant)
            .where(Grant.account_id == account.id, Grant.revoked_at.is_(None))
            .values(revoked_at=clock.now(), revoked_reason=reason)
        )
    )


def revoke_grants_of_client(*, session: Session, clock: Clock, client: Client, reason: str) -> int:
    return _rowcount(
        session.execute(
            update(Grant)
            .where(Grant.client_pk == client.id, Grant.revoked_at.is_(None))
            .values(revoked_at=clock.now(), revoked_reason=reason)
        )
    )


def revoke_grants_of_session(
    *, session: Session, clock: Clock, browser_session: BrowserSession, reason: str
) -> int:
    return _rowcount(
        session.execute(
            update(Grant)
            .where(Grant.session_id == browser_session.id, Grant.revoked_at.is_(None))
            .values(revoked_at=clock.now(), revoked_reason=reason)
        )
    )


@dataclass(frozen=True)
class NewCode:
    """An authorization code about to be stored (RFC 6749 §4.1.2, PKCE's challenge with it)."""

    code: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    lifetime: timedelta
    dpop_jkt: str | None = None

    def row(self, *, now: datetime, grant_pk: int | None) -> dict[str, Any]:
        return {
            "code_digest": digest(self.code),
            "grant_pk": grant_pk,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "created_at": now,
            "expires_at": now + self.lifetime,
            "consumed_at": None,
            "dpop_jkt": self.dpop_jkt,
        }


def _grant_and_code_statement() -> Insert:
    """PostgreSQL: the grant and its code in one statement (an INSERT inside WITH): every
    sign-in for an application writes both, and a round trip costs more than the rows."""
    new_grant = (
        insert(GRANT_TABLE)
        .values(
            {key: bindparam(f"grant_{key}", type_=GRANT_TABLE.c[key].type) for key in _GRANT_FIELDS}
        )
        .returning(GRANT_TABLE.c.id)
        .cte("new_grant")
    )
    return (
        insert(CODE_TABLE)
        .from_select(
            ["grant_pk", *_CODE_FIELDS],
            select(
                new_grant.c.id,
                *(bindparam(f"code_{key}", type_=CODE_TABLE.c[key].type) for key in _CODE_FIELDS),
            ),
        )
        .returning(CODE_TABLE.c.grant_pk)
    )


_INSERT_GRANT_AND_CODE = _grant_and_code_statement()


def create_grant_with_code(
    *,
    session: Session,
    clock: Clock,
    account: Account,
    client_pk: int,
    browser_session: BrowserSession | None,
    scope: str,
    auth_time: datetime,
    amr: list[str],
    lifetime: timedelta,
    code: NewCode,
) -> Grant:
    """A new grant and its authorization code (the end of every sign-in for an application)."""
    now = clock.now()
    row: dict[str, Any] = {
        "grant_id": secrets.token_urlsafe(24),
        "account_id": account.id,
        "client_pk": client_pk,
        "session_id": browser_session.id if browser_session else None,
        "sid": browser_session.sid if browser_session else None,
        "scope": scope,
        "auth_time": auth_time,
        "amr": amr,
        "created_at": now,
        "expires_at": now + lifetime,
        "revoked_at": None,
        "revoked_reason": None,
    }
    # Plain INSERTs for the rows every login writes: cheaper than the ORM's unit of work.
    if session.get_bind().dialect.name != "postgresql":
        # SQLite has no INSERT inside WITH: two statements.
        new_id = session.execute(_INSERT_GRANT, row).scalar_one()
        grant = _stored_grant(new_id, row, account)
        session.execute(_INSERT_CODE, code.row(now=now, grant_pk=new_id))
        return grant
    code_row = code.row(now=now, grant_pk=None)
    new_id = session.execute(
        _INSERT_GRANT_AND_CODE,
        {
            **{f"grant_{key}": row[key] for key in _GRANT_FIELDS},
            **{f"code_{key}": code_row[key] for key in _CODE_FIELDS},
        },
    ).scalar_one()
    return _stored_grant(new_id, row, account)


@dataclass(frozen=True)
class CodeRedemption:
    code: AuthorizationCode | None
    replayed: bool = False


def redeem_code(*, session: Session, clock: Clock, code: str, client_pk: int) -> CodeRedemption:
    """RFC 6749 §4.1.2: single use. A second use revokes every token issued from the code."""
    stored = session.scalar(_CODE_BY_DIGEST, {"code_digest": digest(code)})
    if stored is None or stored.grant.client_pk != client_pk:
        return CodeRedemption(code=None)
    now = clock.now()
    won = _rowcount(session.execute(_CONSUME_CODE, {"code_id": stored.id, "now": now}))
    if not won:
        revoke_grant(session=session, clock=clock, grant=stored.grant, reason="code_replay")
        return CodeRedemption(code=None, replayed=True)
    if now >= stored.expires_at or not is_grant_usable(stored.grant, now):
        return CodeRedemption(code=None)
    return CodeRedemption(code=stored)


def store_refresh_token(
    *,
    session: Session,
    clock: Clock,
    grant: Grant,
    scope: str,
    parent: RefreshToken | None,
) -> str:
    token = new_opaque_token()
    now = clock.now()
    # A plain INSERT, like the grant's and the code's: every code exchange and refresh writes one.
    session.execute(
        _INSERT_REFRESH_TOKEN,
        {
            "token_digest": digest(token),
            "grant_pk": grant.id,
            "parent_id": parent.id if parent else None,
            "scope": scope,
            "created_at": now,
            "expires_at": grant.expires_at,
            "rotated_at": None,
            "revoked_at": None,
        },
    )
    return token


def find_refresh_token(session: Session, token: str) -> RefreshToken | None:
    if len(token) > 200:
        return None
    return session.scalar(select(RefreshToken).where(RefreshToken.token_digest == digest(token)))


def usable_refresh_token(
    *, session: Session, clock: Clock, token: str, client_pk: int
) -> RefreshToken | None:
    """Look up a refresh token for the refresh grant; reuse of a rotated one kills the family."""
    stored = find_refresh_token(session, token)
    if stored is None or stored.grant.client_pk != client_pk:
        return None
    now = clock.now()
    if stored.rotated_at is not None:
        revoke_grant(session=session, clock=clock, grant=stored.grant, reason="refresh_reuse")
        return None
    if stored.revoked_at is not None or now >= stored.expires_at:
        return None
    if not is_grant_usable(stored.grant, now):
        return None
    return stored


def mark_rotated(*, session: Session, clock: Clock, token: RefreshToken) -> bool:
    """Compare-and-set: exactly one concurrent refresh with the same token wins."""
    won = _rowcount(
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token.id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=clock.now())
        )
    )
    if not won:
        revoke_grant(session=session, clock=clock, grant=token.grant, reason="refresh_reuse")
    return bool(won)


def revoke_refresh_token(*, session: Session, clock: Clock, token: RefreshToken) -> None:
    """RFC 7009 §2.1: revoking a refresh token also ends the grant's access tokens."""
    token.revoked_at = clock.now()
    revoke_grant(session=session, clock=clock, grant=token.grant, reason="revoked")


def revoke_access_token(*, session: Session, jti: str, expires_at: datetime) -> None:
    if session.get(RevokedAccessToken, jti) is None:
        session.add(RevokedAccessToken(jti=jti, expires_at=expires_at))


def is_access_token_revoked(session: Session, jti: str) -> bool:
    return session.get(RevokedAccessToken, jti) is not None
