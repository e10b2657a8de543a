"""Single-use JWT ids, shared by every worker and host through the database.

A private_key_jwt client assertion (RFC 7523 §3, "the authorization server ... MAY ensure that
JWTs are not replayed by maintaining the set of used jti values") and a DPoP proof (RFC 9449
§11.1) are each accepted once. The id is recorded in the request's transaction under a
savepoint: a second request with the same id, on this worker or any other, collides on the
primary key (on PostgreSQL it waits for the first transaction and then fails), and is refused.
Each entry is kept until the JWT it names could no longer be accepted anyway.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.models import UsedJti

CLIENT_ASSERTION = "client_assertion"
DPOP_PROOF = "dpop_proof"
# Expired entries are deleted by about one use in this many (an indexed range delete), so the
# table stays as small as the number of JWTs still acceptable.
PRUNE_ONE_IN = 64


def replay_key(kind: str, issuer: str, jti: str) -> str:
    """The stored key: the jti is unique per issuer (the client, or the DPoP key), and only
    its digest is kept (fixed length, no raw input in the database)."""
    return hashlib.sha256(f"{kind}\x00{issuer}\x00{jti}".encode()).hexdigest()


def use_once(
    session: Session, *, kind: str, issuer: str, jti: str, keep_until: datetime, now: datetime
) -> bool:
    """Record the jti; False when it was recorded before (a replay)."""
    if secrets.randbelow(PRUNE_ONE_IN) == 0:
        session.execute(delete(UsedJti).where(UsedJti.expires_at < now))
    try:
        with session.begin_nested():
            session.add(UsedJti(key_digest=replay_key(kind, issuer, jti), expires_at=keep_until))
    except IntegrityError:
        return False
    return True
