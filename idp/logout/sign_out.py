"""Ending every session of an official at once, for administrators ("sign out everywhere")."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from idp import sessions, token_store
from idp.logout import backchannel
from idp.models import Account


def sign_out_everywhere(*, session: Session, clock: Clock, actor: str, account: Account) -> int:
    """End every browser session of ``account``, revoke every grant (refresh tokens included)
    and tell the apps through back-channel logout (OpenID Back-Channel Logout 1.0 §2.5), all
    in the caller's transaction. Returns the number of sessions ended."""
    queued = backchannel.enqueue_for_account(
        session=session, clock=clock, account=account, reason="sign_out_everywhere"
    )
    ended = sessions.end_all_for_account(session=session, clock=clock, account=account)
    revoked = token_store.revoke_grants_of_account(
        session=session, clock=clock, account=account, reason="sign_out_everywhere"
    )
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="account.sign_out_everywhere",
        target=f"account:{account.username}",
        details={
            "sessions_ended": ended,
            "grants_revoked": revoked,
            "backchannel_deliveries": queued,
        },
    )
    return ended
