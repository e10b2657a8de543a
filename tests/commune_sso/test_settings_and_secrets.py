"""Settings validation, where the key passphrase and server secret come from (CONVENTIONS §9),
and the first-start data whose secrets are printed once and stored only hashed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import ValidationError
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from commune_sso import bootstrap, secrets_setup
from core import audit
from core.clock import FixedClock
from core.db import make_engine, make_session_factory, transaction
from core.errors import ConfigurationError, DomainError
from core.settings import Settings
from idp import accounts, clients
from idp.passwords import PasswordHasher
from tests.cli_runner import Cli, assert_clean_failure, cli_env
from tests.conftest import OFFICIAL_PASSWORD

KEY_ENV = "COMMUNE_SSO_KEY_PASSPHRASE"
SECRET_ENV = "COMMUNE_SSO_SECRET_KEY"
RESOLVERS = {KEY_ENV: secrets_setup.key_passphrase, SECRET_ENV: secrets_setup.server_secret}
FIELDS = {KEY_ENV: "key_passphrase", SECRET_ENV: "secret_key"}
GOOD_VALUE = "a-real-secret-of-enough-length-42"


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings() reads the environment: only what a test sets may count."""
    for name in list(os.environ):
        if name.startswith("COMMUNE_SSO_") and name != "COMMUNE_SSO_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


# --------------------------------------------------------------------------------------------
# issuer


@pytest.mark.parametrize(
    "issuer",
    [
        "https://sso.laocai.gov.vn/?tinh=laocai",
        "https://sso.laocai.gov.vn#top",
        "https://sso.laocai.gov.vn/dang-nhap?",  # empty query
        "https://sso.laocai.gov.vn/#",  # empty fragment
        "ftp://sso.laocai.gov.vn",
        "javascript:alert(1)",
        "sso.laocai.gov.vn",
        "https://",
    ],
)
def test_issuer_is_refused(issuer: str) -> None:
    with pytest.raises(ValidationError, match="issuer must"):
        Settings(issuer=issuer)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://sso.laocai.gov.vn/", "https://sso.laocai.gov.vn"),
        ("https://sso.laocai.gov.vn/tinh/laocai/", "https://sso.laocai.gov.vn/tinh/laocai"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_issuer_trailing_slash_is_stripped(given: str, stored: str) -> None:
    settings = Settings(issuer=given)
    assert settings.issuer == stored
    assert settings.endpoint("/oauth2/jwks") == f"{stored}/oauth2/jwks"


def test_issuer_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMUNE_SSO_ISSUER", "https://sso.laocai.gov.vn/")
    settings = Settings()
    assert settings.issuer == "https://sso.laocai.gov.vn"
    assert settings.issuer_is_https
    assert not settings.development_secrets_allowed


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ValidationError, match="environment must be"):
        Settings(environment="staging")


# --------------------------------------------------------------------------------------------
# key passphrase and server secret


@pytest.mark.parametrize("env_name", [KEY_ENV, SECRET_ENV])
@pytest.mark.parametrize(
    ("issuer", "environment"),
    [("https://sso.laocai.gov.vn", "development"), ("http://127.0.0.1:8000", "production")],
)
def test_no_generated_secrets_for_a_real_deployment(
    tmp_path: Path, env_name: str, issuer: str, environment: str
) -> None:
    var_dir = tmp_path / "var"
    settings = Settings(issuer=issuer, environment=environment, var_dir=var_dir)
    with pytest.raises(ConfigurationError, match=env_name):
        RESOLVERS[env_name](settings)
    assert not var_dir.exists()


