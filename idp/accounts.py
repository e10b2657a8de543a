"""Officials' accounts: creation, passwords, disabling.

Service functions take keyword-only arguments (CONVENTIONS §7) and never commit; each change
writes its audit entry into the same transaction.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import Conflict, DomainError, NotFound
from core.web.i18n import N_
from idp import common_passwords, lifecycle, sessions, token_store
from idp.bulk_import import activation
from idp.logout import backchannel
from idp.models import (
    Account,
    AccountProfile,
    ActivationCode,
    BrowserSession,
    Passkey,
    TotpCredential,
)
from idp.passwords import PasswordHasher

# The spreadsheet import's rule for the usernames it is given (idp.bulk_import.plan): short,
# easy to type on a phone. Directories (SCIM, the CLI) may use any userName (validate_username).
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MAX_USERNAME_LENGTH = 256  # Account.username; an e-mail address or a UPN fits
MIN_PASSWORD_LENGTH = 8  # NIST SP 800-63B §5.1.1.2: length, not composition rules
MAX_PASSWORD_LENGTH = 256


def normalise_username(raw: str) -> str:
    """Lowercase: usernames are unique and matched without regard to case (RFC 7643 §4.1.1
    caseExact=false); NFC, so that one name typed two ways is one account."""
    return unicodedata.normalize("NFC", raw.strip()).lower()


USERNAME_INVALID = N_(
    "A username is 1 to 256 characters, without control characters or spaces at either end."
)


def validate_username(raw: str) -> str:
    """Any non-empty string (RFC 7643 §4.1.1 sets no character rule; Entra ID and Okta send an
    e-mail address or a UPN), trimmed and lowercased, at most 256 characters, with no control
    or format character (invisible in logs and pages, and PostgreSQL refuses NUL). Returns it
    normalised."""
    username = normalise_username(raw)
    if not username or len(username) > MAX_USERNAME_LENGTH:
        raise DomainError(USERNAME_INVALID, field="username")
    if any(unicodedata.category(char)[0] in ("C", "Z") and char != " " for char in username):
        raise DomainError(USERNAME_INVALID, field="username")
    return username


PASSWORD_TOO_SHORT = N_("The password must be at least 8 characters long.")
PASSWORD_TOO_LONG = N_("The password must be at most 256 characters long.")
PASSWORD_TOO_COMMON = N_(
    "This password is too common and easy to guess. Please choose another one."
)
PASSWORD_HAS_USERNAME = N_("The password must not contain your username.")
# A username this short turns up inside many good passwords by chance.
USERNAME_IN_PASSWORD_MIN_LENGTH = 4


def validate_password(password: str, *, username: str | None = None) -> None:
    """NIST SP 800-63B §5.1.1.2: at least 8 characters, long passphrases allowed, no
    composition rules, and refused when on the common-passwords list or context-specific
    (the username)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DomainError(PASSWORD_TOO_SHORT, field="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise DomainError(PASSWORD_TOO_LONG, field="password")
    if common_passwords.is_common(password):
        raise DomainError(PASSWORD_TOO_COMMON, field="password")
    if (
        username
        and len(username) >= USERNAME_IN_PASSWORD_MIN_LENGTH
        and normalise_username(username) in password.lower()
    ):
        raise DomainError(PASSWORD_HAS_USERNAME, field="password")


# Read at every sign-in: built once (building it per call cost more than running it, issue 15).
_BY_USERNAME = select(Account).where(Account.username == bindparam("username"))


def find_by_username(session: Session, username: str) -> Account | None:
    return session.scalar(_BY_USERNAME, {"username": normalise_username(username)})


@dataclass(frozen=True)
class SignInAccount:
    """An account as the password step needs it: with the second factors that follow it."""

    account: Account
    has_totp: bool  # a confirmed TOTP credential (idp.mfa)
    has_passkey: bool  # at least one passkey (idp.passkeys)


# The account and whether it has a second factor, in one statement: the password step asked
# for them one by one, a round trip each on every sign-in (issue 15).
_SIGN_IN_BY_USERNAME = select(
    Account,
    select(TotpCredential.id)
    .where(TotpCredential.account_id == Account.id, TotpCredential.confirmed_at.is_not(None))
    .exists()
    .label("has_totp"),
    select(Passkey.id).where(Passkey.account_id == Account.id).exists().label("has_passkey"),
).where(Account.username == bindparam("username"))


def find_for_sign_in(session: Session, username: str) -> SignInAccount | None:
    row = session.execute(
        _SIGN_IN_BY_USERNAME, {"username": normalise_username(username)}
    ).one_or_none()
    if row is None:
        return None
    return SignInAccount(
        account=row[0], has_totp=bool(row.has_totp), has_passkey=bool(row.has_passkey)
    )


def get_by_username(session: Session, username: str) -> Account:
    account = find_by_username(session, username)
    if account is None:
        raise NotFound(N_("No account with that username."), username=username)
    return account


def find_by_subject(session: Session, subject: str) -> Account | None:
    return session.scalar(select(Account).where(Account.subject == subject))


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Account)) or 0


