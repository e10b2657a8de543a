"""The SQL a block of code sends, for tests that pin how many statements a path costs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, event


@contextlib.contextmanager
def statements_sent(engine: Engine) -> Iterator[list[str]]:
    """Collects the text of every statement ``engine`` sends inside the block."""
    statements: list[str] = []

    def collect(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", collect)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", collect)
