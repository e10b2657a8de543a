"""The configuration file ``commune-sso.toml`` (issue 19): read from the working directory, else
from /etc/commune-sso/ (here a directory of the test's own), or the file COMMUNE_SSO_CONFIG
names; the environment wins over it; a key that is no setting stops the start with one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Engine

from core.db import make_session_factory, transaction
from core.settings import CONFIG_FILE_SEARCH_PATH, Settings
from idp import accounts
from tests.cli_runner import KEY_PASSPHRASE, SECRET_KEY, Cli, assert_clean_failure, cli_env


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(working directory, stand-in for /etc/commune-sso): the search path of the real one, the
    working directory's file first."""
    workdir, etc = tmp_path / "work", tmp_path / "etc" / "commune-sso"
    workdir.mkdir()
    etc.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(
        Settings, "config_file_search_path", (Path("commune-sso.toml"), etc / "commune-sso.toml")
    )
    for name in list(os.environ):
        if name.startswith("COMMUNE_SSO_") and name != "COMMUNE_SSO_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    return workdir, etc


def toml_file(path: Path, **values: str) -> Path:
    path.write_text(
        "".join(f'{key} = "{value}"\n' for key, value in values.items()), encoding="utf-8"
    )
    return path


def test_the_search_path_is_the_working_directory_then_etc() -> None:
    assert (
        Path("commune-sso.toml"),
        Path("/etc/commune-sso/commune-sso.toml"),
    ) == CONFIG_FILE_SEARCH_PATH


def test_the_working_directory_file_is_read(places: tuple[Path, Path]) -> None:
    workdir, etc = places
    toml_file(workdir / "commune-sso.toml", issuer="https://sso.laocai.gov.vn")
    toml_file(etc / "commune-sso.toml", issuer="https://sso.yenbai.gov.vn", var_dir="/srv/sso")
    settings = Settings()
    assert settings.issuer == "https://sso.laocai.gov.vn"
    assert settings.issuer_configured
    # One file only, the first found: nothing is merged from /etc.
    assert settings.var_dir == Path("var")


def test_etc_is_read_when_the_working_directory_has_none(places: tuple[Path, Path]) -> None:
    _, etc = places
    toml_file(etc / "commune-sso.toml", issuer="https://sso.yenbai.gov.vn", var_dir="/srv/sso")
    settings = Settings()
    assert settings.issuer == "https://sso.yenbai.gov.vn"
    assert settings.var_dir == Path("/srv/sso")


def test_no_file_leaves_the_defaults(places: tuple[Path, Path]) -> None:
    settings = Settings()
    assert not settings.issuer_configured
    assert settings.database_url is None


def test_commune_sso_config_names_the_file(
    places: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir, _ = places
    toml_file(workdir / "commune-sso.toml", issuer="https://sso.laocai.gov.vn")
    named = toml_file(tmp_path / "elsewhere.toml", issuer="https://sso.hagiang.gov.vn")
    monkeypatch.setenv("COMMUNE_SSO_CONFIG", str(named))
    assert Settings().issuer == "https://sso.hagiang.gov.vn"


def test_the_environment_and_its_files_win_over_the_file(
    places: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir, _ = places
    toml_file(
        workdir / "commune-sso.toml",
        issuer="https://sso.laocai.gov.vn",
        smtp_from="tep@laocai.gov.vn",
        smtp_host="mail.laocai.gov.vn",
    )
    secret = tmp_path / "smtp-host"
    secret.write_text("relay.laocai.gov.vn\n", encoding="utf-8")
    monkeypatch.setenv("COMMUNE_SSO_ISSUER", "https://sso.moi.laocai.gov.vn")
    monkeypatch.setenv("COMMUNE_SSO_SMTP_HOST_FILE", str(secret))
    settings = Settings()
    assert settings.issuer == "https://sso.moi.laocai.gov.vn"
    assert settings.smtp_host == "relay.laocai.gov.vn"
    assert settings.smtp_from == "tep@laocai.gov.vn"  # what the environment leaves alone
    assert Settings(issuer="https://sso.arg.gov.vn").issuer == "https://sso.arg.gov.vn"


def test_typed_values_and_lists_in_the_file(places: tuple[Path, Path]) -> None:
    workdir, _ = places
    (workdir / "commune-sso.toml").write_text(
        'smtp_port = 2525\naccess_log = true\ntrusted_proxies = ["10.0.0.5", "172.18.0.0/16"]\n',
        encoding="utf-8",
    )
    settings = Settings()
    assert settings.smtp_port == 2525
    assert settings.access_log is True
    assert [str(network) for network in settings.trusted_proxies] == [
        "10.0.0.5/32",
        "172.18.0.0/16",
    ]


# --------------------------------------------------------------------------------------------
# through the CLI


def cli_without_database_url(tmp_path: Path) -> Cli:
    return Cli(
        cli_env(
            var_dir=tmp_path / "var",
            key_dir=tmp_path / "keys",
            key_passphrase=KEY_PASSPHRASE,
            secret_key=SECRET_KEY,
        )
    )


def test_the_cli_uses_the_database_the_file_names(
    places: tuple[Path, Path], tmp_path: Path, database_url: str, engine: Engine
) -> None:
    """An admin in the server's directory runs the CLI without exporting anything."""
    workdir, _ = places
    toml_file(workdir / "commune-sso.toml", database_url=database_url)
    cli = cli_without_database_url(tmp_path)
    cli.ok("user", "add", "vu.thi.hoa", "--name", "Vũ Thị Hoa")
    with transaction(make_session_factory(engine)) as session:
        assert accounts.get_by_username(session, "vu.thi.hoa").full_name == "Vũ Thị Hoa"
    assert not (tmp_path / "var" / "commune-sso.db").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            'databse_url = "sqlite:///x.db"\n',
            "unknown setting 'databse_url' in the configuration file {file}",
        ),
        (
            'DATABASE_URL = "sqlite:///x.db"\n',
            "unknown setting 'DATABASE_URL' in the configuration file {file}",
        ),
        ('[commune_sso]\nissuer = "https://sso.laocai.gov.vn"\n', "unknown setting 'commune_sso'"),
        ("issuer = https://sso\n", "the configuration file {file} is not TOML"),
        ("smtp_port = 0\n", "COMMUNE_SSO_SMTP_PORT: Input should be greater than or equal to 1"),
    ],
)
def test_a_bad_file_stops_the_cli_with_one_line(
    places: tuple[Path, Path], tmp_path: Path, content: str, message: str
) -> None:
    workdir, _ = places
    file = workdir / "commune-sso.toml"
    file.write_text(content, encoding="utf-8")
    result = cli_without_database_url(tmp_path)("client", "list")
    assert_clean_failure(result, message.format(file=file))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "var").exists()  # refused before anything was written


def test_a_named_file_that_cannot_be_read_stops_the_cli(
    places: tuple[Path, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.toml"
    env = cli_env(var_dir=tmp_path / "var")
    env["COMMUNE_SSO_CONFIG"] = str(missing)
    result = Cli(env)("client", "list")
    assert_clean_failure(result, f"cannot read the configuration file {missing}")
    assert result.exit_code == 2
