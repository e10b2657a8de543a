"""A PostgreSQL cluster of a test's own, which the test may crash and start again.

The suite's shared cluster must never be stopped, so tests of database outages start their
own through the project's script. It is durable (``--durable``: fsync and synchronous commit
on): an immediate stop is a crash, and with asynchronous commit the last transactions before
it (a client just registered, the migrations just run) could be lost, which would fail the
test for a reason of the test's own making.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_THROWAWAY = Path(__file__).resolve().parent.parent / "scripts" / "pg-throwaway"


def available() -> bool:
    return Path("/usr/lib/postgresql").exists() or shutil.which("pg_ctl") is not None


class RestartablePostgres:
    def __init__(self, prefix: str) -> None:
        # Under /tmp, not pytest's tmp dir: the postgres user must be able to enter every
        # parent, and Unix socket paths are short.
        self.directory = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.url = subprocess.run(
            [str(PG_THROWAWAY), "start", "--durable", str(self.directory)],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout.strip()

    def _pg_ctl(self, *args: str) -> None:
        bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        pg_ctl = str(bindirs[-1] / "pg_ctl") if bindirs else shutil.which("pg_ctl") or "pg_ctl"
        command = [pg_ctl, "-D", "data", "-s", "-w", *args]
        if os.geteuid() == 0:  # as the script does: PostgreSQL refuses root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(
            command,
            cwd=self.directory,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )

    def crash(self) -> None:
        """Stop as a crash or a failover does: connections cut, no shutdown checkpoint."""
        self._pg_ctl("-m", "immediate", "stop")

    def start_again(self) -> None:
        self._pg_ctl("-l", "restart.log", "start")

    def remove(self) -> None:
        subprocess.run(
            [str(PG_THROWAWAY), "stop", str(self.directory)], capture_output=True, timeout=60
        )
