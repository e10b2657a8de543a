"""A throwaway PostgreSQL cluster for the benchmarks, started by the project's own script."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_THROWAWAY = REPO / "scripts" / "pg-throwaway"
INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Let a cleanup finish even if Ctrl-C or SIGTERM comes again while it runs."""
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in INTERRUPTS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def throwaway_postgres(prefix: str) -> Iterator[tuple[str, Path]]:
    """A durable (fsync on) PostgreSQL cluster; yields its URL and directory, then removes it."""
    if not os.access(PG_THROWAWAY, os.X_OK):
        raise SystemExit(f"{PG_THROWAWAY} is missing or not executable")
    # Its own directory under /tmp: the postgres user must reach it, and socket paths are short.
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        started = subprocess.run(
            [str(PG_THROWAWAY), "start", "--durable", str(directory)],
            check=True,
            capture_output=True,
            text=True,
        )
        yield started.stdout.strip(), directory
    finally:
        with interrupts_ignored():
            subprocess.run([str(PG_THROWAWAY), "stop", str(directory)], check=False)
