"""SQLite ``SELECT ... FOR UPDATE`` takes the database write lock (PITFALLS: SQLite has no row
locks), so every read-check-write written with ``with_for_update`` — SCIM If-Match, certificate
request approval, revocation, CRL numbers — is atomic on the embedded default too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db import make_engine, make_session_factory, transaction


class _Base(DeclarativeBase):
    pass


class _Row(_Base):
    __tablename__ = "lock_probe"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


@pytest.fixture
def factory(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    _Base.metadata.create_all(engine)
    with transaction(make_session_factory(engine)) as session:
        session.add(_Row(id=1, name="a"))
    yield make_session_factory(engine), tmp_path / "lock.db"
    engine.dispose()


def _other_writer_is_locked_out(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return True
    else:
        other.execute("ROLLBACK")
        return False
    finally:
        other.close()


def test_select_for_update_holds_the_write_lock_until_commit(factory):
    sessions, path = factory
    with transaction(sessions) as session:
        session.scalar(select(_Row).where(_Row.id == 1).with_for_update())
        assert _other_writer_is_locked_out(path)
        session.get(_Row, 1, with_for_update=True)  # already holding it: no second BEGIN
    assert not _other_writer_is_locked_out(path)


def test_plain_reads_take_no_lock(factory):
    sessions, path = factory
    with transaction(sessions) as session:
        assert session.get(_Row, 1) is not None
        assert not _other_writer_is_locked_out(path)


def test_a_refused_check_rolls_the_lock_back(factory):
    sessions, path = factory
    with pytest.raises(LookupError), transaction(sessions) as session:
        session.get(_Row, 1, with_for_update=True)
        raise LookupError("the version did not match")
    assert not _other_writer_is_locked_out(path)
