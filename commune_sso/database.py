"""Schema upgrades through Alembic: the only way the schema is made (DESIGN)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


@functools.cache
def script_heads() -> frozenset[str]:
    """The head revision(s) of our migration scripts: read from the files once per process
    (they do not change under a running process; /readyz compares the database with it)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
