"""Officials' accounts: creation, passwords, disabling.

Service functions take keyword-only arguments (CONVENTIONS §7) and never commit; each change
writes its audit entry into the same transaction.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import Conflict, DomainError, NotFound
from idp import lifecycle, sessions, token_store
from idp.models import Account, AccountProfile
from idp.passwords import PasswordHasher

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 8  # NIST SP 800-63B §5.1.1.2: length, not composition rules
MAX_PASSWORD_LENGTH = 256


def normalise_username(raw: str) -> str:
    return raw.strip().lower()


def validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError("The password must be at least 8 characters long.", field="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise DomainError("The password must be at most 256 characters long.", field="password")


def find_by_username(session: Session, username: str) -> Account | None:
    return session.scalar(select(Account).where(Account.username == normalise_username(username)))


def get_by_username(session: Session, username: str) -> Account:
    account = find_by_username(session, username)
    if account is None:
        raise NotFound("No account with that username.", username=username)
    return account


def find_by_subject(session: Session, subject: str) -> Account | None:
    return session.scalar(select(Account).where(Account.subject == subject))


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Account)) or 0


def create(
    *,
    session: Session,
    clock: Clock,
    passwords: PasswordHasher,
    actor: str,
    username: str,
    full_name: str,
    email: str | None = None,
    password: str | None = None,
    is_system_admin: bool = False,
) -> Account:
    username = normalise_username(username)
    if not USERNAME_PATTERN.match(username):
        raise DomainError(
            "A username is 2 to 64 lowercase letters, digits, dots, hyphens or underscores.",
            field="username",
        )
    full_name = unicodedata.normalize("NFC", full_name.strip())
    if not full_name:
        raise DomainError("The full name is required.", field="full_name")
    if find_by_username(session, username) is not None:
        raise Conflict("That username is already taken.", field="username")
    if password is not None:
        validate_password(password)
    now = clock.now()
    account = Account(
        subject=secrets.token_hex(16),
        username=username,
        full_name=full_name,
        email=email.strip().lower() if email else None,
        email_verified=False,
        password_hash=passwords.hash(password) if password else None,
        status="active",
        is_system_admin=is_system_admin,
        created_at=now,
        updated_at=now,
        password_changed_at=now if password else None,
    )
    session.add(account)
    session.flush()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="account.create",
        target=f"account:{username}",
        details={"system_admin": is_system_admin, "with_password": password is not None},
    )
    return account


def set_password(
    *,
    session: Session,
    clock: Clock,
    passwords: PasswordHasher,
    actor: str,
    account: Account,
    password: str,
) -> None:
    validate_password(password)
    account.password_hash = passwords.hash(password)
    account.password_changed_at = account.updated_at = clock.now()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="account.set_password",
        target=f"account:{account.username}",
    )


def disable(*, session: Session, clock: Clock, actor: str, account: Account) -> None:
    """Disabling ends every browser session and revokes every grant of the account at once."""
    if account.status == "disabled":
        return
    account.status = "disabled"
    account.updated_at = clock.now()
    ended = sessions.end_all_for_account(session=session, clock=clock, account=account)
    revoked = token_store.revoke_grants_of_account(
        session=session, clock=clock, account=account, reason="account_disabled"
    )
    _record_status_change(
        session=session,
        clock=clock,
        actor=actor,
        account=account,
        kind=lifecycle.ACCOUNT_DISABLED,
        action="account.disable",
        details={"sessions_ended": ended, "grants_revoked": revoked},
    )


def upgrade_password_hash(*, account: Account, new_hash: str, clock: Clock) -> None:
    """Store a rehash produced at login (legacy scheme or outdated argon2 parameters)."""
    account.password_hash = new_hash
    account.updated_at = clock.now()


def enable(*, session: Session, clock: Clock, actor: str, account: Account) -> None:
    """Let a disabled official log in again (sessions and grants ended earlier stay ended)."""
    if account.status != "disabled":
        return
    account.status = "active"
    account.updated_at = clock.now()
    _record_status_change(
        session=session,
        clock=clock,
        actor=actor,
        account=account,
        kind=lifecycle.ACCOUNT_ENABLED,
        action="account.enable",
    )


def mark_deleted(
    *, session: Session, clock: Clock, actor: str, account: Account, profile: AccountProfile
) -> None:
    """Soft delete (RFC 7644 §3.6 as PITFALLS reads it): the row and its history stay, the
    official cannot log in (disabled: sessions ended, grants revoked) and is marked deleted."""
    if profile.deleted_at is not None:
        return
    disable(session=session, clock=clock, actor=actor, account=account)
    now = clock.now()
    profile.deleted_at = now
    profile.version += 1
    account.updated_at = now
    _record_status_change(
        session=session,
        clock=clock,
        actor=actor,
        account=account,
        kind=lifecycle.ACCOUNT_DELETED,
        action="account.delete",
    )


def _record_status_change(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    account: Account,
    kind: str,
    action: str,
    details: dict[str, object] | None = None,
) -> None:
    """Tell the other parts (lifecycle event) and the audit log, in the caller's transaction."""
    lifecycle.publish(
        session=session, clock=clock, kind=kind, subject=account.subject, payload={"by": actor}
    )
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action=action,
        target=f"account:{account.username}",
        details=details,
    )
