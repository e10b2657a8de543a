"""Single-use JWT ids, shared by every worker and host through the database.

A private_key_jwt client assertion (RFC 7523 §3, "the authorization server ... MAY ensure that
JWTs are not replayed by maintaining the set of used jti values") and a DPoP proof (RFC 9449
§11.1) are each accepted once. The id is recorded in the request's transaction by an
``INSERT ... ON CONFLICT DO NOTHING`` on its primary key: a second request with the same id, on
this worker or any other, inserts nothing (on PostgreSQL it waits for the first transaction and
then finds the row) and is refused. One statement, no savepoint: the ORM's add, flush and
savepoint were most of the cost of a DPoP request (bench/oidc_bench.py).
Each entry is kept until the JWT it names could no longer be accepted anyway.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from idp.models import UsedJti

CLIENT_ASSERTION = "client_assertion"
DPOP_PROOF = "dpop_proof"
REQUEST_OBJECT = "request_object"  # RFC 9101 request objects that carry a jti
# Expired entries are deleted by about one use in this many (an indexed range delete), so the
# table stays as small as the number of JWTs still acceptable.
PRUNE_ONE_IN = 64

_USED = cast(Table, UsedJti.__table__)


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
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # RETURNING says whether a row went in (psycopg reports no rowcount for this statement).
    recorded = session.execute(
        insert(_USED)
        .values(key_digest=replay_key(kind, issuer, jti), expires_at=keep_until)
        .on_conflict_do_nothing(index_elements=[_USED.c.key_digest])
        .returning(_USED.c.key_digest)
    ).scalar()
    return recorded is not None
