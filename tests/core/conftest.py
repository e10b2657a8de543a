"""Real databases for the core tests: a SQLite file always, PostgreSQL when a URL is given.

Set COMMUNE_SSO_TEST_POSTGRES_URL (e.g. ``postgresql+psycopg://postgres@/postgres?host=/tmp``)
to run the PostgreSQL variants; each test then gets a schema of its own, dropped afterwards, so
runs never see each other's tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.clock import FixedClock
from core.db import Base, make_engine, make_session_factory, transaction

POSTGRES_URL_ENV = "COMMUNE_SSO_TEST_POSTGRES_URL"
AUDIT_TABLES = [audit.AuditEntry.__table__, audit.AuditChainHead.__table__]


def _postgres_engine(url: str, schema: str) -> Engine:
    engine = make_engine(url, pool_size=5)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()

    @event.listens_for(engine, "connect")
    def _use_schema(dbapi_connection: Any, _record: Any) -> None:
        # SET outside a transaction so it lasts for the whole connection.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f'SET search_path TO "{schema}"')
        dbapi_connection.autocommit = autocommit

    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def audit_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine with only the audit tables, on each backend in turn."""
    schema = None
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    else:
        url = os.environ.get(POSTGRES_URL_ENV)
        if not url:
            pytest.skip(f"set {POSTGRES_URL_ENV} to run on PostgreSQL")
        schema = f"test_audit_{uuid.uuid4().hex[:12]}"
        engine = _postgres_engine(url, schema)
    Base.metadata.create_all(engine, tables=AUDIT_TABLES)
    try:
        yield engine
    finally:
        Base.metadata.drop_all(engine, tables=AUDIT_TABLES)
        if schema is not None:
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def audit_sessions(audit_engine: Engine) -> sessionmaker[Session]:
    """A session factory with the audit writer installed and the chain head seeded."""
    factory = make_session_factory(audit_engine)
    audit.install(factory)
    with transaction(factory) as session:
        audit.ensure_chain_head(session)
    return factory


@pytest.fixture
def audit_clock() -> FixedClock:
    return FixedClock()