def names_by_subject(session: Session, subjects: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Subject -> (full name, username) of the accounts among ``subjects``, in one query: the
    logout delivery log knows an official by the token's ``sub`` only."""
    wanted = sorted(set(subjects))
    if not wanted:
        return {}
    rows = session.execute(
        select(Account.subject, Account.full_name, Account.username).where(
            Account.subject.in_(wanted)
        )
    )
    return {subject: (full_name, username) for subject, full_name, username in rows}


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
    full_name_required: bool = True,
) -> Account:
    """``full_name_required=False``: a directory may provision an official before it knows
    the name (SCIM's ``name`` is optional); what a certificate needs is checked there."""
    username = validate_username(username)
    full_name = unicodedata.normalize("NFC", full_name.strip())
    if not full_name and full_name_required:
        raise DomainError(N_("The full name is required."), field="full_name")
    if find_by_username(session, username) is not None:
        raise Conflict(N_("That username is already taken."), field="username")
    if password is not None:
        validate_password(password, username=username)
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
    validate_password(password, username=account.username)
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
    # Back-channel logout tells the apps of the sessions about to end (queued, same transaction).
    queued = backchannel.enqueue_for_account(
        session=session, clock=clock, account=account, reason="account_disabled"
    )
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
        details={
            "sessions_ended": ended,
            "grants_revoked": revoked,
            "backchannel_deliveries": queued,
        },
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


def change_password(
    *,
    session: Session,
    clock: Clock,
    passwords: PasswordHasher,
    account: Account,
    new_password: str,
    current_session: BrowserSession | None,
    action: str = "account.password_changed",
    client_address: str | None = None,
) -> tuple[int, int]:
    """The official's own password change (the caller checked the current password, or a
    reset link: ``action`` "account.password_reset").

    Hashed with the current policy (argon2id). Every OTHER session of the account ends, with
    its grants revoked and its apps told through back-channel logout (whoever knew the old
    password is signed out); the session making the change stays. Returns how many ended.
    """
    validate_password(new_password, username=account.username)
    now = clock.now()
    account.password_hash = passwords.hash(new_password)
    account.password_changed_at = account.updated_at = now
    others = [
        other
        for other in backchannel.live_sessions_of(session, clock, account)
        if current_session is None or other.id != current_session.id
    ]
    ended, queued = end_browser_sessions(
        session=session, clock=clock, browser_sessions=others, reason="password_changed"
    )
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}",
        action=action,
        target=f"account:{account.username}",
        client_address=client_address,
        details={"sessions_ended": ended, "backchannel_deliveries": queued},
    )
    return ended, queued


