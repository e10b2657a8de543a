"""The built wheel, not the checkout, is what a container runs (PITFALLS: ``pip install -e .``
hides missing package data). The wheel is built, installed into a fresh virtual environment and
served from there: static files, templates, catalogues and migrations must all come from it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import stop, wait_until_answering

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "keys", "idp", "ca_admin", "commune_sso", "migrations")
STATIC = ("renew.js", "style.css", "account.css", "admin.css", "ca.css", "emblem.svg")


def test_wheel_carries_every_file_the_packages_track(wheel: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", *PACKAGES],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert any(name.endswith(".js") for name in tracked)
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in tracked if name not in in_wheel]
    assert missing == []


def clean_env(**settings: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COMMUNE_SSO_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update({f"COMMUNE_SSO_{name.upper()}": value for name, value in settings.items()})
    env["NO_COLOR"] = "1"
    return env


def test_packages_come_from_the_fresh_venv(fresh_venv: Path, tmp_path: Path) -> None:
    printed = subprocess.run(
        [
            fresh_venv / "bin" / "python",
            "-c",
            f"import {', '.join(PACKAGES)}; "
            f"print('\\n'.join(m.__file__ for m in ({', '.join(PACKAGES)})))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=clean_env(),
    ).stdout.split()
    assert len(printed) == len(PACKAGES)
    for path in printed:
        assert Path(path).is_relative_to(fresh_venv), path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served_from_wheel(fresh_venv: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    var_dir = tmp_path / "var"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [fresh_venv / "bin" / "commune-sso", "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,  # not the repository: nothing may be found from there
            env=clean_env(var_dir=str(var_dir)),
        )
        try:
            wait_until_answering(server, f"{base}/oauth2/jwks", log_path)
            yield base, var_dir
        finally:
            stop(server, timeout=20)


def test_the_installed_wheel_serves_static_files_pages_and_migrations(
    served_from_wheel: tuple[str, Path], fresh_venv: Path
) -> None:
    base, var_dir = served_from_wheel
    with httpx.Client(base_url=base, timeout=10) as client:
        for name in STATIC:
            reply = client.get(f"/static/{name}")
            assert reply.status_code == 200, name
            assert reply.content, name
        assert "WebCrypto" in client.get("/static/renew.js").text
        # A template and both catalogues (.po files read at start-up, no compile step).
        vietnamese = client.get("/activate")
        assert vietnamese.status_code == 200
        assert "Kích hoạt tài khoản" in vietnamese.text
        assert "/static/account.css" in vietnamese.text
        english = client.get("/activate", params={"lang": "en"})
        assert english.status_code == 200
        assert "Activate your account" in english.text
        assert "Kích hoạt tài khoản" not in english.text
    # serve upgraded the new database with the migrations in the wheel.
    versions = list(
        (next(fresh_venv.glob("lib/python*/site-packages/migrations"))).glob("versions/0*.py")
    )
    head = max(path.name.split("_", 1)[0] for path in versions)
    with sqlite3.connect(var_dir / "commune-sso.db") as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == head
