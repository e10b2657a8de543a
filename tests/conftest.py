"""Shared fixtures: real SQLite and PostgreSQL databases made by the Alembic migrations, real
keys, the real ASGI app. PostgreSQL runs when COMMUNE_SSO_TEST_POSTGRES_URL is set (the test
command starts a throwaway cluster and sets it)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.testclient import TestClient

from commune_sso.app import build_runtime, create_app
from commune_sso.database import upgrade
from core.clock import FixedClock
from core.db import make_engine, transaction
from core.settings import Settings
from idp import accounts, clients
from idp.runtime import IdpRuntime

# One SoftHSM2 token set-up per test session (SOFTHSM2_CONF is read once per process by the
# PKCS#11 library): defined here only, never again in a sub-conftest.
from tests.softhsm import softhsm_token  # noqa: F401

if TYPE_CHECKING:
    from tests.cli_runner import Cli

ISSUER = "http://127.0.0.1:8000"
RP_REDIRECT = "http://127.0.0.1:9/cb"
RP_LOGOUT_REDIRECT = "http://127.0.0.1:9/logged-out"
OFFICIAL_PASSWORD = "mật-khẩu-đủ-dài-2026"
POSTGRES_URL = os.environ.get("COMMUNE_SSO_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"]
_database_numbers = itertools.count()


@pytest.fixture(autouse=True)
def _no_configuration_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A commune-sso.toml that ./scripts/serve left in the checkout, or one in /etc, must not
    reach the tests: Settings() looks nowhere (tests/commune_sso/test_config_file.py points it
    at files of its own)."""
    monkeypatch.setattr(Settings, "config_file_search_path", ())


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key ring for the session: generating RSA keys per test would only cost time."""
    return tmp_path_factory.mktemp("keys") / "ring"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _admin_dsn() -> str:
    assert POSTGRES_URL is not None
    url = make_url(POSTGRES_URL).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    if POSTGRES_URL is None:
        pytest.skip("COMMUNE_SSO_TEST_POSTGRES_URL is not set")
    name = f"sso_template_{os.getpid()}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    upgrade(make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
    yield name
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at the head revision, on each backend."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "commune-sso.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template")
    name = f"sso_test_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    assert POSTGRES_URL is not None
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clock() -> FixedClock:
    # Starts at the real time: independent JWT libraries check exp against the system clock.
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


def settings_for(*, tmp_path: Path, database_url: str, key_dir: Path) -> Settings:
    """The settings every app under test is built with, on a given database.

    Units are not loaded at start: most tests make the few units they need (or call
    ``units.sync_from_package``); tests/commune_sso/test_first_start.py turns it on.
    """
    return Settings(
        issuer=ISSUER,
        var_dir=tmp_path / "var",
        database_url=database_url,
        key_dir=key_dir,
        key_passphrase="test-key-passphrase-0123456789",
        secret_key="test-server-secret-0123456789abcdef",
        units_load_on_start=False,
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str, key_dir: Path) -> Settings:
    return settings_for(tmp_path=tmp_path, database_url=database_url, key_dir=key_dir)


@pytest.fixture
def runtime(settings: Settings, clock: FixedClock) -> Iterator[IdpRuntime]:
    built = build_runtime(settings, clock)
    yield built
    engine = built.session_factory.kw["bind"]
    engine.dispose()


@pytest.fixture
def app(settings: Settings, runtime: IdpRuntime) -> Starlette:
    return create_app(settings, runtime=runtime)


@pytest.fixture
def web(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as client:
        yield client


@pytest.fixture
def official(runtime: IdpRuntime) -> accounts.Account:
    with transaction(runtime.session_factory) as session:
        return accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username="nguyen.van.an",
            full_name="Nguyễn Văn An",
            email="an.nv@laocai.gov.vn",
            password=OFFICIAL_PASSWORD,
        )


def register_client(runtime: IdpRuntime, **options: object) -> tuple[clients.Client, str | None]:
    defaults: dict[str, object] = {
        "name": "Hệ thống quản lý văn bản",
        "redirect_uris": [RP_REDIRECT],
        "post_logout_redirect_uris": [RP_LOGOUT_REDIRECT],
        "first_party": True,
    }
    defaults.update(options)
    with transaction(runtime.session_factory) as session:
        return clients.create(session=session, clock=runtime.clock, actor="test", **defaults)  # type: ignore[arg-type]


@pytest.fixture
def rp(runtime: IdpRuntime) -> tuple[clients.Client, str]:
    """A confidential, first-party shared app."""
    client, secret = register_client(runtime)
    assert secret is not None
    return client, secret


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    """``commune-sso`` in-process on a fresh database at head, with a key ring of its own."""
    # Imported here: tests.cli_runner itself imports ISSUER from this module.
    from tests.cli_runner import KEY_PASSPHRASE, SECRET_KEY, Cli, cli_env

    return Cli(
        cli_env(
            var_dir=tmp_path / "var",
            database_url=database_url,
            key_dir=tmp_path / "keys",
            key_passphrase=KEY_PASSPHRASE,
            secret_key=SECRET_KEY,
        )
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    built = make_engine(database_url)
    yield built
    built.dispose()


# ---------------------------------------------------------------------------------------------
# The built wheel in a fresh virtual environment: what a container or a host really runs
# (tests/test_wheel.py, tests/operations/).

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Its own copy of the sources: the build writes build/ and *.egg-info, not in the checkout.
    source = out / "source"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "build", "*.egg-info", "__pycache__", ".*_cache", "node_modules"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        timeout=120,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    (built,) = out.glob("commune_sso-*.whl")
    return built


@pytest.fixture(scope="session")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment holding the wheel. Its dependencies are borrowed from the test
    environment's site-packages through a .pth line: a path listed there is put on sys.path
    but its own .pth files are not run, so the test environment's editable install (a .pth
    naming the checkout) does not follow, and our packages can only come from the wheel."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    borrowed = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    Path(site, "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        timeout=120,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return venv