@pytest.mark.parametrize("env_name", [KEY_ENV, SECRET_ENV])
@pytest.mark.parametrize("issuer", ["https://sso.laocai.gov.vn", "http://127.0.0.1:8000"])
@pytest.mark.parametrize(
    "value", ["change-me", "CHANGE-ME", " changeme ", "secret", "password", "", "only-15-chars!!"]
)
def test_placeholder_or_short_secret_is_refused(
    tmp_path: Path, env_name: str, issuer: str, value: str
) -> None:
    settings = Settings(issuer=issuer, var_dir=tmp_path / "var", **{FIELDS[env_name]: value})
    with pytest.raises(ConfigurationError, match=env_name):
        RESOLVERS[env_name](settings)


@pytest.mark.parametrize("env_name", [KEY_ENV, SECRET_ENV])
def test_given_secret_is_used_as_is(tmp_path: Path, env_name: str) -> None:
    var_dir = tmp_path / "var"
    settings = Settings(
        issuer="https://sso.laocai.gov.vn",
        environment="production",
        var_dir=var_dir,
        **{FIELDS[env_name]: GOOD_VALUE},
    )
    assert RESOLVERS[env_name](settings) == GOOD_VALUE.encode()
    assert not var_dir.exists()


def test_development_secrets_are_generated_once(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    settings = Settings(issuer="http://127.0.0.1:8000", var_dir=var_dir)

    passphrase = secrets_setup.key_passphrase(settings)
    server_secret = secrets_setup.server_secret(settings)

    assert len(passphrase) >= 32 and len(server_secret) >= 32
    assert passphrase != server_secret
    for name, value in [("dev-key-passphrase", passphrase), ("dev-secret-key", server_secret)]:
        path = var_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().strip() == value
    assert stat.S_IMODE(var_dir.stat().st_mode) == 0o700

    again = Settings(issuer="http://127.0.0.1:8000", var_dir=var_dir)
    assert secrets_setup.key_passphrase(again) == passphrase
    assert secrets_setup.server_secret(again) == server_secret


# --------------------------------------------------------------------------------------------
# serve refuses to start without the secrets


@pytest.fixture
def uvicorn_never_runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fails the test if `serve` got as far as starting uvicorn."""
    calls: list[Any] = []

    def run(*args: Any, **kwargs: Any) -> None:
        calls.append((args, kwargs))
        raise AssertionError("serve started uvicorn")

    monkeypatch.setattr(uvicorn, "run", run)
    return calls


@pytest.mark.parametrize(
    ("given", "missing"),
    [({"secret_key": GOOD_VALUE}, KEY_ENV), ({"key_passphrase": GOOD_VALUE}, SECRET_ENV)],
)
def test_serve_on_https_without_secrets_fails_fast(
    tmp_path: Path, uvicorn_never_runs: list[Any], given: dict[str, str], missing: str
) -> None:
    var_dir = tmp_path / "var"
    env = cli_env(var_dir=var_dir, behind_proxy="true", **given)
    env["COMMUNE_SSO_ISSUER"] = "https://sso.laocai.gov.vn"

    result = Cli(env)("serve", "--port", "1")

    assert_clean_failure(result, missing)
    assert uvicorn_never_runs == []
    # Refused before anything was written: no database, no keys, no generated secret.
    assert not var_dir.exists()


# --------------------------------------------------------------------------------------------
# first start


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    built = make_engine(database_url)
    yield built
    built.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    built = make_session_factory(engine)
    audit.install(built)
    return built


def as_text(value: object) -> str:
    if isinstance(value, memoryview):
        value = bytes(value)
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def dump(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table in the database (found by inspection, not from the models)."""
    tables: dict[str, list[tuple[str, ...]]] = {}
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
            tables[table] = sorted(tuple(as_text(v) for v in row) for row in rows)
    return tables


def test_first_start_creates_admin_and_demo_client(
    settings: Settings, factory: sessionmaker[Session], clock: FixedClock
) -> None:
    created = bootstrap.first_start(settings, factory, clock=clock, demo=True)

    assert created is not None and created.demo is not None and created.admin_setup is not None
    assert created.admin_username == "admin"
    assert created.demo.client_id == "demo-shared-app"
    with transaction(factory) as session:
        admin = accounts.get_by_username(session, "admin")
        assert admin.is_system_admin and admin.is_active
        assert admin.password_hash is None  # no password exists to leak
        demo = clients.get_active(session, "demo-shared-app")
        assert clients.check_secret(demo, created.demo.client_secret)
        assert demo.redirect_uris == [bootstrap.DEMO_REDIRECT_URI]
        assert audit.verify(session).ok


def test_first_admin_sets_the_password_with_the_one_time_code(
    settings: Settings, factory: sessionmaker[Session], clock: FixedClock
) -> None:
    created = bootstrap.first_start(settings, factory, clock=clock, demo=False)
    assert created is not None and created.admin_setup is not None
    assert created.admin_setup.expires_at == clock.now() + bootstrap.ADMIN_SETUP_LIFETIME
    passwords = PasswordHasher(settings)

    def activate(code: str) -> bool:
        with transaction(factory) as session:
            return None is not accounts.activate(
                session=session,
                clock=clock,
                passwords=passwords,
                username="admin",
                code=code,
                password=OFFICIAL_PASSWORD,
            )

    assert not activate("not-the-code")
    assert activate(created.admin_setup.code)
    assert not activate(created.admin_setup.code)  # once only
    with transaction(factory) as session:
        admin = accounts.get_by_username(session, "admin")
        assert passwords.check(OFFICIAL_PASSWORD, admin.password_hash).ok


def test_first_admin_setup_code_expires(
    settings: Settings, factory: sessionmaker[Session], clock: FixedClock
) -> None:
    created = bootstrap.first_start(settings, factory, clock=clock, demo=False)
    assert created is not None and created.admin_setup is not None
    clock.advance(bootstrap.ADMIN_SETUP_LIFETIME.total_seconds())
    with transaction(factory) as session:
        assert (
            accounts.activate(
                session=session,
                clock=clock,
                passwords=PasswordHasher(settings),
                username="admin",
                code=created.admin_setup.code,
                password=OFFICIAL_PASSWORD,
            )
            is None
        )


def test_first_start_with_a_given_admin_password_and_no_demo(
    settings: Settings, factory: sessionmaker[Session], clock: FixedClock
) -> None:
    created = bootstrap.first_start(
        settings, factory, clock=clock, demo=False, admin_password=OFFICIAL_PASSWORD
    )

    assert created is not None
    assert created.admin_setup is None and created.demo is None
    with transaction(factory) as session:
        admin = accounts.get_by_username(session, "admin")
        assert PasswordHasher(settings).check(OFFICIAL_PASSWORD, admin.password_hash).ok
        assert clients.find_active(session, "demo-shared-app") is None


@pytest.mark.parametrize("password", ["short", "password123", "admin-is-my-name"])
def test_first_start_refuses_a_weak_admin_password_and_creates_nothing(
    settings: Settings,
    factory: sessionmaker[Session],
    clock: FixedClock,
    engine: Engine,
    password: str,
) -> None:
    before = dump(engine)
    with pytest.raises(DomainError):
        bootstrap.first_start(settings, factory, clock=clock, demo=True, admin_password=password)
    assert dump(engine) == before


def test_first_start_runs_only_on_an_empty_database(
    settings: Settings, factory: sessionmaker[Session], clock: FixedClock, engine: Engine
) -> None:
    assert bootstrap.first_start(settings, factory, clock=clock, demo=True) is not None
    before = dump(engine)

    assert bootstrap.first_start(settings, factory, clock=clock, demo=True) is None
    assert dump(engine) == before


def test_first_start_stores_secrets_only_hashed(
    settings: Settings, factory: sessionmaker[Session], clock: FixedClock, engine: Engine
) -> None:
    created = bootstrap.first_start(settings, factory, clock=clock, demo=True)
    assert created is not None and created.demo is not None and created.admin_setup is not None

    tables = dump(engine)
    assert {"idp_account", "idp_client", "idp_activation_code", "audit_log"} <= set(tables)
    assert tables["idp_account"] and tables["idp_client"] and tables["idp_activation_code"]
    for table, rows in tables.items():
        for row in rows:
            for value in row:
                assert created.admin_setup.code not in value, f"activation code in {table}"
                assert created.demo.client_secret not in value, f"client secret in {table}"


@pytest.mark.parametrize(
    ("settings_given", "demo"),
    [
        ({}, True),  # the embedded quick start
        ({"database_url": "postgresql+psycopg://sso@db/sso"}, False),
        ({"environment": "production"}, False),
    ],
)
def test_demo_client_only_for_the_embedded_quick_start(
    settings_given: dict[str, str], demo: bool
) -> None:
    assert bootstrap.demo_by_default(Settings(**settings_given)) is demo


# --------------------------------------------------------------------------------------------
# every setting also from a file (COMMUNE_SSO_<NAME>_FILE: Docker and Kubernetes secrets)


@pytest.mark.parametrize(
    ("field", "content", "expected"),
    [
        ("key_passphrase", "passphrase from a secret\n", "passphrase from a secret"),
        ("secret_key", "no final newline", "no final newline"),
        ("database_url", "postgresql+psycopg://sso:p%40ss@db/sso\r\n", None),
        ("smtp_password", "  spaces kept  \n", "  spaces kept  "),
        ("issuer", "https://sso.laocai.gov.vn/\n", "https://sso.laocai.gov.vn"),
        ("smtp_port", "2525\n", 2525),
        ("smtp_starttls", "false\n", False),
    ],
)
def test_a_setting_is_read_from_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, content: str, expected: object
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(content.encode())
    monkeypatch.setenv(f"COMMUNE_SSO_{field.upper()}_FILE", str(secret))
    value = getattr(Settings(), field)
    assert value == (expected if expected is not None else content.rstrip("\r\n"))


def test_a_list_setting_is_read_as_json_from_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "keys.json"
    secret.write_text('["/etc/commune-sso/audit-2026.pem"]\n')
    monkeypatch.setenv("COMMUNE_SSO_AUDIT_TRUSTED_PUBLIC_KEYS_FILE", str(secret))
    assert Settings().audit_trusted_public_keys == [Path("/etc/commune-sso/audit-2026.pem")]


def test_a_variable_and_its_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(GOOD_VALUE)
    monkeypatch.setenv("COMMUNE_SSO_SECRET_KEY", GOOD_VALUE)
    monkeypatch.setenv("COMMUNE_SSO_SECRET_KEY_FILE", str(secret))
    with pytest.raises(ValueError, match="COMMUNE_SSO_SECRET_KEY and COMMUNE_SSO_SECRET_KEY_FILE"):
        Settings()


def test_a_missing_secret_file_is_refused_by_name_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "run" / "secrets" / "key_passphrase"
    env = cli_env(var_dir=tmp_path / "var", key_passphrase_file=str(missing))

    result = Cli(env)("serve", "--port", "1")

    assert_clean_failure(result, "COMMUNE_SSO_KEY_PASSPHRASE_FILE: cannot read")
    # rich folds a long path anywhere: compare without the whitespace it added.
    assert f"{missing}:Nosuchfileordirectory" in "".join(result.stderr.split())
    assert not (tmp_path / "var").exists()


def test_serve_takes_its_secrets_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("key_passphrase", "secret_key"):
        (tmp_path / name).write_text(GOOD_VALUE + name + "\n")
        monkeypatch.setenv(f"COMMUNE_SSO_{name.upper()}_FILE", str(tmp_path / name))
    settings = Settings(issuer="https://sso.laocai.gov.vn", environment="production")
    assert secrets_setup.key_passphrase(settings) == (GOOD_VALUE + "key_passphrase").encode()
    assert secrets_setup.server_secret(settings) == (GOOD_VALUE + "secret_key").encode()
