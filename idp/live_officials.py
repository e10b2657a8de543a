"""How many live (not deleted) officials each unit holds, kept by the database itself.

SCIM answers every page with ``totalResults`` (RFC 7644 §3.4.2). Counting a province's 35,200
officials read 35,200 index entries on every request (2 ms on SQLite, 3.6 ms on PostgreSQL: the
largest part of a page). Triggers on ``idp_account_profile`` keep a count per unit instead, so
that every writer keeps it right (the import, SCIM, the admin pages, a unit merge, SQL an
operator types) and a total reads one row per unit of the caller's reach.

- SQLite: row triggers add to ``idp_unit_live_officials`` directly (one writer at a time).
- PostgreSQL: writers adding to one counter row would wait for each other, and two imports
  touching units in different orders would deadlock. Statement triggers append each
  statement's per-unit changes to ``idp_unit_live_officials_change`` instead (an insert locks
  no existing row); a total adds them to the base counts, and :func:`fold_changes` moves them
  into the base counts now and then (one folder at a time), which only keeps the sum short.

Officials attached to no unit are counted under unit key 0 (no unit has id 0). A migration
that rebuilds ``idp_account_profile`` on SQLite (Alembic's batch mode copies the table) drops
its triggers: it must call :func:`create_triggers` again (tests/idp/test_live_officials.py
fails at head without them).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction

TRIGGERS = (
    "idp_live_officials_inserted",
    "idp_live_officials_updated",
    "idp_live_officials_deleted",
)
# pg_try_advisory_xact_lock key of the folder ("live" in ASCII): one fold at a time, so
# that only one transaction ever writes the base rows on PostgreSQL.
_FOLD_LOCK = 0x6C697665
# Every serving process folds this often: between folds a total sums one change row per unit
# and writing statement, which stays short at any rate SCIM clients write.
FOLD_INTERVAL_SECONDS = 60.0
logger = logging.getLogger(__name__)

_SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER idp_live_officials_inserted AFTER INSERT ON idp_account_profile
    WHEN NEW.deleted_at IS NULL
    BEGIN
        INSERT INTO idp_unit_live_officials (unit_key, live) VALUES (coalesce(NEW.unit_id, 0), 1)
        ON CONFLICT (unit_key) DO UPDATE SET live = live + 1;
    END
    """,
    """
    CREATE TRIGGER idp_live_officials_updated
    AFTER UPDATE OF unit_id, deleted_at ON idp_account_profile
    BEGIN
        UPDATE idp_unit_live_officials SET live = live - 1
        WHERE OLD.deleted_at IS NULL AND unit_key = coalesce(OLD.unit_id, 0);
        INSERT INTO idp_unit_live_officials (unit_key, live)
        SELECT coalesce(NEW.unit_id, 0), 1 WHERE NEW.deleted_at IS NULL
        ON CONFLICT (unit_key) DO UPDATE SET live = live + 1;
    END
    """,
    """
    CREATE TRIGGER idp_live_officials_deleted AFTER DELETE ON idp_account_profile
    WHEN OLD.deleted_at IS NULL
    BEGIN
        UPDATE idp_unit_live_officials SET live = live - 1
        WHERE unit_key = coalesce(OLD.unit_id, 0);
    END
    """,
)

