"""The Alembic migrations (CONVENTIONS §11): an empty database upgrades to head on SQLite and
PostgreSQL, the schema it makes is the one the models describe, and upgrading again changes
nothing."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

import ca_admin.models  # noqa: F401  (registers the ca_* tables on Base.metadata)
import core.audit
import core.audit_checkpoints
import idp.models  # noqa: F401  (registers the idp_* tables on Base.metadata)
from commune_sso.cli import app
from commune_sso.database import alembic_config, upgrade
from core.db import Base, make_engine
from tests.cli_runner import cli_env
from tests.conftest import POSTGRES_URL, _admin_dsn

_database_numbers = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    if POSTGRES_URL is None:
        pytest.skip("COMMUNE_SSO_TEST_POSTGRES_URL is not set")
    name = f"sso_empty_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    built = make_engine(empty_database_url)
    yield built
    built.dispose()


def head_revision(database_url: str) -> str:
    heads = ScriptDirectory.from_config(alembic_config(database_url)).get_heads()
    assert len(heads) == 1, f"the migrations have several heads: {heads}"
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def snapshot(engine: Engine) -> dict[str, Any]:
    """Every table with its columns and rows: what a no-op upgrade must leave unchanged."""
    result: dict[str, Any] = {}
    inspector = inspect(engine)
    with engine.connect() as connection:
        for table in sorted(inspector.get_table_names()):
            columns = [c["name"] for c in inspector.get_columns(table)]
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
            result[table] = (columns, sorted(tuple(map(str, row)) for row in rows))
    return result


def test_empty_database_upgrades_to_head(empty_database_url: str, engine: Engine) -> None:
    assert inspect(engine).get_table_names() == []

    upgrade(empty_database_url)

    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert tables - set(Base.metadata.tables) == {"alembic_version"}
    assert current_revision(engine) == head_revision(empty_database_url)


def _made_on(dialect: str) -> Any:
    """Alembic's include_object: an index the models declare for one database only
    (``Index(...).ddl_if(dialect=...)``, e.g. a PostgreSQL trigram index) is compared there only."""

    def include(item: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        condition = getattr(item, "_ddl_if", None)
        return reflected or condition is None or condition.dialect in (None, dialect)

    return include


def test_models_match_migrations(empty_database_url: str, engine: Engine) -> None:
    upgrade(empty_database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_object": _made_on(engine.dialect.name),
            },
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], "models and migrations differ: write a migration"


def test_upgrade_seeds_the_audit_chain_head(empty_database_url: str, engine: Engine) -> None:
    upgrade(empty_database_url)
    head = core.audit.AuditChainHead.__table__
    with engine.connect() as connection:
        rows = connection.execute(
            select(head.c.id, head.c.last_seq, head.c.last_hash, head.c.last_prev_hash)
        ).all()
    genesis = core.audit.GENESIS_HASH
    assert [tuple(row) for row in rows] == [(1, 0, genesis, genesis)]


def test_db_upgrade_command_twice_is_a_no_op(
    empty_database_url: str, engine: Engine, tmp_path: Path
) -> None:
    env = cli_env(var_dir=tmp_path / "var", database_url=empty_database_url)
    runner = CliRunner()

    first = runner.invoke(app, ["db", "upgrade"], env=env)
    assert first.exit_code == 0, first.output
    assert "head" in first.stdout
    after_first = snapshot(engine)
    assert current_revision(engine) == head_revision(empty_database_url)

    second = runner.invoke(app, ["db", "upgrade"], env=env)
    assert second.exit_code == 0, second.output
    assert snapshot(engine) == after_first
