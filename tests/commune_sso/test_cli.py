"""The ``commune-sso`` command line (DESIGN: CLI contract), run in-process on real databases, plus
the installed entry point and a real ``serve`` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from sqlalchemy import Engine, text
from typer.core import TyperGroup

from commune_sso.cli import app
from core import audit
from core.clock import SystemClock
from core.db import make_engine, make_session_factory, transaction
from core.opaque_tokens import digest
from core.settings import Settings
from idp import accounts, clients
from idp.passwords import PasswordHasher
from tests.cli_runner import (
    Cli,
    assert_clean_failure,
    cli_env,
    one_line,
    sign_in,
)
from tests.conftest import OFFICIAL_PASSWORD
from tests.serving import stop, wait_until_answering

ALGORITHMS = {"RS256", "ES256", "EdDSA"}

# Commands that change something and print only a confirmation; every other command prints data
# and must offer --json (DESIGN: CLI contract).
ACTION_ONLY_COMMANDS = {
    "serve",
    "db upgrade",
    "user set-password",
    "user disable",
    "user enable",
    "client remove",
    "cas remove-service",
    "saml remove-sp",
    "upstream remove",
}


def test_db_upgrade(cli: Cli) -> None:
    assert "database at revision head" in cli.ok("db", "upgrade").stdout


# --------------------------------------------------------------------------------------------
# user


def test_user_add_with_password_from_stdin(cli: Cli, engine: Engine, tmp_path: Path) -> None:
    created = cli.json(
        "user",
        "add",
        "nguyen.van.an",
        "--name",
        "Nguyễn Văn An",
        "--email",
        "an.nv@laocai.gov.vn",
        "--password-stdin",
        input=OFFICIAL_PASSWORD + "\n",
    )
    assert created["username"] == "nguyen.van.an"
    assert re.fullmatch(r"[0-9a-f]{32}", created["subject"])

    with transaction(make_session_factory(engine)) as session:
        account = accounts.get_by_username(session, "nguyen.van.an")
        assert account.subject == created["subject"]
        assert account.full_name == "Nguyễn Văn An"
        assert not account.is_system_admin
        password_hash = account.password_hash
    hasher = PasswordHasher(Settings(var_dir=tmp_path / "var"))
    assert hasher.check(OFFICIAL_PASSWORD, password_hash).ok
    assert not hasher.check(OFFICIAL_PASSWORD + "x", password_hash).ok


def test_user_add_duplicate_username_fails_cleanly(cli: Cli) -> None:
    cli.ok("user", "add", "tran.thi.binh", "--name", "Trần Thị Bình")
    again = cli("user", "add", "tran.thi.binh", "--name", "Trần Thị Bình", "--json")
    assert_clean_failure(again, "That username is already taken.")


def test_user_add_takes_the_usernames_scim_takes(cli: Cli) -> None:
    """An e-mail address or a UPN, as directories send them, stored lowercase; unique without
    regard to case (RFC 7643 §4.1.1)."""
    added = cli.ok("user", "add", "An.NV@BacNinh.gov.vn", "--name", "Nguyễn Văn An", "--json")
    assert '"username": "an.nv@bacninh.gov.vn"' in added.stdout
    again = cli("user", "add", "AN.NV@bacninh.gov.vn", "--name", "Nguyễn Văn An")
    assert_clean_failure(again, "That username is already taken.")
    bell = cli("user", "add", "co\achuong", "--name", "Nguyễn Văn An")
    assert_clean_failure(bell, "A username is 1 to 256 characters")


def test_user_set_password_refuses_short_password(cli: Cli, engine: Engine, tmp_path: Path) -> None:
    cli.ok("user", "add", "le.van.cuong", "--name", "Lê Văn Cường")

    short = cli("user", "set-password", "le.van.cuong", input="ngắn\n")
    assert_clean_failure(short, "The password must be at least 8 characters long.")

    cli.ok("user", "set-password", "le.van.cuong", input=OFFICIAL_PASSWORD + "\n")
    with transaction(make_session_factory(engine)) as session:
        password_hash = accounts.get_by_username(session, "le.van.cuong").password_hash
    hasher = PasswordHasher(Settings(var_dir=tmp_path / "var"))
    assert hasher.check(OFFICIAL_PASSWORD, password_hash).ok


def test_user_set_password_for_unknown_user_fails_cleanly(cli: Cli) -> None:
    result = cli("user", "set-password", "khong.ton.tai", input=OFFICIAL_PASSWORD + "\n")
    assert_clean_failure(result, "No account with that username.")


def test_user_disable_is_in_the_audit_log(cli: Cli, engine: Engine) -> None:
    cli.ok("user", "add", "pham.thi.dung", "--name", "Phạm Thị Dung")
    assert "disabled pham.thi.dung" in cli.ok("user", "disable", "pham.thi.dung").stdout

    newest = cli.json("audit", "tail", "-n", "1")
    assert [(e["action"], e["target"], e["actor"]) for e in newest] == [
        ("account.disable", "account:pham.thi.dung", "cli")
    ]
    with transaction(make_session_factory(engine)) as session:
        assert accounts.get_by_username(session, "pham.thi.dung").status == "disabled"


def test_user_sign_out_everywhere_ends_sessions_and_is_audited(cli: Cli, engine: Engine) -> None:
    cli.ok("user", "add", "pham.thi.dung", "--name", "Phạm Thị Dung")
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        account = accounts.get_by_username(session, "pham.thi.dung")
        for _ in range(2):
            sign_in(session, account)
    assert cli.json("user", "sign-out-everywhere", "pham.thi.dung") == {
        "username": "pham.thi.dung",
        "sessions_ended": 2,
    }
    assert cli.json("user", "sign-out-everywhere", "pham.thi.dung")["sessions_ended"] == 0
    newest = cli.json("audit", "tail", "-n", "1")
    assert newest[0]["action"] == "account.sign_out_everywhere"
    assert_clean_failure(
        cli("user", "sign-out-everywhere", "khong.ton.tai"), "No account with that username."
    )


# --------------------------------------------------------------------------------------------
# client


def test_confidential_client_secret_is_shown_once(cli: Cli, engine: Engine) -> None:
    created = cli.json(
        "client",
        "add",
        "--name",
        "Hệ thống quản lý văn bản",
        "--redirect-uri",
        "https://vanban.laocai.gov.vn/oidc/callback",
        "--redirect-uri",
        "http://127.0.0.1:8001/cb",
    )
    client_id, secret = created["client_id"], created["client_secret"]
    assert client_id and secret
    assert created["token_endpoint_auth_method"] == "client_secret_basic"
    assert created["redirect_uris"] == [
        "https://vanban.laocai.gov.vn/oidc/callback",
        "http://127.0.0.1:8001/cb",
    ]

    with transaction(make_session_factory(engine)) as session:
        assert clients.check_secret(clients.get_active(session, client_id), secret)

    listed_json = cli.ok("client", "list", "--json").stdout
    listed_table = cli.ok("client", "list").stdout
    for output in (listed_json, listed_table):
        assert secret not in output
        assert digest(secret) not in output
    rows = json.loads(listed_json)
    assert [row["client_id"] for row in rows] == [client_id]
    assert not {"client_secret", "secret_digest"} & set(rows[0])


def test_public_client_has_no_secret(cli: Cli) -> None:
    created = cli.json(
        "client",
        "add",
        "--name",
        "Ứng dụng di động",
        "--public",
        "--redirect-uri",
        "http://[::1]/cb",
    )
    assert created["client_secret"] is None
    assert created["token_endpoint_auth_method"] == "none"


def test_client_credentials_only_client(cli: Cli, engine: Engine) -> None:
    created = cli.json(
        "client", "add", "--name", "Đồng bộ báo cáo", "--grant-type", "client_credentials"
    )
    assert created["grant_types"] == ["client_credentials"]
    assert created["redirect_uris"] == []
    assert created["client_secret"]
    with transaction(make_session_factory(engine)) as session:
        client = clients.get_active(session, created["client_id"])
        assert clients.check_secret(client, created["client_secret"])


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "http://vanban.laocai.gov.vn/cb",
            "A redirect URI must use https (plain http only on the loopback address).",
        ),
        ("https://vanban.laocai.gov.vn/cb#done", "A redirect URI must not contain a fragment."),
        ("/relative/cb", "A redirect URI must be an absolute http(s) URL."),
    ],
)
def test_bad_redirect_uri_is_refused(cli: Cli, uri: str, message: str) -> None:
    result = cli("client", "add", "--name", "Văn bản", "--redirect-uri", uri, "--json")
    assert_clean_failure(result, message)
    assert cli.json("client", "list") == []


def test_client_add_applies_the_rules_of_the_app_pages(cli: Cli) -> None:
    result = cli(
        "client",
        "add",
        "--name",
        "Văn bản",
        "--redirect-uri",
        "https://vanban.laocai.gov.vn/cb",
        "--scope",
        "openid root",
        "--id-token-alg",
        "HS256",
    )
    assert_clean_failure(result, "scope: Unknown scope “root”")
    assert_clean_failure(result, "id_token_signed_response_alg: The signing algorithm must be one")
    assert cli.json("client", "list") == []


def test_client_rotate_secret_with_an_overlap(cli: Cli, engine: Engine) -> None:
    created = cli.json("client", "add", "--name", "Báo cáo", "--grant-type", "client_credentials")
    client_id, old_secret = created["client_id"], created["client_secret"]
    before = datetime.now(UTC)
    rotated = cli.json("client", "rotate-secret", client_id, "--overlap", "2h")
    until = datetime.fromisoformat(rotated["old_secret_valid_until"])
    assert before + timedelta(hours=2) <= until <= datetime.now(UTC) + timedelta(hours=2)
    with transaction(make_session_factory(engine)) as session:
        client = clients.get_active(session, client_id)
        assert clients.check_secret(client, rotated["client_secret"])
        assert clients.check_secret(client, old_secret, now=until - timedelta(seconds=1))
        assert not clients.check_secret(client, old_secret, now=until)
    at_once = cli.json("client", "rotate-secret", client_id, "--overlap", "0")
    assert at_once["old_secret_valid_until"] is None
    assert_clean_failure(
        cli("client", "rotate-secret", client_id, "--overlap", "31d"), "at most 30 days"
    )
    assert_clean_failure(cli("client", "rotate-secret", "no-such-client"), "No such client.")


def test_client_remove(cli: Cli) -> None:
    kept = cli.json("client", "add", "--name", "Giữ lại", "--grant-type", "client_credentials")
    gone = cli.json("client", "add", "--name", "Gỡ bỏ", "--grant-type", "client_credentials")

    assert f"removed {gone['client_id']}" in cli.ok("client", "remove", gone["client_id"]).stdout

    assert [row["client_id"] for row in cli.json("client", "list")] == [kept["client_id"]]
    assert_clean_failure(cli("client", "remove", gone["client_id"]), "No such client.")


# --------------------------------------------------------------------------------------------
# keys


def test_keys_list_and_rotate(cli: Cli) -> None:
    first = cli.json("keys", "list")
    # Regression: keys created by `keys list` itself used to show as "pending".
    assert sorted((k["alg"], k["state"]) for k in first) == sorted(
        (alg, "active") for alg in ALGORITHMS
    )
    old_kids = {k["kid"] for k in first}

    rotated = cli.json("keys", "rotate")
    assert {k["alg"] for k in rotated} == ALGORITHMS
    assert {k["state"] for k in rotated} == {"pending"}
    new_kids = {k["kid"] for k in rotated}
    assert len(new_kids) == 3 and not new_kids & old_kids

    after = {k["kid"]: k for k in cli.json("keys", "list")}
    assert set(after) == old_kids | new_kids
    assert {after[kid]["state"] for kid in new_kids} == {"pending"}
    assert {after[kid]["state"] for kid in old_kids} == {"active"}
    # The old keys now know when they stop signing: when the new ones start.
    for old in old_kids:
        same_alg_new = next(k for k in rotated if k["alg"] == after[old]["alg"])
        assert after[old]["retire_at"] == same_alg_new["active_from"]

    entries = cli.json("audit", "tail", "--action", "key.rotate")
    assert len(entries) == 1
    assert entries[0]["actor"] == "cli"
    assert {(k["kid"], k["alg"]) for k in entries[0]["details"]["new"]} == {
        (k["kid"], k["alg"]) for k in rotated
    }


def test_keys_with_wrong_passphrase_fail_cleanly(cli: Cli) -> None:
    cli.ok("keys", "list")
    cli.env["COMMUNE_SSO_KEY_PASSPHRASE"] = "another-passphrase-0123456789"
    assert_clean_failure(cli("keys", "list", "--json"), "wrong passphrase")


# --------------------------------------------------------------------------------------------
# audit


def add_users(cli: Cli, count: int) -> list[str]:
    names = [f"can.bo.{n}" for n in range(1, count + 1)]
    for name in names:
        cli.ok("user", "add", name, "--name", f"Cán bộ {name}")
    return names


def test_audit_verify_on_a_fresh_chain(cli: Cli) -> None:
    empty = cli.ok("audit", "verify")
    assert "audit chain intact" in empty.stdout

    add_users(cli, 3)
    assert "audit chain intact: 3 entries" in one_line(cli.ok("audit", "verify").stdout)
    report = cli.json("audit", "verify")
    assert {k: report[k] for k in ("ok", "checked", "problems")} == {
        "ok": True,
        "checked": 3,
        "problems": [],
    }
    assert report["checkpoints"]["unprotected_entries"] == 3


def test_audit_verify_names_an_edited_entry(cli: Cli, engine: Engine) -> None:
    add_users(cli, 3)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET actor='mallory' WHERE seq=2"))

    result = cli("audit", "verify", "--json")
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["checked"] == 3
    assert [(p["seq"], p["kind"]) for p in report["problems"]] == [(2, "edited")]

    readable = cli("audit", "verify")
    assert readable.exit_code == 2
    assert "entry 2: edited" in readable.stdout


def test_audit_tail_returns_the_newest_entries(cli: Cli) -> None:
    names = add_users(cli, 7)
    entries = cli.json("audit", "tail", "-n", "5")
    assert [e["seq"] for e in entries] == [3, 4, 5, 6, 7]
    assert [e["target"] for e in entries] == [f"account:{name}" for name in names[2:]]
    assert {e["action"] for e in entries} == {"account.create"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", e["entry_hash"]) for e in entries)


# --------------------------------------------------------------------------------------------
# the contract as a whole


def all_commands(group: Any = None, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """("user add", command) for every command of the CLI, however deep."""
    group = group or typer.main.get_command(app)
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from all_commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_data_command_accepts_json() -> None:
    commands = dict(all_commands())
    assert set(commands) >= ACTION_ONLY_COMMANDS
    data_commands = set(commands) - ACTION_ONLY_COMMANDS
    assert {
        "user add",
        "client add",
        "client list",
        "keys list",
        "keys rotate",
        "audit verify",
        "audit tail",
    } <= data_commands
    for name in sorted(data_commands):
        options = {opt for param in commands[name].params for opt in param.opts}
        assert "--json" in options, f"`commune-sso {name}` prints data but has no --json"


def all_groups(group: Any = None, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """("", root), ("user", group), ("ca merger", group)... every group, however deep."""
    group = group or typer.main.get_command(app)
    yield prefix.strip(), group
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from all_groups(command, f"{prefix}{name} ")


def test_piped_help_is_not_cut_at_80_columns(tmp_path: Path) -> None:
    """Issue 19: piped (the runner's stdout is no terminal, as in CI or `| less`) the help of
    every group lists each command with the first line of its description on one line, never
    cut with "…"; an option's description likewise."""
    cli = Cli(cli_env(var_dir=tmp_path / "var"))
    for name, group in all_groups():
        shown = cli.ok(*name.split(), "--help").stdout
        assert "…" not in shown, name
        lines = shown.splitlines()
        for command_name, command in group.commands.items():
            summary = (command.help or "").strip().splitlines()[0]
            assert any(command_name in line and summary in line for line in lines), (
                f"commune-sso {name} --help: {command_name}: {summary!r} not on one line"
            )
    serve_help = cli.ok("serve", "--help").stdout.splitlines()
    assert any(
        "On the first start, register the demo client of examples/shared_app. Default: only for "
        "the embedded quick start (SQLite, development)." in line
        for line in serve_help
    )


def test_bad_settings_fail_cleanly(tmp_path: Path) -> None:
    # Regression: "[/]" in a settings value was read as rich markup and crashed the CLI.
    env = cli_env(var_dir=tmp_path / "var")
    env["COMMUNE_SSO_ISSUER"] = "ftp://sso.example.vn/[/]"
    result = Cli(env)("client", "list", "--json")
    assert_clean_failure(result, "issuer must be an http(s) URL")
    assert "ftp://sso.example.vn/[/]" in one_line(result.stderr)


# --------------------------------------------------------------------------------------------
# the installed entry point, in a subprocess


def commune_sso_executable() -> str:
    beside_python = Path(sys.executable).parent / "commune-sso"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("commune-sso")
    assert found is not None, "the commune-sso entry point is not installed (pip install -e .)"
    return found


def subprocess_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMUNE_SSO_")}
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"  # we read the printed text
    env.update({f"COMMUNE_SSO_{name.upper()}": value for name, value in settings.items()})
    return env


def test_installed_entry_point_help(tmp_path: Path) -> None:
    result = subprocess.run(
        [commune_sso_executable(), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=subprocess_env(),
    )
    assert result.returncode == 0, result.stderr
    for group in ("serve", "db", "user", "client", "keys", "audit"):
        assert re.search(rf"\b{group}\b", result.stdout), group
    assert list(tmp_path.iterdir()) == []  # --help creates nothing


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_until_ready(
    var_dir: Path, log_path: Path, *, workers: int = 1, **settings: str
) -> tuple[str, str]:
    """Start `commune-sso serve --port N` with no issuer configured, wait for discovery, stop
    it. The issuer follows the port: discovery must advertise N. Returns what it had printed
    once ready, and everything it printed."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [commune_sso_executable(), "serve", "--port", str(port), "--workers", str(workers)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=var_dir.parent,
            env=subprocess_env(var_dir=str(var_dir), **settings),
        )
        try:
            reply = wait_until_answering(
                server, f"{issuer}/.well-known/openid-configuration", log_path
            )
            assert reply.json()["issuer"] == issuer
            assert reply.json()["token_endpoint"] == f"{issuer}/oauth2/token"
            for _ in range(20):  # fresh connections, spread over the workers by the kernel
                assert httpx.get(f"{issuer}/oauth2/jwks", timeout=5).status_code == 200
            printed_when_ready = log_path.read_text(encoding="utf-8")
        finally:
            stop(server)
        assert server.returncode in (0, -signal.SIGTERM), log_path.read_text()
    return printed_when_ready, log_path.read_text(encoding="utf-8")


def test_serve_first_start_prints_a_setup_code_never_a_password(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"

    when_ready, first = serve_until_ready(var_dir, tmp_path / "first.log")
    # Printed before serving, not only when the process ends (docker logs, journald).
    page = re.search(r"admin setup page:\s+(\S+)", when_ready)
    code_line = re.search(r"activation code:\s+(\S+)", when_ready)
    secret_line = re.search(r"demo client_secret:\s+(\S+)", when_ready)
    assert page and code_line and secret_line, when_ready
    assert page.group(1).endswith("/activate?username=admin")
    assert (
        httpx.URL(page.group(1)).port
        == httpx.URL(
            re.search(r"issuer:\s+(\S+)", when_ready).group(1)  # type: ignore[union-attr]
        ).port
    )
    assert "admin password:" not in first
    code, secret = code_line.group(1), secret_line.group(1)
    assert first.count(code) == 1
    assert first.count(secret) == 1

    # What was printed is what works: the code sets the admin password, once.
    settings = Settings(var_dir=var_dir)
    engine = make_engine(settings.resolved_database_url)
    factory = make_session_factory(engine)
    audit.install(factory)
    try:
        with transaction(factory) as session:
            admin = accounts.get_by_username(session, "admin")
            assert admin.is_system_admin and admin.password_hash is None
            assert clients.check_secret(clients.get_active(session, "demo-shared-app"), secret)
            assert accounts.activate(
                session=session,
                clock=SystemClock(),
                passwords=PasswordHasher(settings),
                username="admin",
                code=code,
                password=OFFICIAL_PASSWORD,
            )
    finally:
        engine.dispose()

    _, second = serve_until_ready(var_dir, tmp_path / "second.log")
    assert "activation code" not in second
    assert "client_secret" not in second
    assert code not in second
    assert secret not in second


def test_serve_runs_several_workers_and_stops_them_all(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    _, printed = serve_until_ready(var_dir, tmp_path / "workers.log", workers=2)
    started = set(re.findall(r"Started server process \[(\d+)\]", printed))
    assert len(started) == 2, printed
    for pid in started:  # every worker has exited, none is left behind
        assert (
            not Path(f"/proc/{pid}").exists()
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )


# --------------------------------------------------------------------------------------------
# serve: the issuer and the listener agree; the first administrator


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `serve` would have started uvicorn with, and the issuer its workers would read
    from the environment; uvicorn itself does not run."""
    calls: list[dict[str, Any]] = []

    def record(**options: Any) -> None:
        calls.append({**options, "issuer": os.environ.get("COMMUNE_SSO_ISSUER")})

    monkeypatch.setattr("commune_sso.workers.serve", record)
    return calls


def test_serve_without_issuer_follows_the_port(cli: Cli, served: list[dict[str, Any]]) -> None:
    cli.env["COMMUNE_SSO_ISSUER"] = None
    result = cli.ok("serve", "--port", "18400")
    assert served[0]["port"] == 18400
    assert served[0]["issuer"] == "http://127.0.0.1:18400"
    assert "http://127.0.0.1:18400/.well-known/openid-configuration" in result.stdout
    assert "COMMUNE_SSO_ISSUER" not in result.stdout  # no note on a loopback host


@pytest.mark.parametrize(("host", "issuer"), [("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1")])
def test_serve_on_every_interface_says_to_set_the_issuer(
    cli: Cli, served: list[dict[str, Any]], host: str, issuer: str
) -> None:
    cli.env["COMMUNE_SSO_ISSUER"] = None
    result = cli.ok("serve", "--host", host, "--port", "18401")
    assert served[0]["issuer"] == f"http://{issuer}:18401"
    notes = [line for line in result.stdout.splitlines() if "COMMUNE_SSO_ISSUER" in line]
    assert len(notes) == 1 and "public URL" in notes[0]


@pytest.mark.parametrize(
    ("issuer", "port", "message"),
    [
        ("http://127.0.0.1:8000", "18400", "names port 8000 but serve listens on port 18400"),
        ("http://localhost", "8000", "names port 80 but serve listens on port 8000"),
        ("http://[::1]:8443/sso", "8000", "names port 8443"),
        ("https://sso.laocai.gov.vn", "8000", "COMMUNE_SSO_BEHIND_PROXY=true"),
        ("https://127.0.0.1:8000", "8000", "is https but serve listens with plain http"),
    ],
)
def test_serve_refuses_an_issuer_it_cannot_be(
    cli: Cli, served: list[dict[str, Any]], tmp_path: Path, issuer: str, port: str, message: str
) -> None:
    cli.env["COMMUNE_SSO_ISSUER"] = issuer
    result = cli("serve", "--port", port)
    assert result.exit_code == 2
    assert_clean_failure(result, message)
    assert served == []
    assert not (tmp_path / "var").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("issuer", "port", "behind_proxy"),
    [
        ("http://127.0.0.1:18402", "18402", "false"),
        ("http://localhost:18402/sso", "18402", "false"),
        ("http://127.0.0.1:8000", "18402", "true"),  # a proxy serves the issuer URL
        ("https://sso.laocai.gov.vn", "18402", "true"),
    ],
)
def test_serve_accepts_an_issuer_it_can_be(
    cli: Cli, served: list[dict[str, Any]], issuer: str, port: str, behind_proxy: str
) -> None:
    cli.env["COMMUNE_SSO_ISSUER"] = issuer
    cli.env["COMMUNE_SSO_BEHIND_PROXY"] = behind_proxy
    cli.ok("serve", "--port", port)
    assert served[0]["issuer"] == issuer
    assert served[0]["port"] == int(port)


def test_serve_sets_the_first_admin_password_from_a_file(
    cli: Cli, served: list[dict[str, Any]], engine: Engine, tmp_path: Path, database_url: str
) -> None:
    password_file = tmp_path / "admin-password"
    password_file.write_text(OFFICIAL_PASSWORD + "\n")
    result = cli.ok("serve", "--admin-password-file", str(password_file))

    assert OFFICIAL_PASSWORD not in result.output
    assert "activation code" not in result.stdout
    with transaction(make_session_factory(engine)) as session:
        admin = accounts.get_by_username(session, "admin")
        password_hash = admin.password_hash
        # The cli fixture names its database: not the embedded quick start, so no demo client.
        assert clients.find_active(session, "demo-shared-app") is None
    assert PasswordHasher(Settings()).check(OFFICIAL_PASSWORD, password_hash).ok
    assert "demo client" not in result.stdout


def test_serve_demo_client_on_request(
    cli: Cli, served: list[dict[str, Any]], engine: Engine
) -> None:
    result = cli.ok("serve", "--demo")
    assert "demo client_secret:" in result.stdout
    with transaction(make_session_factory(engine)) as session:
        assert clients.find_active(session, "demo-shared-app") is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("short\n", "first administrator: The password must be at least 8 characters long."),
        (None, "--admin-password-file: cannot read"),
    ],
)
def test_serve_refuses_an_unusable_admin_password_file(
    cli: Cli,
    served: list[dict[str, Any]],
    engine: Engine,
    tmp_path: Path,
    content: str | None,
    message: str,
) -> None:
    password_file = tmp_path / "admin-password"
    if content is not None:
        password_file.write_text(content)
    result = cli("serve", "--admin-password-file", str(password_file))
    assert_clean_failure(result, message)
    assert served == []
    with transaction(make_session_factory(engine)) as session:
        assert accounts.count(session) == 0
