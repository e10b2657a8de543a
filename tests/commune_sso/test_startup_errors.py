"""Start-up errors are one line naming the cause and the setting to change, exit code 2, no
traceback (issue 14). Tests run as root, which ignores permission bits: unusable directories are
paths under a regular file (the OS answers ENOTDIR), a full disk is /dev/full (ENOSPC)."""

from __future__ import annotations

import errno
import socket
import subprocess
from pathlib import Path

import pytest
from typer.testing import Result

from commune_sso.startup_errors import os_error_line
from core.settings import Settings
from tests.cli_runner import KEY_PASSPHRASE, SECRET_KEY, Cli, assert_clean_failure, cli_env
from tests.commune_sso.test_cli import commune_sso_executable, subprocess_env


def taken_port() -> socket.socket:
    """A listening socket: should serve get past its checks, it stops at the bind, not hang."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def serve(tmp_path: Path, **settings: str) -> Result:
    # behind_proxy: the issuer's port is not the one taken here.
    values: dict[str, str] = {
        "key_passphrase": KEY_PASSPHRASE,
        "secret_key": SECRET_KEY,
        "behind_proxy": "true",
    }
    values.update(settings)
    var_dir = Path(values.pop("var_dir", str(tmp_path / "var")))
    with taken_port() as sock:
        port = str(sock.getsockname()[1])
        return Cli(cli_env(var_dir=var_dir, **values))("serve", "--port", port)


def assert_startup_failure(result: Result, message: str) -> None:
    assert_clean_failure(result, message)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_var_dir_that_cannot_be_made_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("not a directory")
    var_dir = tmp_path / "file.txt" / "var"
    result = serve(tmp_path, var_dir=str(var_dir))
    assert_startup_failure(
        result, f"cannot use var dir {var_dir} (COMMUNE_SSO_VAR_DIR): Not a directory"
    )


def test_a_key_dir_that_cannot_be_made_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("not a directory")
    key_dir = tmp_path / "file.txt" / "keys"
    result = serve(tmp_path, key_dir=str(key_dir))
    assert_startup_failure(result, f"cannot use key dir {key_dir} (COMMUNE_SSO_KEY_DIR)")


def test_bad_settings_are_one_line_with_the_variable(tmp_path: Path) -> None:
    result = serve(tmp_path, db_pool_size="0")
    assert_startup_failure(result, "invalid settings: COMMUNE_SSO_DB_POOL_SIZE: Input should be")


def test_a_wrong_key_passphrase_names_the_setting(tmp_path: Path) -> None:
    Cli(cli_env(var_dir=tmp_path / "var", key_passphrase=KEY_PASSPHRASE)).ok("keys", "list")
    result = serve(tmp_path, key_passphrase="another-passphrase-0123456789")
    assert_startup_failure(result, "wrong passphrase or damaged file (COMMUNE_SSO_KEY_PASSPHRASE)")


def test_an_unreachable_database_names_the_setting(tmp_path: Path) -> None:
    with taken_port() as sock:  # nothing speaks PostgreSQL here: closed right after the test
        port = sock.getsockname()[1]
    result = serve(tmp_path, database_url=f"postgresql+psycopg://u@127.0.0.1:{port}/x")
    assert_startup_failure(result, "cannot reach the database (COMMUNE_SSO_DATABASE_URL):")


def test_other_commands_report_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    """Through the installed entry point: what an operator's shell shows."""
    with taken_port() as sock:
        port = sock.getsockname()[1]
    result = subprocess.run(
        [commune_sso_executable(), "client", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=subprocess_env(
            var_dir=str(tmp_path / "var"),
            database_url=f"postgresql+psycopg://u@127.0.0.1:{port}/x",
        ),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach the database (COMMUNE_SSO_DATABASE_URL)")


def test_a_full_disk_names_the_directory_and_the_setting(tmp_path: Path) -> None:
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    settings = Settings(var_dir=tmp_path / "var")
    database = tmp_path / "var" / "commune-sso.db"
    with pytest.raises(OSError) as raised, open("/dev/full", "wb", buffering=0) as full:
        full.write(b"x")
    error = raised.value
    assert error.errno == errno.ENOSPC
    error.filename = str(database)  # what the OS error carries when a path operation fails
    assert os_error_line(error, settings) == (
        f"cannot write to var dir {tmp_path / 'var'} (COMMUNE_SSO_VAR_DIR): "
        f"No space left on device: {database}"
    )
