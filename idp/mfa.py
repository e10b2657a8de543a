"""An official's second factor: a TOTP authenticator (idp.totp) and single-use recovery codes.

Enrolment has two steps: ``start_enrolment`` stores a new secret (sealed) that is not yet asked
for at login; ``confirm_enrolment`` checks a code from the app, marks it confirmed and returns
ten recovery codes, shown once (only their SHA-256 digests are kept: they are random values,
PITFALLS: never a password hash for those). Accepting a code is a conditional UPDATE (the step
must be newer than the last one accepted; a recovery code must be unused), so of two concurrent
submissions of the same code only one succeeds.

Service functions never commit and audit in the caller's transaction (CONVENTIONS §6).
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.opaque_tokens import digest
from idp import totp
from idp.models import Account, RecoveryCode, TotpCredential

RECOVERY_CODE_COUNT = 10
# 10 characters of a 31-letter alphabet without look-alikes (0/o, 1/l/i): ~50 bits, typed from
# paper as "xxxxx-xxxxx"; guessing is bounded by the login throttle.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_CODE_LENGTH = 10
_KDF_INFO = b"commune-sso/idp/totp-secret/v1"
_NONCE_BYTES = 12


class SealError(Exception):
    """The sealed secret does not open (server secret changed, row tampered with)."""


def _key(server_secret: bytes) -> bytes:
    # HKDF-SHA256 (RFC 5869), domain-separated from the server secret's other uses.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO).derive(
        server_secret
    )


def _aad(account_id: int) -> bytes:
    # Bound to the account: a sealed secret copied to another account's row does not open.
    return f"account:{account_id}".encode("ascii")


def seal_secret(secret: bytes, *, server_secret: bytes, account_id: int) -> str:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_key(server_secret)).encrypt(nonce, secret, _aad(account_id))
    return base64.b64encode(nonce + sealed).decode("ascii")


def open_secret(blob: str, *, server_secret: bytes, account_id: int) -> bytes:
    try:
        raw = base64.b64decode(blob.encode("ascii"), validate=True)
        return AESGCM(_key(server_secret)).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(account_id)
        )
    except (ValueError, InvalidTag) as error:
        raise SealError("the TOTP secret does not open") from error


# Read at every sign-in: built once (issue 15).
_CREDENTIAL_OF = select(TotpCredential).where(TotpCredential.account_id == bindparam("account_id"))


def credential_of(session: Session, account: Account) -> TotpCredential | None:
    return session.scalar(_CREDENTIAL_OF, {"account_id": account.id})


def has_totp(session: Session, account: Account) -> bool:
    credential = credential_of(session, account)
    return credential is not None and credential.confirmed_at is not None


@dataclass(frozen=True)
class PendingEnrolment:
    secret: bytes
    uri: str


def start_enrolment(
    *, session: Session, clock: Clock, server_secret: bytes, account: Account
) -> None:
    """Store a fresh, unconfirmed secret (replacing an unconfirmed one). Refused (no-op) when a
    confirmed authenticator exists: it must be turned off first."""
    credential = credential_of(session, account)
    if credential is not None and credential.confirmed_at is not None:
        return
    sealed = seal_secret(totp.new_secret(), server_secret=server_secret, account_id=account.id)
    if credential is None:
        session.add(
            TotpCredential(account_id=account.id, sealed_secret=sealed, created_at=clock.now())
        )
    else:
        credential.sealed_secret = sealed
        credential.created_at = clock.now()
        credential.last_used_step = None
    session.flush()


def pending_enrolment(
    *, session: Session, server_secret: bytes, account: Account, issuer_name: str
) -> PendingEnrolment | None:
    credential = credential_of(session, account)
    if credential is None or credential.confirmed_at is not None:
        return None
    secret = open_secret(
        credential.sealed_secret, server_secret=server_secret, account_id=account.id
    )
    return PendingEnrolment(
        secret=secret,
        uri=totp.provisioning_uri(secret, account_name=account.username, issuer=issuer_name),
    )


def _accept_step(session: Session, credential: TotpCredential, step: int) -> bool:
    """Record ``step`` as used unless it (or a later one) already was: replay-safe."""
    result = session.execute(
        update(TotpCredential)
        .where(
            TotpCredential.id == credential.id,
            or_(TotpCredential.last_used_step.is_(None), TotpCredential.last_used_step < step),
        )
        .values(last_used_step=step)
        .execution_options(synchronize_session=False)
    )
    accepted = int(getattr(result, "rowcount", 0) or 0) == 1
    if accepted:
        credential.last_used_step = step
    return accepted


class TotpOutcome(Enum):
    ACCEPTED = "accepted"
    # The right code of a step already used (RFC 6238 §5.2: accepted once only), e.g. the one
    # that confirmed the enrolment: the official waits for the next code, nothing is wrong.
    REPLAYED = "replayed"
    WRONG = "wrong"


def _check_code(
    session: Session, clock: Clock, server_secret: bytes, credential: TotpCredential, code: str
) -> TotpOutcome:
    secret = open_secret(
        credential.sealed_secret, server_secret=server_secret, account_id=credential.account_id
    )
    step = totp.code_step(secret, code, now=clock.now())
    if step is None:
        return TotpOutcome.WRONG
    # _accept_step also refuses a step another request has just used.
    if _accept_step(session, credential, step):
        return TotpOutcome.ACCEPTED
    return TotpOutcome.REPLAYED


def confirm_enrolment(
    *, session: Session, clock: Clock, server_secret: bytes, account: Account, code: str
) -> list[str] | None:
    """Turn TOTP on if ``code`` comes from the pending secret; returns the recovery codes
    (plaintext, to show once) or None if the code is wrong or nothing is pending."""
    credential = credential_of(session, account)
    if credential is None or credential.confirmed_at is not None:
        return None
    if _check_code(session, clock, server_secret, credential, code) is not TotpOutcome.ACCEPTED:
        return None
    credential.confirmed_at = clock.now()
    codes = _replace_recovery_codes(session=session, clock=clock, account=account)
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}",
        action="account.totp_enabled",
        target=f"account:{account.username}",
    )
    return codes


def verify_totp(
    *, session: Session, clock: Clock, server_secret: bytes, account: Account, code: str
) -> TotpOutcome:
    """A login's second step: the code of the confirmed authenticator, not replayed."""
    credential = credential_of(session, account)
    if credential is None or credential.confirmed_at is None:
        return TotpOutcome.WRONG
    return _check_code(session, clock, server_secret, credential, code)


