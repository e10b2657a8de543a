"""Request IDs seen, in the database (SAML Profiles §4.1.4.5 and the issue: a replay cache
shared by all workers and hosts). One INSERT that does nothing on a conflict decides, so of two
hosts presenting the same request at once exactly one wins, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.clock import Clock
from core.db import is_postgresql
from idp.models import SamlRequestId


def first_use(
    *, session: Session, clock: Clock, sp_pk: int, request_id: str, keep_until: datetime
) -> bool:
    """True the first time ``request_id`` comes from this SP; remembered until ``keep_until``
    (after which its IssueInstant is refused as too old anyway)."""
    now = clock.now()
    # Indexed; what has expired can never be replayed successfully, so forget it.
    session.execute(delete(SamlRequestId).where(SamlRequestId.expires_at < now))
    dialect_insert = postgresql.insert if is_postgresql(session) else sqlite.insert
    # RETURNING rather than rowcount: through the ORM session psycopg reports -1 for an
    # INSERT ... ON CONFLICT DO NOTHING whatever it did.
    inserted = session.execute(
        dialect_insert(SamlRequestId)
        .values(sp_pk=sp_pk, request_id=request_id, expires_at=keep_until)
        .on_conflict_do_nothing(index_elements=["sp_pk", "request_id"])
        .returning(SamlRequestId.id)
    ).scalar_one_or_none()
    return inserted is not None
