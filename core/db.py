"""Database engine, session and declarative base shared by every package.

One ``MetaData`` with a naming convention so Alembic names constraints the same on SQLite and
PostgreSQL. Stores never commit: :func:`transaction` is the one place that does (CONVENTIONS §6).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    MetaData,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class _SQLiteCompilerWithTableHints(SQLiteCompiler):
    """SQLAlchemy's SQLite compiler drops ``with_hint(..., "sqlite")`` silently; SQLite has
    one table hint, ``INDEXED BY``, which the SCIM paging queries need while the planner has
    no statistics (a fresh or just-imported database: 30 ms instead of 4 ms per page)."""

    def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
        return text


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        # A busy timeout instead of immediate "database is locked" when two requests write.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        engine.dialect.statement_compiler = _SQLiteCompilerWithTableHints

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        event.listen(engine, "before_execute", _sqlite_write_lock_for_update)
        return engine
    # No pre-ping: it costs a round trip on every checkout, the largest single cost of a
    # token request. SQLAlchemy does the equivalent after the fact: the first statement on a
    # connection broken by a server restart raises a disconnect error (answered 503, see
    # is_database_unavailable), which invalidates every connection the pool then held, so
    # the next request reconnects (tests/commune_sso/test_database_outage.py).
    # connect_timeout: a database host that drops packets must give a 503 in seconds, not
    # hang each request for the kernel's TCP timeout (libpq waits forever by default).
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
    )


CONNECT_TIMEOUT_SECONDS = 5


def _sqlite_write_lock_for_update(
    connection: Connection, statement: Any, *_args: Any, **_kwargs: Any
) -> None:
    """Give ``SELECT ... FOR UPDATE`` its meaning on SQLite: take the write lock first.

    SQLite has no row locks and SQLAlchemy drops ``FOR UPDATE`` from its SQL; pysqlite opens
    a (deferred) transaction only before the first INSERT/UPDATE/DELETE, so a read-check-write
    such as an If-Match check (RFC 7644 §3.14) or a request approval would read in autocommit
    and two writers would both pass the check (PITFALLS: "SQLite has no SELECT ... FOR
    UPDATE"). ``BEGIN IMMEDIATE`` takes the database write lock before the read, waiting up to
    the busy timeout for another writer, so the check sees the last committed version and no
    one can change it before our commit. Reads that lock nothing keep running concurrently
    (WAL). When the transaction is already open, this connection has already written, so it
    already holds the write lock; a connection in autocommit (isolation_level None) is left
    alone.
    """
    if getattr(statement, "_for_update_arg", None) is None:
        return
    dbapi_connection = connection.connection.dbapi_connection
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    if dbapi_connection.isolation_level is None or dbapi_connection.in_transaction:
        return
    dbapi_connection.execute("BEGIN IMMEDIATE")


# SQLite reports missing tables and syntax errors as OperationalError too; only these mean
# the database cannot be used right now (sqlite3 error messages, stable across versions).
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
    "attempt to write a readonly database",
)


def is_database_unavailable(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) says the database cannot be reached or used
    right now: connection refused or lost, pool exhausted, server shutting down. The caller
    answers 503 with Retry-After; integrity and programming errors are bugs or bad input and
    stay what they are.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError):
            if current.connection_invalidated:
                return True
            if isinstance(current.orig, sqlite3.Error):
                text = str(current.orig).lower()
                return isinstance(current.orig, sqlite3.OperationalError) and any(
                    text.startswith(message) for message in _SQLITE_UNAVAILABLE
                )
            if isinstance(current, sa_exc.OperationalError | sa_exc.InterfaceError):
                return True
        if isinstance(current, sa_exc.DisconnectionError | sa_exc.TimeoutError):
            return True  # TimeoutError: no pooled connection free within pool_timeout
        if isinstance(current, psycopg.OperationalError | psycopg.InterfaceError):
            return True  # raised by psycopg directly, outside a SQLAlchemy call
        current = current.__cause__ or current.__context__
    return False


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit if the block finishes, roll back if it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