def normalise_recovery_code(raw: str) -> str:
    return "".join(ch for ch in raw.lower() if ch not in " -\t")


def looks_like_recovery_code(raw: str) -> bool:
    code = normalise_recovery_code(raw)
    return len(code) == RECOVERY_CODE_LENGTH and all(ch in RECOVERY_ALPHABET for ch in code)


def _new_recovery_code() -> str:
    chars = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
    return f"{chars[:5]}-{chars[5:]}"


def _replace_recovery_codes(*, session: Session, clock: Clock, account: Account) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account.id))
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    now = clock.now()
    session.add_all(
        RecoveryCode(
            account_id=account.id,
            code_digest=digest(normalise_recovery_code(code)),
            created_at=now,
        )
        for code in codes
    )
    return codes


def use_recovery_code(*, session: Session, clock: Clock, account: Account, code: str) -> bool:
    """Accept an unused recovery code of ``account`` once, instead of a TOTP code (audited)."""
    if not looks_like_recovery_code(code) or not has_totp(session, account):
        return False
    result = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.account_id == account.id,
            RecoveryCode.code_digest == digest(normalise_recovery_code(code)),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return False
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}",
        action="account.recovery_code_used",
        target=f"account:{account.username}",
        details={"remaining": unused_recovery_codes(session, account)},
    )
    return True


def unused_recovery_codes(session: Session, account: Account) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.account_id == account.id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


def regenerate_recovery_codes(*, session: Session, clock: Clock, account: Account) -> list[str]:
    codes = _replace_recovery_codes(session=session, clock=clock, account=account)
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}",
        action="account.recovery_codes_regenerated",
        target=f"account:{account.username}",
    )
    return codes


def disable(*, session: Session, clock: Clock, actor: str, account: Account) -> bool:
    """Turn TOTP off (authenticator and recovery codes removed); False if it was not on."""
    credential = credential_of(session, account)
    if credential is None:
        return False
    was_confirmed = credential.confirmed_at is not None
    session.delete(credential)
    session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account.id))
    if was_confirmed:
        audit.record(
            session,
            clock=clock,
            actor=actor,
            action="account.totp_disabled",
            target=f"account:{account.username}",
        )
    return was_confirmed