def end_browser_sessions(
    *, session: Session, clock: Clock, browser_sessions: Sequence[BrowserSession], reason: str
) -> tuple[int, int]:
    """End these sessions, revoke their grants and queue the back-channel logout notices of
    their apps (OpenID Back-Channel Logout 1.0 §2.5), in the caller's transaction. Returns
    (sessions ended, notices queued); wake the delivery worker after the commit."""
    live = [each for each in browser_sessions if each.ended_at is None]
    if not live:
        return 0, 0
    queued = backchannel.enqueue_for_sessions(
        session=session, clock=clock, browser_sessions=live, reason=reason
    )
    for browser_session in live:
        sessions.end(session=session, clock=clock, browser_session=browser_session)
        token_store.revoke_grants_of_session(
            session=session, clock=clock, browser_session=browser_session, reason=reason
        )
    return len(live), queued


def issue_activation_code(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    account: Account,
    lifetime: timedelta = activation.ACTIVATION_CODE_LIFETIME,
    client_address: str | None = None,
) -> tuple[str, datetime]:
    """A new one-time code for an account that never activated; earlier unused codes stop
    working (only the newest one is in anyone's hands). Returns the code and its expiry; only
    its digest is stored. The code is in the hand-out format of
    :mod:`idp.bulk_import.activation` (``7KQ2-M9XD-4TRB``)."""
    now = clock.now()
    if account.id is None:
        session.flush()  # the digest is salted with the account id
    session.execute(
        update(ActivationCode)
        .where(
            ActivationCode.account_id == account.id,
            ActivationCode.used_at.is_(None),
            ActivationCode.expires_at > now,
        )
        .values(expires_at=now)
    )
    code, code_digest = activation.new_code(account_id=account.id)
    row = activation.code_row(account_id=account.id, code_digest=code_digest, now=now)
    row["expires_at"] = now + lifetime
    session.add(ActivationCode(**row))
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="account.activation_code_issued",
        target=f"account:{account.username}",
        details={"expires_at": row["expires_at"].isoformat()},
        client_address=client_address,
    )
    return code, row["expires_at"]


ACTIVATION_FAILED = N_(
    "The username or activation code is not valid, or the code has expired or was already used."
)


def activate(
    *,
    session: Session,
    clock: Clock,
    passwords: PasswordHasher,
    username: str,
    code: str,
    password: str,
    client_address: str | None = None,
) -> Account | None:
    """Exchange a one-time activation code (idp.bulk_import.activation) for a first password.

    None, whatever the reason (no such account, disabled, wrong, expired or used code), so the
    answer never tells which. The code is consumed by a conditional UPDATE in the caller's
    transaction: of two concurrent submissions only one succeeds. A successful activation also
    retires the account's other outstanding codes (a re-sent code supersedes the old ones).
    The code is read as a person types it (case, spaces, hyphens, I/L/O for 1/0:
    :func:`idp.bulk_import.activation.candidate_digests`); codes of the earlier format still work.
    """
    account = find_by_username(session, username)
    code = code.strip()
    if account is None or not account.is_active or not code or len(code) > 100:
        return None
    now = clock.now()
    row = session.scalar(
        select(ActivationCode)
        .where(
            ActivationCode.code_digest.in_(
                activation.candidate_digests(account_id=account.id, raw=code)
            ),
            ActivationCode.account_id == account.id,
        )
        .limit(1)
    )
    if row is None or row.used_at is not None or now >= row.expires_at:
        return None
    validate_password(password, username=account.username)
    consumed = session.execute(
        update(ActivationCode)
        .where(ActivationCode.id == row.id, ActivationCode.used_at.is_(None))
        .values(used_at=now)
    )
    if int(getattr(consumed, "rowcount", 0) or 0) != 1:
        return None
    session.execute(
        update(ActivationCode)
        .where(ActivationCode.account_id == account.id, ActivationCode.used_at.is_(None))
        .values(used_at=now)
    )
    account.password_hash = passwords.hash(password)
    account.password_changed_at = account.updated_at = now
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}",
        action="account.activated",
        target=f"account:{account.username}",
        client_address=client_address,
    )
    return account
