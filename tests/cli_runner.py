"""The ``commune-sso`` CLI run in-process for tests, with an environment of its own."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from commune_sso.cli import app
from core import audit
from core.clock import SystemClock
from core.db import make_engine, make_session_factory, transaction
from core.settings import Settings
from idp import sessions
from idp.models import Account, BrowserSession
from tests.conftest import ISSUER

KEY_PASSPHRASE = "test-key-passphrase-0123456789"
SECRET_KEY = "test-server-secret-0123456789abcdef"


def cli_env(
    *, var_dir: Path, database_url: str | None = None, key_dir: Path | None = None, **extra: str
) -> dict[str, str | None]:
    """Environment for one CLI run: ours only, whatever COMMUNE_SSO_* the caller's shell has."""
    env: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("COMMUNE_SSO_")
    }
    env["COMMUNE_SSO_VAR_DIR"] = str(var_dir)
    env["COMMUNE_SSO_ISSUER"] = ISSUER
    if database_url is not None:
        env["COMMUNE_SSO_DATABASE_URL"] = database_url
    if key_dir is not None:
        env["COMMUNE_SSO_KEY_DIR"] = str(key_dir)
    env.update({f"COMMUNE_SSO_{name.upper()}": value for name, value in extra.items()})
    return env


class Cli:
    """``commune-sso`` in-process with a fixed environment."""

    def __init__(self, env: dict[str, str | None]) -> None:
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(app, list(args), env=self.env, input=input)

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self(*args, input=input)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str, input: str | None = None) -> Any:
        return json.loads(self.ok(*args, "--json", input=input).stdout)


def audit_actions(database_url: str, prefix: str) -> list[tuple[str, str | None]]:
    """(action, target) of the newest audit entries whose action starts with ``prefix``, in
    the database a CLI run wrote to."""
    engine = make_engine(database_url)
    try:
        factory: sessionmaker = make_session_factory(engine)
        with transaction(factory) as session:
            entries = [
                audit.entry_as_dict(e) for e in audit.tail(session, limit=10, action_prefix=prefix)
            ]
    finally:
        engine.dispose()
    return [(e["action"], e["target"]) for e in entries]


def one_line(text: str) -> str:
    """rich wraps long lines at the console width; compare messages with whitespace folded."""
    return " ".join(text.split())


def assert_clean_failure(result: Result, message: str) -> None:
    """A non-zero exit, a readable message on stderr, no traceback, nothing on stdout."""
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception
    assert message in one_line(result.stderr), result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def sign_in(session: Session, account: Account) -> BrowserSession:
    """A browser session of ``account``, as a password login starts one, for the commands that
    end sessions or report the last sign-in."""
    browser_session, _ = sessions.create(
        session=session,
        clock=SystemClock(),
        settings=Settings(),
        account=account,
        amr=["pwd"],
        client_address="127.0.0.1",
        user_agent="test",
    )
    return browser_session
