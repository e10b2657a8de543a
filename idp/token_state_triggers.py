"""Triggers that record every change a cached token check depends on (idp/token_state.py).

Userinfo and introspection answer from a per-worker cache of grants, accounts and revoked
access tokens. Whatever writes to the tables below (a request on any worker or host, the CLI,
an import, SQL an operator types) bumps a version counter, ``idp_token_state``, and appends
what changed to ``idp_token_state_change``, in the same transaction. Workers read the counter
every half second, and on PostgreSQL also wake on a notification sent at commit, and forget
the entries that changed.

The counter orders the changes by commit: a worker that reads version ``v`` has every change
up to ``v`` committed and visible, so reading the change rows ``> last seen`` never skips a
change committed late by a slower transaction (which a sequence would). On PostgreSQL that
needs the counter's row lock, taken by a *deferred* constraint trigger, that is at commit,
after every other lock of the transaction: the lock is held for the commit only, and as it is
always the last lock taken, it cannot close a deadlock cycle. SQLite runs one writer at a
time, so plain row triggers suffice there.

A migration that rebuilds one of these tables on SQLite (Alembic's batch mode copies the
table) drops its triggers: it must call :func:`create_triggers` again
(tests/idp/test_token_state.py checks that every watched change still reaches the feed).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

VERSION_TABLE = "idp_token_state"
CHANGE_TABLE = "idp_token_state_change"
NOTIFY_CHANNEL = "idp_token_state"
_FUNCTION = "idp_token_state_changed"
# A transaction-local setting: the version this transaction's commit took (one bump each).
_VERSION_SETTING = "commune_sso.token_state_version"

# What the cache forgets for each kind of change (idp/token_state.py applies them).
GRANT = "grant"  # key: grant_id
ACCOUNT = "account"  # key: account id (status, claims, profile)
DIRECTORY = "directory"  # a unit or agency renamed: every cached userinfo body
ACCESS_TOKEN = "access_token"  # key: jti of a revoked access token
CLIENT = "client"  # key: client_id (secret rotated, client removed)


@dataclass(frozen=True)
class Watch:
    """Changes to one table that a cached token check depends on."""

    table: str
    kind: str
    key_column: str
    insert: bool = False
    delete: bool = False
    # An UPDATE counts when one of these columns changes; () means any UPDATE.
    update_columns: tuple[str, ...] | None = ()


WATCHES = (
    # Revoked (sign-out, RFC 7009, code or refresh reuse, account disabled, client removed).
    Watch(
        "idp_grant",
        GRANT,
        "grant_id",
        delete=True,
        update_columns=("revoked_at", "expires_at", "account_id"),
    ),
    # Disabled or deleted, and every claim userinfo releases from the account row.
    Watch(
        "idp_account",
        ACCOUNT,
        "id",
        delete=True,
        update_columns=(
            "status",
            "subject",
            "username",
            "full_name",
            "email",
            "email_verified",
            "phone",
            "updated_at",
        ),
    ),
    # The unit, agency, position and citizen ID claims.
    Watch(
        "idp_account_profile",
        ACCOUNT,
        "account_id",
        insert=True,
        delete=True,
        update_columns=("unit_id", "agency_id", "position", "citizen_id", "deleted_at"),
    ),
    Watch(
        "idp_unit",
        DIRECTORY,
        "id",
        insert=True,
        update_columns=("code", "name", "level", "province_code"),
    ),
    Watch("idp_agency", DIRECTORY, "id", delete=True, update_columns=("name",)),
    Watch("idp_revoked_access_token", ACCESS_TOKEN, "jti", insert=True, update_columns=None),
    # Introspection authenticates resource servers from the client cache.
    Watch("idp_client", CLIENT, "client_id", delete=True),
)


def trigger_names(watch: Watch) -> list[tuple[str, str]]:
    """(trigger name, event) pairs of one watch."""
    events = []
    if watch.insert:
        events.append("insert")
    if watch.update_columns is not None:
        events.append("update")
    if watch.delete:
        events.append("delete")
    return [(f"{watch.table}_token_state_{event}", event) for event in events]


def _changed_condition(columns: tuple[str, ...], *, differs: str) -> str:
    return " OR ".join(f"OLD.{column} {differs} NEW.{column}" for column in columns)


def _event_and_condition(watch: Watch, event: str, *, differs: str) -> tuple[str, str]:
    """``AFTER <event>`` and the ``WHEN (...)`` clause (or "") of one trigger."""
    columns = watch.update_columns or ()
    if event != "update":
        return event.upper(), ""
    if not columns:
        return "UPDATE", ""
    return (
        f"UPDATE OF {', '.join(columns)}",
        f"WHEN ({_changed_condition(columns, differs=differs)}) ",
    )


def _postgresql_trigger(watch: Watch, name: str, event: str) -> str:
    spec, when = _event_and_condition(watch, event, differs="IS DISTINCT FROM")
    return (
        f"CREATE CONSTRAINT TRIGGER {name} AFTER {spec} ON {watch.table} "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        f"{when}EXECUTE FUNCTION {_FUNCTION}('{watch.kind}', '{watch.key_column}')"
    )


# Runs at commit (deferred), once per changed row: the first call of a transaction bumps the
# counter (taking its row lock until the commit ends) and queues the notification, which
# PostgreSQL delivers only if and when the transaction commits.
_POSTGRESQL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    taken bigint := nullif(current_setting('{_VERSION_SETTING}', true), '')::bigint;
    changed jsonb;
BEGIN
    IF taken IS NULL THEN
        UPDATE {VERSION_TABLE} SET version = version + 1 WHERE id = 1 RETURNING version INTO taken;
        PERFORM set_config('{_VERSION_SETTING}', taken::text, true);
        PERFORM pg_notify('{NOTIFY_CHANNEL}', taken::text);
    END IF;
    IF TG_OP = 'DELETE' THEN changed := to_jsonb(OLD); ELSE changed := to_jsonb(NEW); END IF;
    INSERT INTO {CHANGE_TABLE} (version, kind, key, changed_at)
    VALUES (taken, TG_ARGV[0], coalesce(changed ->> TG_ARGV[1], ''),
            floor(extract(epoch FROM clock_timestamp()))::bigint)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$
"""  # noqa: S608 (constants of this module only)


