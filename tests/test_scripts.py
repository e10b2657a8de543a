"""The repository's shell entry points: executable, bash, and syntactically valid.

CI runs ``bash .ci/run``, which execs ``./scripts/test``: a lost executable bit or a syntax
error there fails every run, so these cheap checks catch it first. (scripts/pg-throwaway itself
is exercised by every test run that uses PostgreSQL; its port reservation is tested here.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests import restartable_postgres
from tests.restartable_postgres import RestartablePostgres

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = [ROOT / ".ci" / "run", *sorted((ROOT / "scripts").iterdir())]
BASH_SHEBANGS = ("#!/usr/bin/env bash", "#!/bin/bash")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_is_executable_bash(script: Path) -> None:
    assert script.is_file()
    assert os.access(script, os.X_OK), f"{script} is not executable (chmod +x)"
    first_line = script.read_text(encoding="utf-8").splitlines()[0].strip()
    assert first_line in BASH_SHEBANGS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_parses(script: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run(
        [bash, "-n", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr


def test_ci_runs_the_readme_test_command() -> None:
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "exec ./scripts/test" in text


@pytest.mark.skipif(not restartable_postgres.available(), reason="needs PostgreSQL server binaries")
def test_a_crashed_throwaway_cluster_keeps_its_port_until_it_is_stopped() -> None:
    """A test that crashes its cluster and starts it again must find its port free: another
    cluster started meanwhile (another pytest worker) takes the next one instead."""
    crashed = RestartablePostgres("pg-port-a-")
    try:
        crashed.crash()
        other = RestartablePostgres("pg-port-b-")
        try:
            assert make_url(other.url).port != make_url(crashed.url).port
            crashed.start_again()
            libpq_url = make_url(crashed.url).set(drivername="postgresql")
            with psycopg.connect(libpq_url.render_as_string()) as connection:
                assert connection.execute("SELECT 1").fetchone() == (1,)
        finally:
            other.remove()
    finally:
        crashed.remove()
    # Stopping gives the port back.
    reservations = Path(os.environ.get("TMPDIR", "/tmp")) / "pg-throwaway-ports"
    assert not (reservations / str(make_url(crashed.url).port)).exists()