# Transition tables cannot go with a column list (AFTER UPDATE OF ...): every UPDATE runs the
# function, which appends nothing unless a unit or a deletion changed.
_POSTGRESQL_FUNCTIONS = {
    "idp_live_officials_inserted": """
        INSERT INTO idp_unit_live_officials_change (unit_key, change)
        SELECT coalesce(unit_id, 0), count(*) FROM new_rows WHERE deleted_at IS NULL
        GROUP BY 1
    """,
    "idp_live_officials_updated": """
        INSERT INTO idp_unit_live_officials_change (unit_key, change)
        SELECT unit_key, sum(change) FROM (
            SELECT coalesce(unit_id, 0) AS unit_key, 1 AS change
            FROM new_rows WHERE deleted_at IS NULL
            UNION ALL
            SELECT coalesce(unit_id, 0), -1 FROM old_rows WHERE deleted_at IS NULL
        ) AS moved
        GROUP BY unit_key HAVING sum(change) <> 0
    """,
    "idp_live_officials_deleted": """
        INSERT INTO idp_unit_live_officials_change (unit_key, change)
        SELECT coalesce(unit_id, 0), -count(*) FROM old_rows WHERE deleted_at IS NULL
        GROUP BY 1
    """,
}
_POSTGRESQL_EVENTS = {
    "idp_live_officials_inserted": (
        "INSERT ON idp_account_profile REFERENCING NEW TABLE AS new_rows"
    ),
    "idp_live_officials_updated": (
        "UPDATE ON idp_account_profile REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    ),
    "idp_live_officials_deleted": (
        "DELETE ON idp_account_profile REFERENCING OLD TABLE AS old_rows"
    ),
}


def create_triggers(connection: Connection) -> None:
    """Create the triggers (migrations call this) and count the officials already there."""
    if connection.dialect.name == "postgresql":
        for name, body in _POSTGRESQL_FUNCTIONS.items():
            connection.execute(
                text(
                    f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN {body}; RETURN NULL; END $$"
                )
            )
            connection.execute(
                text(
                    f"CREATE TRIGGER {name} AFTER {_POSTGRESQL_EVENTS[name]} "
                    f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
                )
            )
    else:
        for statement in _SQLITE_TRIGGERS:
            connection.execute(text(statement))
    recount(connection)


def drop_triggers(connection: Connection) -> None:
    for name in TRIGGERS:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"DROP TRIGGER IF EXISTS {name} ON idp_account_profile"))
            connection.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))
        else:
            connection.execute(text(f"DROP TRIGGER IF EXISTS {name}"))


def recount(connection: Connection) -> None:
    """Count from the profiles themselves (after the triggers were missing)."""
    connection.execute(text("DELETE FROM idp_unit_live_officials_change"))
    connection.execute(text("DELETE FROM idp_unit_live_officials"))
    connection.execute(
        text(
            "INSERT INTO idp_unit_live_officials (unit_key, live) "
            "SELECT coalesce(unit_id, 0), count(*) FROM idp_account_profile "
            "WHERE deleted_at IS NULL GROUP BY coalesce(unit_id, 0)"
        )
    )


_FOLD = text(
    """
    WITH moved AS (DELETE FROM idp_unit_live_officials_change RETURNING unit_key, change)
    INSERT INTO idp_unit_live_officials (unit_key, live)
    SELECT unit_key, sum(change) FROM moved GROUP BY unit_key
    ON CONFLICT (unit_key) DO UPDATE SET live = idp_unit_live_officials.live + excluded.live
    """
)


def fold_changes(session_factory: sessionmaker[Session]) -> int:
    """Move the appended changes into the base counts (PostgreSQL; nothing to do on SQLite).
    Returns how many units' counts changed; 0 when another folder holds the lock."""
    with transaction(session_factory) as session:
        connection = session.connection()
        if connection.dialect.name != "postgresql":
            return 0
        locked = connection.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _FOLD_LOCK}
        )
        if not locked:
            return 0
        return connection.execute(_FOLD).rowcount


async def fold_periodically(
    session_factory: sessionmaker[Session], interval: float = FOLD_INTERVAL_SECONDS
) -> None:
    """:func:`fold_changes` every ``interval`` seconds until cancelled, in a thread; a failure
    (the database away) is logged and retried at the next interval."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(fold_changes, session_factory)
        except SQLAlchemyError as error:
            logger.warning("folding the live-officials counts failed: %s", error)


def start_folding(session_factory: sessionmaker[Session]) -> asyncio.Task[None]:
    return asyncio.create_task(fold_periodically(session_factory), name="live-officials-fold")