def _sqlite_trigger(watch: Watch, name: str, event: str) -> str:
    row = "OLD" if event == "delete" else "NEW"
    spec, when = _event_and_condition(watch, event, differs="IS NOT")
    return (
        # Constants of this module only (table, column and kind names of WATCHES).
        f"CREATE TRIGGER {name} AFTER {spec} ON {watch.table} FOR EACH ROW {when}BEGIN "  # noqa: S608
        f"UPDATE {VERSION_TABLE} SET version = version + 1 WHERE id = 1; "
        f"INSERT OR IGNORE INTO {CHANGE_TABLE} (version, kind, key, changed_at) "
        f"SELECT version, '{watch.kind}', CAST({row}.{watch.key_column} AS TEXT), "
        f"CAST(strftime('%s', 'now') AS INTEGER) FROM {VERSION_TABLE} WHERE id = 1; "
        "END"
    )


def create_triggers(connection: Connection) -> None:
    """Create the counter's row, the function and the triggers (migrations call this)."""
    connection.execute(text("INSERT INTO idp_token_state (id, version) VALUES (1, 0)"))
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        connection.execute(text(_POSTGRESQL_FUNCTION))
    for watch in WATCHES:
        for name, event in trigger_names(watch):
            build = _postgresql_trigger if postgresql else _sqlite_trigger
            connection.execute(text(build(watch, name, event)))


def restore_sqlite_triggers(connection: Connection) -> None:
    """Create again every SQLite trigger a migration lost: an Alembic batch that copies a
    table on SQLite (0024 did for idp_unit) leaves it without its triggers."""
    if connection.dialect.name != "sqlite":
        return
    for watch in WATCHES:
        for name, event in trigger_names(watch):
            connection.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
            connection.execute(text(_sqlite_trigger(watch, name, event)))


def drop_triggers(connection: Connection) -> None:
    postgresql = connection.dialect.name == "postgresql"
    for watch in WATCHES:
        for name, _event in trigger_names(watch):
            on = f" ON {watch.table}" if postgresql else ""
            connection.execute(text(f"DROP TRIGGER IF EXISTS {name}{on}"))
    if postgresql:
        connection.execute(text(f"DROP FUNCTION IF EXISTS {_FUNCTION}()"))
