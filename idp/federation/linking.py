"""Which official an upstream sign-in is: only the claim the administrator chose, read from
the verified ID token, matched exactly against one official's record.

E-mail is never a link (issue 17): an address is reassigned, shared by a unit, or set by the
user at many providers, and ``email_verified`` means something different at each of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import Account, AccountProfile

# claim name -> how it is matched. "citizen_id": the CCCD in the official's profile (a national
# provider's identity claim); "preferred_username": our username (another commune-sso of the
# same directory).
LINK_CLAIMS = ("citizen_id", "preferred_username")
REFUSED_LINK_CLAIMS = ("email", "email_verified")
MAX_CLAIM_LENGTH = 256


def linked_account(
    session: Session, *, link_claim: str, claims: Mapping[str, Any]
) -> Account | None:
    """The official whose record holds the claim's value; None when no one (or the claim is
    missing, empty or not text). Soft-deleted officials are nobody."""
    value = claims.get(link_claim)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CLAIM_LENGTH:
        return None
    if link_claim == "citizen_id":
        statement = (
            select(Account)
            .join(AccountProfile, AccountProfile.account_id == Account.id)
            .where(AccountProfile.citizen_id == value.strip(), AccountProfile.deleted_at.is_(None))
        )
    elif link_claim == "preferred_username":
        statement = (
            select(Account)
            .outerjoin(AccountProfile, AccountProfile.account_id == Account.id)
            .where(Account.username == value.strip().lower(), AccountProfile.deleted_at.is_(None))
        )
    else:
        return None
    return session.scalar(statement)
