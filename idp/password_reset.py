"""Self-service password reset (issue 16): a single-use link, valid for
``password_reset_minutes`` (30 by default), sent to the official's *verified* e-mail.

The form answers the same whether or not an account matches (the caller renders one page for
every case, and the e-mail leaves after the response, so its time is not seen either).
Requests are throttled per account name and per client address (idp.login_throttle). The
token is a 256-bit random value stored as its SHA-256 digest, never in clear. Setting the new
password follows the password policy, ends every session of the official and sends the
back-channel logout notices (accounts.change_password), and is audited.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from babel.support import Translations
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.mail import MailSettings, compose_bilingual, vietnam_time
from core.opaque_tokens import digest
from core.settings import Settings
from core.web.i18n import N_
from idp import accounts, login_throttle
from idp.models import Account, PasswordReset
from idp.passwords import PasswordHasher

TOKEN_BYTES = 32
RESET_PATH = "/login/reset"
# Several officials rarely share one verified address; never mail more than this per request.
MAX_ACCOUNTS_PER_EMAIL = 5

MAIL_SUBJECT = N_("Reset the password of your sign-in account %(username)s")
MAIL_BODY = N_(
    "Dear %(name)s,\n\n"
    "Someone, probably you, asked to reset the password of the account %(username)s. To "
    "choose a new password, open this link before %(expires)s:\n\n"
    "%(url)s\n\n"
    "The link works once. If you did not ask for it, ignore this e-mail: your password stays "
    "as it is."
)


@dataclass(frozen=True)
class ResetLink:
    account: Account
    url: str


def matching_accounts(session: Session, identifier: str) -> list[Account]:
    """Active accounts with a verified e-mail that ``identifier`` names: a username, or the
    verified e-mail address itself."""
    text = identifier.strip()
    if not text:
        return []
    if "@" in text:
        found = list(
            session.scalars(
                select(Account)
                .where(Account.email.in_({text, text.lower()}), Account.email_verified.is_(True))
                .order_by(Account.id)
                .limit(MAX_ACCOUNTS_PER_EMAIL)
            )
        )
    else:
        account = accounts.find_by_username(session, text)
        found = [account] if account is not None else []
    return [a for a in found if a.is_active and a.email and a.email_verified]


def request_reset(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    identifier: str,
    client_address: str | None,
) -> list[ResetLink]:
    """The links to mail for this request (none when nothing matches or it is throttled)."""
    found = matching_accounts(session, identifier)
    # Counted per account when one matches (a username and its e-mail are one budget), per
    # typed text otherwise, so unknown names are throttled alike.
    names = [a.username for a in found] or [identifier.strip()[:150].lower()]
    allowed = all(
        login_throttle.allow_reset_request(
            session=session,
            clock=clock,
            settings=settings,
            account_name=name,
            client_address=client_address,
        )
        for name in names
    )
    if not allowed:
        return []
    now = clock.now()
    links = []
    for account in found:
        # One live link per official: an older one stops working.
        _retire_links(session, account, now=now)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session.add(
            PasswordReset(
                account_id=account.id,
                token_digest=digest(token),
                created_at=now,
                expires_at=now + timedelta(minutes=settings.password_reset_minutes),
                client_address=client_address,
            )
        )
        audit.record(
            session,
            clock=clock,
            actor="anonymous",
            action="account.password_reset_requested",
            target=f"account:{account.username}",
            client_address=client_address,
        )
        links.append(ResetLink(account=account, url=f"{settings.issuer}{RESET_PATH}?token={token}"))
    session.flush()
    return links


def _retire_links(session: Session, account: Account, *, now: datetime) -> None:
    session.execute(
        update(PasswordReset)
        .where(PasswordReset.account_id == account.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


def find_valid(session: Session, clock: Clock, token: str) -> PasswordReset | None:
    """The unused, unexpired reset of ``token`` whose official can still sign in."""
    if not token or len(token) > 128:
        return None
    reset = session.scalar(select(PasswordReset).where(PasswordReset.token_digest == digest(token)))
    if reset is None or reset.used_at is not None or reset.expires_at <= clock.now():
        return None
    account = session.get(Account, reset.account_id)
    return reset if account is not None and account.is_active else None


def complete_reset(
    *,
    session: Session,
    clock: Clock,
    passwords: PasswordHasher,
    reset: PasswordReset,
    new_password: str,
    client_address: str | None,
) -> tuple[Account, int]:
    """Set the new password (the caller checked the policy), use the link up, end every
    session of the official with back-channel logout; returns the account and the number of
    logout notices queued (wake the delivery worker after the commit)."""
    account = session.get(Account, reset.account_id)
    assert account is not None
    _retire_links(session, account, now=clock.now())
    _, queued = accounts.change_password(
        session=session,
        clock=clock,
        passwords=passwords,
        account=account,
        new_password=new_password,
        current_session=None,
        action="account.password_reset",
        client_address=client_address,
    )
    return account, queued


def reset_message(
    link: ResetLink,
    *,
    mail: MailSettings,
    translations: dict[str, Translations],
    settings: Settings,
    now: datetime,
) -> EmailMessage:
    """The bilingual e-mail carrying ``link`` (Vietnamese first, core.mail)."""
    account = link.account
    assert account.email is not None
    return compose_bilingual(
        settings=mail,
        translations=translations,
        recipient=account.email,
        subject=MAIL_SUBJECT,
        body=MAIL_BODY,
        values={
            "name": account.full_name or account.username,
            "username": account.username,
            "url": link.url,
            "expires": vietnam_time(now + timedelta(minutes=settings.password_reset_minutes)),
        },
        now=now,
    )
