"""Throughput and latency of the OpenID Connect provider under its production set-up.

Run: ``.venv/bin/python bench/oidc_bench.py [--quick] [--duration S] [--concurrency N]
[--workers N] [--database postgresql|sqlite] [--json-out PATH] [--no-peer] [--argon2-memory-kib
KIB --argon2-time-cost T --argon2-parallelism P]``

What it measures, in one invocation (CONVENTIONS §16: the reference run is on the same
machine, at the same time):

1. Raw limits, each in ``--workers`` processes running at the same time: RSA-2048 (RS256) and
   P-256 (ES256) signatures per second with ``cryptography``, and argon2id verifications per
   second at the service's default parameters (``core.settings.Settings``) with argon2-cffi,
   or at those given with ``--argon2-*``, which the service then uses too. A scenario whose
   target is a share of a raw limit (logins, client_credentials RS256) measures that limit
   again right before and right after itself and compares with their mean: this machine's
   speed drifts from minute to minute, and the ratio should compare figures of the same
   minutes. Before and after more than ``RAW_DRIFT_WARNING`` apart is flagged.
2. The service as deployed: a throwaway PostgreSQL (``scripts/pg-throwaway --durable``, real
   fsync) or SQLite, ``commune-sso db upgrade``, a user and clients made with the CLI, and
   ``commune-sso serve --workers N`` on a loopback port.
3. HTTP scenarios, each a closed loop for ``--duration`` seconds after a short warm-up, driven
   by ``bench/loadgen.py`` (raw asyncio keep-alive connections, cheap on a 2-core machine):
   discovery, JWKS, client_credentials (RS256 and ES256 access tokens; and ES256 as FAPI 2.0
   asks, private_key_jwt + DPoP, each request with a fresh assertion and a fresh proof carrying
   the server's nonce, both signed by the load generator as it sends: ``bench/dpop_client.py``),
   full password logins (authorize, answered with the login form → login form, answered with
   the code → code exchange with PKCE; a fresh cookie jar each), refresh-token rotation chains,
   userinfo and introspection. Latency is measured per operation on the client; any
   unexpected status is an error. CPU use of the server's processes, of PostgreSQL and of the
   load generator is sampled over each scenario.
4. The peer (issue 15): panva ``oidc-provider`` 9 from the npm registry, one node process with
   its in-memory adapter, configured like commune-sso (``bench/oidc_peer.py``). Discovery,
   JWKS, client_credentials ES256, userinfo and introspection each run against the peer right
   before ours, with the same operations and connections; its CPU is read from /proc like
   ours. The peer is stopped by its PID at the end. Without node, npm or the registry, the
   bench says so and compares nothing (``--no-peer`` skips it on purpose).

It prints a table with the targets (client_credentials ES256 ≥ 1,000/s, client_credentials
RS256 ≥ 60 % of RS256 signing × workers, refresh ≥ 400/s on PostgreSQL, a password login's
server CPU besides its argon2id verification ≤ 4 ms), one line with that login cost, and the
comparison with the peer (discovery, JWKS, client_credentials ≥ 2× the peer; userinfo and
introspection ≥ the peer's rate at ≤ 2× its server CPU per request; the private_key_jwt + DPoP
row without a peer, with its server CPU per request and rate beside the plain ES256 one's,
issue 16), and writes the same data
as JSON. Traffic goes to 127.0.0.1 only, and every loop is bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import html
import http.client
import json
import multiprocessing
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import autocannon_load
import uvloop
from argon2 import PasswordHasher, Type
from autocannon_load import FixedRequest, run_autocannon
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from dpop_client import DpopServiceApp
from loadgen import (
    HttpConnection,
    HttpResponse,
    LoadResult,
    Operation,
    UnexpectedResponse,
    run_closed_loop,
)
from oidc_peer import PEER_MAJOR, PeerUnavailable, RunningPeer, running_peer
from postgres_cluster import interrupts_ignored, throwaway_postgres
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from core.settings import Settings

REPO = Path(__file__).resolve().parent.parent
PG_THROWAWAY = REPO / "scripts" / "pg-throwaway"
CLI = Path(sys.executable).parent / "commune-sso"

HOST = "127.0.0.1"
REDIRECT_URI = "http://127.0.0.1:9/cb"  # never contacted: the 302 to it is not followed
LOGIN_SCOPE = "openid profile email offline_access"
USERNAME = "bench.user"

CHEAP_CONCURRENCY = 16
HEAVY_CONCURRENCY = 8  # logins and refresh chains
# Issue 15: what the server may spend on a password login besides verifying the password.
LOGIN_SERVER_MS_EXCLUDING_HASH = 4.0
# Redirects of ours a login may go through before the one to the application.
MAX_OWN_REDIRECTS = 3
# authorize (the login form) → POST /login (303 to the app with the code) → POST /oauth2/token.
LOGIN_REQUESTS = 3
WARMUP_SECONDS = 1.0
QUICK_DURATION = 2.0
RAW_SECONDS = 3.0
QUICK_RAW_SECONDS = 1.0
# Bound on the request loop besides time: far above what two cores can serve.
MAX_OPERATIONS_PER_SECOND = 20_000
SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 15.0

# A JWS signing input of a typical access token's size (base64url header "." payload).
SIGNING_INPUT = b"e" * 600

# Other processes' CPU use (per cent of one core) above which a scenario's result is suspect.
DISTURBED_CPU_PERCENT = 15
# A raw limit measured before and after a scenario differing by more than this share: the
# machine's speed changed during the scenario, and its ratio is less certain.
RAW_DRIFT_WARNING = 0.15

# Wide enough for the result table when the output goes to a file or a pipe.
console = Console(width=max(200, shutil.get_terminal_size().columns))


# --------------------------------------------------------------------------------------------
# Raw limits: what the primitives allow, measured in parallel processes like the workers.


@dataclass(frozen=True)
class RawRate:
    name: str
    per_process: list[float]
    # CPU seconds (all threads of the process) per operation, mean over the processes: what
    # one argon2id verification costs the server, subtracted from a login's CPU.
    cpu_seconds_per_operation: float = 0.0

    @property
    def total(self) -> float:
        """Operations per second of all processes together (they ran at the same time)."""
        return sum(self.per_process)


@dataclass(frozen=True)
class Argon2Parameters:
    memory_kib: int
    time_cost: int
    parallelism: int

    @classmethod
    def service_defaults(cls) -> Argon2Parameters:
        defaults = Settings.model_fields
        return cls(
            memory_kib=defaults["argon2_memory_kib"].default,
            time_cost=defaults["argon2_time_cost"].default,
            parallelism=defaults["argon2_parallelism"].default,
        )

    def environment(self) -> dict[str, str]:
        """The service's settings for these parameters (its password hashes use them)."""
        return {
            "COMMUNE_SSO_ARGON2_MEMORY_KIB": str(self.memory_kib),
            "COMMUNE_SSO_ARGON2_TIME_COST": str(self.time_cost),
            "COMMUNE_SSO_ARGON2_PARALLELISM": str(self.parallelism),
        }


def _raw_operation(kind: str, argon2: Argon2Parameters) -> Callable[[], object]:
    if kind == "rs256_sign":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return lambda: rsa_key.sign(SIGNING_INPUT, padding.PKCS1v15(), hashes.SHA256())
    if kind == "es256_sign":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        return lambda: ec_key.sign(SIGNING_INPUT, ec.ECDSA(hashes.SHA256()))
    if kind == "argon2id_verify":
        hasher = PasswordHasher(
            time_cost=argon2.time_cost,
            memory_cost=argon2.memory_kib,
            parallelism=argon2.parallelism,
            type=Type.ID,
        )
        stored = hasher.hash("correct horse battery staple")
        return lambda: hasher.verify(stored, "correct horse battery staple")
    raise ValueError(kind)


def _raw_worker(
    kind: str, argon2: Argon2Parameters, seconds: float, ready: Any, results: Any
) -> None:
    """Child process: prepare, wait for the siblings, then count operations for ``seconds``."""
    operation = _raw_operation(kind, argon2)
    operation()
    ready.wait()
    count = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        operation()
        count += 1
    results.put((count / elapsed, (time.process_time() - cpu_start) / count))


def measure_raw_rate(
    kind: str, *, processes: int, seconds: float, argon2: Argon2Parameters | None = None
) -> RawRate:
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(
            target=_raw_worker,
            args=(kind, argon2 or Argon2Parameters.service_defaults(), seconds, ready, results),
        )
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        measured = [results.get(timeout=seconds + 60) for _ in children]
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    return RawRate(
        name=kind,
        per_process=sorted(rate for rate, _ in measured),
        cpu_seconds_per_operation=sum(cpu for _, cpu in measured) / len(measured),
    )


# --------------------------------------------------------------------------------------------
# The service: database, CLI set-up, server process.


def postgres_version(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar())
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def service_environment(*, database_url: str, var_dir: Path, port: int) -> dict[str, str]:
    """Production-style settings: explicit secrets, PostgreSQL (or SQLite), a loopback issuer."""
    return {
        **os.environ,
        "COMMUNE_SSO_ENVIRONMENT": "production",
        "COMMUNE_SSO_DATABASE_URL": database_url,
        "COMMUNE_SSO_VAR_DIR": str(var_dir),
        "COMMUNE_SSO_ISSUER": f"http://{HOST}:{port}",
        "COMMUNE_SSO_KEY_PASSPHRASE": secrets.token_urlsafe(32),
        "COMMUNE_SSO_SECRET_KEY": secrets.token_urlsafe(32),
    }


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    completed = subprocess.run(
        [str(CLI), *args], env=env, input=stdin, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"commune-sso {' '.join(args)} failed ({completed.returncode}):\n"
            f"{completed.stdout}{completed.stderr}"
        )
    return completed.stdout


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str

    @property
    def basic_authorization(self) -> str:
        """RFC 6749 §2.3.1: both parts form-urlencoded, then HTTP Basic."""
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
        return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


@dataclass(frozen=True)
class BenchAccounts:
    password: str
    web_app: ClientCredentials  # authorization_code + refresh_token, ES256 tokens
    service_rs256: ClientCredentials  # client_credentials, RS256 access tokens
    service_es256: ClientCredentials  # client_credentials, ES256 access tokens
    resource_server: ClientCredentials  # confidential client that introspects
    dpop_service: DpopServiceApp  # client_credentials, private_key_jwt + DPoP, ES256 tokens


def add_client(env: dict[str, str], name: str, *options: str) -> ClientCredentials:
    output = run_cli(env, "client", "add", "--name", name, *options, "--json")
    data = json.loads(output)
    return ClientCredentials(data["client_id"], data["client_secret"])


def prepare_service(env: dict[str, str]) -> BenchAccounts:
    run_cli(env, "db", "upgrade")
    password = secrets.token_urlsafe(16)
    run_cli(
        env,
        "user",
        "add",
        USERNAME,
        "--name",
        "Nguyễn Văn Bench",
        "--email",
        "bench@example.vn",
        "--password-stdin",
        stdin=password + "\n",
    )

    def service(name: str, alg: str) -> ClientCredentials:
        return add_client(
            env,
            name,
            "--grant-type",
            "client_credentials",
            "--access-token-alg",
            alg,
            "--scope",
            "openid profile",
        )

    return BenchAccounts(
        password=password,
        web_app=add_client(
            env,
            "Bench web app",
            "--redirect-uri",
            REDIRECT_URI,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--first-party",
            "--id-token-alg",
            "ES256",
            "--access-token-alg",
            "ES256",
        ),
        service_rs256=service("Bench service RS256", "RS256"),
        service_es256=service("Bench service ES256", "ES256"),
        resource_server=service("Bench resource server", "ES256"),
        dpop_service=add_dpop_service(env),
    )


def add_dpop_service(env: dict[str, str]) -> DpopServiceApp:
    """A service like the ES256 one, but authenticated by a signed JWT (its JWK Set is
    registered) and holding DPoP-bound access tokens."""
    app = DpopServiceApp(env["COMMUNE_SSO_ISSUER"])
    jwks_file = Path(env["COMMUNE_SSO_VAR_DIR"]) / "bench-dpop-service-jwks.json"
    jwks_file.write_text(json.dumps(app.jwks))
    output = run_cli(
        env,
        "client",
        "add",
        "--name",
        "Bench service private_key_jwt + DPoP",
        "--grant-type",
        "client_credentials",
        "--access-token-alg",
        "ES256",
        "--scope",
        "openid profile",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(jwks_file),
        "--dpop-bound-access-tokens",
        "--json",
    )
    app.client_id = json.loads(output)["client_id"]
    return app


@contextlib.contextmanager
def running_server(
    env: dict[str, str], *, port: int, workers: int, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``commune-sso serve`` until every worker has started; SIGTERM (then SIGKILL) at the end."""
    command = [
        str(CLI),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-upgrade",
    ]
    with log_path.open("wb") as log:
        # Its own process group: Ctrl-C reaches only us, and we stop it in order.
        server = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_serving(server, port=port, workers=workers, log_path=log_path)
        yield server
    finally:
        with interrupts_ignored():
            stop_server(server)


def wait_until_serving(
    server: subprocess.Popen[bytes], *, port: int, workers: int, log_path: Path
) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}):\n{tail(log_path)}")
        started = log_path.read_text("utf-8", "replace").count("Application startup complete")
        if started >= workers and discovery_answers(port):
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"the server did not start in {SERVER_START_TIMEOUT:.0f} s:\n{tail(log_path)}"
    )


def discovery_answers(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/.well-known/openid-configuration")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # the group we created: the server and its workers
        server.wait()


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text("utf-8", "replace").splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc: how busy the server, the database and the client were.

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CORES = len(os.sched_getaffinity(0))


def process_tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU of a process and its live descendants (and of children they reaped)."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, CPU seconds)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
        stats[int(entry.name)] = (int(fields[1]), (utime + stime + cutime + cstime) / CLOCK_TICKS)
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, pending = 0.0, [root_pid]
    while pending:
        pid = pending.pop()
        total += stats.get(pid, (0, 0.0))[1]
        pending.extend(children.get(pid, []))
    return total


def machine_busy_cpu_seconds() -> float:
    """CPU time all cores spent on anything but idling since boot (/proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def postmaster_pid(cluster_directory: Path) -> int:
    return int((cluster_directory / "data" / "postmaster.pid").read_text().split()[0])


# --------------------------------------------------------------------------------------------
# Operations: what one worker of the load generator does, once per measured unit.


def form_body(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode("ascii")


FORM = ("Content-Type", "application/x-www-form-urlencoded")
JWKS_PATH = "/oauth2/jwks"
HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')
FORM_ACTION = re.compile(r'<form [^>]*action="([^"]+)"')


def expect(step: str, response: HttpResponse, status: int) -> HttpResponse:
    if response.status != status:
        raise UnexpectedResponse(step, response)
    return response


def local_target(step: str, response: HttpResponse) -> str:
    """The path and query of a redirect's Location (relative or on our issuer)."""
    location = response.header("location")
    if not location:
        raise UnexpectedResponse(f"{step} (no Location)", response)
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def cookie_header(cookies: dict[str, str]) -> tuple[str, str]:
    return ("Cookie", "; ".join(f"{name}={value}" for name, value in cookies.items()))


@dataclass
class LoginTokens:
    access_token: str
    refresh_token: str


async def password_login(connection: HttpConnection, accounts: BenchAccounts) -> LoginTokens:
    """One official's sign-in from a new browser, as OIDC Core §3.1 with PKCE (RFC 7636)."""
    client = accounts.web_app
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest())
        .rstrip(b"=")
        .decode("ascii")
    )
    state = secrets.token_urlsafe(16)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": LOGIN_SCOPE,
            "state": state,
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    html_accept = ("Accept", "text/html")
    # The authorization endpoint answers with the login form itself; a server that redirects
    # to a login page instead is followed there, like a browser would.
    login_page = await connection.request(
        "GET", f"/oauth2/authorize?{query}", headers=[html_accept]
    )
    if login_page.status == 303:
        login_page = await connection.request(
            "GET", local_target("authorize", login_page), headers=[html_accept]
        )
    expect("login page", login_page, 200)
    cookies = login_page.set_cookies()
    page = login_page.body.decode("utf-8")
    hidden = {name: html.unescape(value) for name, value in HIDDEN_INPUT.findall(page)}
    action = FORM_ACTION.search(page)
    if action is None or "csrf_token" not in hidden or "interaction" not in hidden:
        raise UnexpectedResponse("login page (form or its fields missing)", login_page)
    submitted = expect(
        "login form",
        await connection.request(
            "POST",
            html.unescape(action.group(1)),  # where a browser would post the form
            headers=[FORM, html_accept, cookie_header(cookies)],
            body=form_body(
                {
                    "username": USERNAME,
                    "password": accounts.password,
                    "csrf_token": hidden["csrf_token"],
                    "interaction": hidden["interaction"],
                }
            ),
        ),
        303,
    )
    cookies.update(submitted.set_cookies())
    # Straight back to the application with the code, or through our own redirects first
    # (/oauth2/authorize/resume): followed until one leaves for the redirect URI.
    answer = submitted
    for _ in range(MAX_OWN_REDIRECTS):
        if (answer.header("location") or "").startswith(REDIRECT_URI):
            break
        answer = await connection.request(
            "GET",
            local_target("after login", answer),
            headers=[html_accept, cookie_header(cookies)],
        )
        if answer.status not in (302, 303):
            raise UnexpectedResponse("after login (no redirect)", answer)
    callback = parse_qs(urlsplit(answer.header("location") or "").query)
    if callback.get("state") != [state] or "code" not in callback:
        raise UnexpectedResponse("after login (no code for our state)", answer)
    exchanged = expect(
        "code exchange",
        await connection.request(
            "POST",
            "/oauth2/token",
            headers=[FORM, ("Authorization", client.basic_authorization)],
            body=form_body(
                {
                    "grant_type": "authorization_code",
                    "code": callback["code"][0],
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                }
            ),
        ),
        200,
    )
    tokens = json.loads(exchanged.body)
    if "id_token" not in tokens or "refresh_token" not in tokens:
        raise UnexpectedResponse("code exchange (tokens missing)", exchanged)
    return LoginTokens(tokens["access_token"], tokens["refresh_token"])


def login_operation(accounts: BenchAccounts) -> Operation:
    async def operation(connection: HttpConnection) -> None:
        await password_login(connection, accounts)

    return operation


def get_operation(path: str, headers: list[tuple[str, str]] | None = None) -> Operation:
    async def operation(connection: HttpConnection) -> None:
        expect(f"GET {path}", await connection.request("GET", path, headers=headers or []), 200)

    return operation


def userinfo_request(bearer: str) -> FixedRequest:
    return FixedRequest(
        "GET", "/oauth2/userinfo", (("Authorization", f"Bearer {bearer}"),), same_answer=True
    )


def client_credentials_request(client: ClientCredentials) -> FixedRequest:
    return FixedRequest(
        "POST",
        "/oauth2/token",
        (FORM, ("Authorization", client.basic_authorization)),
        form_body({"grant_type": "client_credentials"}),
    )


def introspection_request(resource_server: ClientCredentials, access_token: str) -> FixedRequest:
    return FixedRequest(
        "POST",
        "/oauth2/introspect",
        (FORM, ("Authorization", resource_server.basic_authorization)),
        form_body({"token": access_token}),
        same_answer=True,
    )


def userinfo_operation(bearer: str) -> Operation:
    return get_operation("/oauth2/userinfo", [("Authorization", f"Bearer {bearer}")])


def client_credentials_operation(client: ClientCredentials) -> Operation:
    headers = [FORM, ("Authorization", client.basic_authorization)]
    body = form_body({"grant_type": "client_credentials"})

    async def operation(connection: HttpConnection) -> None:
        response = await connection.request("POST", "/oauth2/token", headers=headers, body=body)
        if b'"access_token"' not in expect("client_credentials", response, 200).body:
            raise UnexpectedResponse("client_credentials (no access_token)", response)

    return operation


def dpop_client_credentials_operation(app: DpopServiceApp) -> Operation:
    """client_credentials with a fresh assertion and DPoP proof, both signed here per request.
    The nonce comes from every answer's DPoP-Nonce; a proof with a stale one is answered with
    use_dpop_nonce (RFC 9449 §8) and sent again once, as a client does."""

    async def operation(connection: HttpConnection) -> None:
        for _attempt in range(2):
            response = await connection.request(
                "POST",
                "/oauth2/token",
                headers=[FORM, ("DPoP", app.token_proof())],
                body=app.token_request_body(),
            )
            app.nonce = response.header("dpop-nonce") or app.nonce
            if response.status != 400 or b"use_dpop_nonce" not in response.body:
                break
        body = expect("client_credentials DPoP", response, 200).body
        if b'"token_type":"DPoP"' not in body.replace(b" ", b""):
            raise UnexpectedResponse("client_credentials DPoP (no DPoP token)", response)

    return operation


def refresh_chain_operation(client: ClientCredentials, first_refresh_token: str) -> Operation:
    """RFC 6749 §6 with rotation: each refresh uses the token the previous one returned, so a
    chain is strictly sequential (reusing a rotated token would revoke the whole grant)."""
    latest = first_refresh_token
    headers = [FORM, ("Authorization", client.basic_authorization)]

    async def operation(connection: HttpConnection) -> None:
        nonlocal latest
        body = form_body({"grant_type": "refresh_token", "refresh_token": latest})
        response = expect(
            "refresh",
            await connection.request("POST", "/oauth2/token", headers=headers, body=body),
            200,
        )
        tokens = json.loads(response.body)
        if "refresh_token" not in tokens or "id_token" not in tokens:
            raise UnexpectedResponse("refresh (tokens missing)", response)
        latest = tokens["refresh_token"]

    return operation


def introspection_operation(resource_server: ClientCredentials, access_token: str) -> Operation:
    headers = [FORM, ("Authorization", resource_server.basic_authorization)]
    body = form_body({"token": access_token})

    async def operation(connection: HttpConnection) -> None:
        response = expect(
            "introspection",
            await connection.request("POST", "/oauth2/introspect", headers=headers, body=body),
            200,
        )
        if json.loads(response.body).get("active") is not True:
            raise UnexpectedResponse("introspection (token not active)", response)

    return operation


# --------------------------------------------------------------------------------------------
# Scenarios, targets, results.


@dataclass(frozen=True)
class Target:
    """A minimum rate (absolute, or a share of the scenario's raw limit), or a most the server
    may spend per operation besides the raw operation it contains (a login's argon2id)."""

    description: str
    minimum_rate: float | None = None
    share_of_raw: float | None = None
    maximum_server_ms_excluding_raw: float | None = None

    def met(self, result: ScenarioResult) -> bool:
        if result.errors:
            return False
        if self.maximum_server_ms_excluding_raw is not None:
            spent = result.server_cpu_ms_per_operation_excluding_raw
            return spent is not None and spent <= self.maximum_server_ms_excluding_raw
        return result.rate >= self.minimum(result.raw_limit)

    def minimum(self, raw_limit: float | None) -> float:
        if self.share_of_raw is not None:
            if raw_limit is None:
                raise ValueError(f"{self.description}: no raw limit to take a share of")
            return self.share_of_raw * raw_limit
        if self.minimum_rate is None:
            raise ValueError(f"{self.description}: neither a rate nor a share")
        return self.minimum_rate


@dataclass(frozen=True)
class RawReference:
    """The raw limit beside a scenario: a primitive's rate for all workers, times ``scale``.

    ``bracketed``: measured again right before and after the scenario (their mean is the
    limit), for targets that are a share of it; otherwise the run's first measurement."""

    kind: str
    description: str
    scale: float = 1.0
    bracketed: bool = False
    # Each operation contains one raw operation (a login verifies one password): the result
    # also gives the server's CPU per operation without it.
    contained: bool = False


@dataclass
class ScenarioResult:
    name: str
    concurrency: int
    requests_per_operation: int
    operations: int
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    first_error: str | None
    raw_limit: float | None
    raw_limit_description: str | None
    # A bracketed raw limit's two measurements (all workers, before scaling).
    raw_before: float | None
    raw_after: float | None
    ratio: float | None
    target: str | None
    passed: bool | None
    server_cpu_percent: float
    database_cpu_percent: float | None
    client_cpu_percent: float
    other_cpu_percent: float  # everything else on the machine: noise in the measurement
    # CPU of server, database and client per operation, and the rate the machine's cores would
    # allow at that cost: a figure that other load on the machine disturbs much less.
    cpu_ms_per_operation: float | None
    cpu_bound_ceiling: float | None
    # The server's processes alone, per HTTP request (a login is three): issue 15 compares
    # userinfo and introspection with the peer by this figure.
    server_cpu_us_per_request: float | None
    # For a RawReference that is contained in each operation: the raw operation's CPU (mean of
    # before and after), and the server's CPU per operation less that (issue 15: a password
    # login's cost besides the hash).
    raw_cpu_ms_per_operation: float | None = None
    server_cpu_ms_per_operation_excluding_raw: float | None = None


@dataclass(frozen=True)
class BenchOptions:
    duration: float
    warmup: float
    raw_seconds: float
    workers: int
    database: str
    concurrency: int | None
    # autocannon's version when it drives the scenarios compared with the peer, else None.
    autocannon: str | None = None

    def concurrency_for(self, default: int) -> int:
        return self.concurrency or default

    @property
    def max_operations(self) -> int:
        return int(self.duration * MAX_OPERATIONS_PER_SECOND)


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds of the server's processes, the database's, and the machine."""

    server: float
    database: float
    machine: float

    def minus(self, earlier: CpuSample) -> CpuSample:
        return CpuSample(
            server=self.server - earlier.server,
            database=self.database - earlier.database,
            machine=self.machine - earlier.machine,
        )


class ScenarioRunner:
    """Runs each scenario against the server and turns its LoadResult into a table row."""

    def __init__(
        self,
        *,
        options: BenchOptions,
        port: int,
        server_pid: int,
        database_pid: int | None,
        raw: dict[str, RawRate],
        argon2: Argon2Parameters,
    ) -> None:
        self.options = options
        self.port = port
        self.server_pid = server_pid
        self.database_pid = database_pid
        self.raw = raw
        self.argon2 = argon2
        self.results: list[ScenarioResult] = []

    async def measure_raw(self, kind: str) -> RawRate:
        """A raw limit measured now (the server is idle between scenarios)."""
        return await asyncio.to_thread(
            measure_raw_rate,
            kind,
            processes=self.options.workers,
            seconds=self.options.raw_seconds,
            argon2=self.argon2,
        )

    async def checked_answer(self, operation: Operation, fixed: FixedRequest) -> bytes | None:
        """Run the scenario's own operation once (it checks the answer's content), then send
        the fixed request once: its body, when every answer must be the same, is what autocannon
        expects of each (``--expectBody``)."""
        connection = HttpConnection(HOST, self.port)
        try:
            await operation(connection)
            if not fixed.same_answer:
                return None
            response = await connection.request(
                fixed.method, fixed.path, headers=fixed.headers, body=fixed.body
            )
            return expect(f"{fixed.method} {fixed.path}", response, 200).body
        finally:
            connection.close()

    def cpu_sample(self) -> CpuSample:
        return CpuSample(
            server=process_tree_cpu_seconds(self.server_pid),
            database=process_tree_cpu_seconds(self.database_pid) if self.database_pid else 0.0,
            machine=machine_busy_cpu_seconds(),
        )

    async def run(
        self,
        name: str,
        operations: list[Operation],
        *,
        requests_per_operation: int = 1,
        raw_reference: RawReference | None = None,
        target: Target | None = None,
        stop_worker_on_error: bool = False,
        fixed: FixedRequest | None = None,
    ) -> None:
        """``fixed``: the one request every operation sends, so that autocannon can send it
        (when the bench runs it); ``operations`` are then only used to check the answer."""
        raw_around: list[RawRate] = []
        if raw_reference is not None and raw_reference.bracketed:
            raw_around.append(await self.measure_raw(raw_reference.kind))
        console.print(f"[bold]{name}[/bold]: {len(operations)} connections …", end=" ")
        expected_body = None
        if fixed is not None and self.options.autocannon:
            expected_body = await self.checked_answer(operations[0], fixed)
        cpu_before = self.cpu_sample()
        load: LoadResult
        if fixed is not None and self.options.autocannon:
            load = await run_autocannon(
                host=HOST,
                port=self.port,
                request=fixed,
                connections=len(operations),
                duration=self.options.duration,
                warmup=self.options.warmup,
                expect_body=expected_body,
            )
        else:
            load = await run_closed_loop(
                host=HOST,
                port=self.port,
                operations=operations,
                duration=self.options.duration,
                warmup=self.options.warmup,
                max_operations=self.options.max_operations,
                stop_worker_on_error=stop_worker_on_error,
            )
        cpu = self.cpu_sample().minus(cpu_before)
        raw_rate = raw_description = raw_cpu = None
        if raw_reference is not None:
            raw_description = raw_reference.description
            if raw_around:
                raw_around.append(await self.measure_raw(raw_reference.kind))
            else:
                raw_around.append(self.raw[raw_reference.kind])
            raw_rate = raw_reference.scale * sum(r.total for r in raw_around) / len(raw_around)
            if raw_reference.contained:
                raw_cpu = sum(r.cpu_seconds_per_operation for r in raw_around) / len(raw_around)
        own_cpu = cpu.server + cpu.database + load.client_cpu_seconds
        cpu_per_operation = own_cpu / load.all_operations if load.all_operations else None
        server_per_operation = cpu.server / load.all_operations if load.all_operations else None
        requests = load.all_operations * requests_per_operation
        bracketed = len(raw_around) == 2
        result = ScenarioResult(
            name=name,
            concurrency=load.concurrency,
            requests_per_operation=requests_per_operation,
            operations=load.completed,
            rate=load.rate,
            p50_ms=load.percentile_ms(0.50),
            p99_ms=load.percentile_ms(0.99),
            errors=load.errors,
            first_error=load.first_error,
            raw_limit=raw_rate,
            raw_limit_description=raw_description,
            raw_before=raw_around[0].total if bracketed else None,
            raw_after=raw_around[1].total if bracketed else None,
            ratio=load.rate / raw_rate if raw_rate else None,
            target=target.description if target else None,
            passed=None,
            server_cpu_percent=100 * cpu.server / load.wall_seconds,
            database_cpu_percent=(
                100 * cpu.database / load.wall_seconds if self.database_pid else None
            ),
            client_cpu_percent=100 * load.client_cpu_seconds / load.wall_seconds,
            other_cpu_percent=100
            * (cpu.machine - cpu.server - cpu.database - load.client_cpu_seconds)
            / load.wall_seconds,
            cpu_ms_per_operation=1000 * cpu_per_operation if cpu_per_operation else None,
            cpu_bound_ceiling=CORES / cpu_per_operation if cpu_per_operation else None,
            server_cpu_us_per_request=1e6 * cpu.server / requests if requests else None,
            raw_cpu_ms_per_operation=1000 * raw_cpu if raw_cpu is not None else None,
            server_cpu_ms_per_operation_excluding_raw=(
                1000 * (server_per_operation - raw_cpu)
                if raw_cpu is not None and server_per_operation is not None
                else None
            ),
        )
        if target is not None:
            result.passed = target.met(result)
        console.print(f"{result.rate:,.0f}/s, {result.errors} errors")
        if result.first_error:
            console.print(f"  [red]first error[/red] {result.first_error}", markup=False)
        self.results.append(result)


@dataclass(frozen=True)
class PeerComparison:
    """A scenario run against the peer right before ours, and what ours must reach."""

    name: str
    minimum_rate_ratio: float  # ours ÷ peer, requests per second
    maximum_cpu_ratio: float | None = None  # ours ÷ peer, server CPU per request


# Issue 16: client_credentials as FAPI 2.0 asks (private_key_jwt + DPoP), beside the plain one.
DPOP_SCENARIO = "client_credentials private_key_jwt + DPoP (ES256)"
PLAIN_OF_DPOP_SCENARIO = "client_credentials ES256"

# Issue 15: the fast paths at 2× the peer; userinfo and introspection at least the peer's rate
# with at most twice its server CPU per request.
PEER_COMPARISONS = (
    PeerComparison("discovery", 2.0),
    PeerComparison("jwks", 2.0),
    PeerComparison("client_credentials ES256", 2.0),
    PeerComparison("userinfo", 1.0, maximum_cpu_ratio=2.0),
    PeerComparison("introspection", 1.0, maximum_cpu_ratio=2.0),
)


@dataclass(frozen=True)
class PeerSide:
    """The peer under test: its runner and what its scenarios send."""

    runner: ScenarioRunner
    peer: RunningPeer


async def run_scenarios(
    runner: ScenarioRunner, accounts: BenchAccounts, peer: PeerSide | None
) -> None:
    options, workers = runner.options, runner.options.workers
    cheap = options.concurrency_for(CHEAP_CONCURRENCY)
    heavy = options.concurrency_for(HEAVY_CONCURRENCY)

    async def on_peer(
        name: str,
        operation: Callable[[RunningPeer], Operation],
        fixed: Callable[[RunningPeer], FixedRequest],
    ) -> None:
        """The same scenario against the peer first, with the same load and connections."""
        if peer is not None:
            await peer.runner.run(name, [operation(peer.peer)] * cheap, fixed=fixed(peer.peer))

    for name, path in (("discovery", "/.well-known/openid-configuration"), ("jwks", JWKS_PATH)):
        fixed_get = FixedRequest("GET", path)
        await on_peer(
            name,
            lambda _, path=path: get_operation(path),  # type: ignore[misc]
            lambda _, fixed_get=fixed_get: fixed_get,  # type: ignore[misc]
        )
        await runner.run(name, [get_operation(path)] * cheap, fixed=fixed_get)
    await runner.run(
        "client_credentials RS256",
        [client_credentials_operation(accounts.service_rs256)] * cheap,
        raw_reference=RawReference("rs256_sign", f"RS256 sign ×{workers}", bracketed=True),
        target=Target("≥ 60 % raw", share_of_raw=0.6),
    )
    await on_peer(
        "client_credentials ES256",
        lambda p: client_credentials_operation(ClientCredentials(**vars(p.service))),
        lambda p: client_credentials_request(ClientCredentials(**vars(p.service))),
    )
    await runner.run(
        "client_credentials ES256",
        [client_credentials_operation(accounts.service_es256)] * cheap,
        fixed=client_credentials_request(accounts.service_es256),
        raw_reference=RawReference("es256_sign", f"ES256 sign ×{workers}"),
        target=Target("≥ 1,000/s", minimum_rate=1000.0),
    )
    dpop_app = accounts.dpop_service
    console.print(
        f"{DPOP_SCENARIO}: the load generator signs each request's client assertion and DPoP "
        f"proof itself, {dpop_app.signing_cost_us():.0f} µs of client CPU per request "
        "(both JWTs), counted in the client cpu column"
    )
    await first_dpop_nonce(runner.port, dpop_app)
    await runner.run(
        DPOP_SCENARIO,
        [dpop_client_credentials_operation(dpop_app)] * cheap,
        raw_reference=RawReference("es256_sign", f"ES256 sign ×{workers}"),
    )
    await runner.run(
        "password login",
        [login_operation(accounts)] * heavy,
        requests_per_operation=LOGIN_REQUESTS,
        raw_reference=RawReference(
            "argon2id_verify", f"argon2id ×{workers}", bracketed=True, contained=True
        ),
        target=Target(
            f"≤ {LOGIN_SERVER_MS_EXCLUDING_HASH:.0f} ms server cpu besides the hash",
            maximum_server_ms_excluding_raw=LOGIN_SERVER_MS_EXCLUDING_HASH,
        ),
    )

    # Refresh chains and the bearer token come from logins made outside any measurement.
    chains = await logins_outside_measurement(runner.port, accounts, heavy)
    bearer = (await logins_outside_measurement(runner.port, accounts, 1))[0].access_token
    await runner.run(
        "refresh (rotation)",
        [refresh_chain_operation(accounts.web_app, tokens.refresh_token) for tokens in chains],
        raw_reference=RawReference("es256_sign", f"ES256 sign ×{workers} ÷2", scale=0.5),
        target=(
            Target("≥ 400/s", minimum_rate=400.0) if options.database == "postgresql" else None
        ),
        stop_worker_on_error=True,
    )
    await on_peer(
        "userinfo", lambda p: userinfo_operation(p.bearer), lambda p: userinfo_request(p.bearer)
    )
    await runner.run(
        "userinfo", [userinfo_operation(bearer)] * cheap, fixed=userinfo_request(bearer)
    )
    await on_peer(
        "introspection",
        lambda p: introspection_operation(ClientCredentials(**vars(p.resource_server)), p.bearer),
        lambda p: introspection_request(ClientCredentials(**vars(p.resource_server)), p.bearer),
    )
    await runner.run(
        "introspection",
        [introspection_operation(accounts.resource_server, bearer)] * cheap,
        fixed=introspection_request(accounts.resource_server, bearer),
    )


async def first_dpop_nonce(port: int, app: DpopServiceApp) -> None:
    """One token request outside any measurement, so that the scenario's connections start
    with the server's nonce instead of each paying a use_dpop_nonce round trip."""
    connection = HttpConnection(HOST, port)
    try:
        await dpop_client_credentials_operation(app)(connection)
    except (UnexpectedResponse, OSError, ValueError) as error:
        detail = error.describe() if isinstance(error, UnexpectedResponse) else repr(error)
        console.print(f"DPoP client_credentials fails: {detail}", style="red", markup=False)
    finally:
        connection.close()


async def logins_outside_measurement(
    port: int, accounts: BenchAccounts, count: int
) -> list[LoginTokens]:
    connections = [HttpConnection(HOST, port) for _ in range(count)]
    try:
        return list(
            await asyncio.gather(
                *(password_login(connection, accounts) for connection in connections)
            )
        )
    finally:
        for connection in connections:
            connection.close()


# --------------------------------------------------------------------------------------------
# Reporting.


def machine_info() -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "nproc": CORES,
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
    }


def format_number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_raw_limits(raw: dict[str, RawRate], workers: int) -> None:
    table = Table(title="Raw limits (processes measured at the same time)")
    for column in ("primitive", "per process /s", f"× {workers} processes /s"):
        table.add_column(column, justify="right" if "/s" in column else "left")
    for rate in raw.values():
        table.add_row(
            rate.name,
            " + ".join(format_number(value) for value in rate.per_process),
            format_number(rate.total),
        )
    console.print(table)


def raw_drift(result: ScenarioResult) -> float:
    """How far apart the raw limit measured before and after the scenario is, as a share."""
    if result.raw_before is None or result.raw_after is None:
        return 0.0
    return abs(result.raw_after - result.raw_before) / max(result.raw_before, result.raw_after)


def print_results(
    results: list[ScenarioResult], title: str = "HTTP scenarios (client-side measurement)"
) -> None:
    table = Table(title=title)
    columns = [
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "raw limit",
        "ratio",
        "target",
        "result",
        "server cpu",
        "db cpu",
        "client cpu",
        "other cpu",
        "cpu ms/op",
        "server µs/req",
        "ceiling/s",
    ]
    for column in columns:
        justify = "left" if column in ("scenario", "target") else "right"
        table.add_column(column, justify=justify, no_wrap=True)
    for result in results:
        verdict = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "-"}
        raw = (
            f"{format_number(result.raw_limit)} ({result.raw_limit_description})"
            if result.raw_limit is not None
            else "-"
        )
        if result.raw_before is not None and result.raw_after is not None:
            raw += f" [{format_number(result.raw_before)} → {format_number(result.raw_after)}]"
        table.add_row(
            result.name,
            format_number(result.rate),
            format_number(result.p50_ms, 1),
            format_number(result.p99_ms, 1),
            str(result.errors),
            raw,
            format_number(result.ratio, 2),
            result.target or "-",
            verdict[result.passed],
            f"{result.server_cpu_percent:.0f} %",
            "-" if result.database_cpu_percent is None else f"{result.database_cpu_percent:.0f} %",
            f"{result.client_cpu_percent:.0f} %",
            f"{result.other_cpu_percent:.0f} %",
            format_number(result.cpu_ms_per_operation, 2),
            format_number(result.server_cpu_us_per_request),
            format_number(result.cpu_bound_ceiling),
        )
    console.print(table)
    drifted = [r.name for r in results if raw_drift(r) > RAW_DRIFT_WARNING]
    if drifted:
        console.print(
            f"[yellow]warning:[/yellow] the raw limit measured before and after differs by more "
            f"than {RAW_DRIFT_WARNING:.0%} around: {', '.join(drifted)}. The machine's speed "
            "changed meanwhile; those ratios are less certain."
        )
    disturbed = [r.name for r in results if r.other_cpu_percent > DISTURBED_CPU_PERCENT]
    if disturbed:
        console.print(
            f"[yellow]warning:[/yellow] other processes used more than {DISTURBED_CPU_PERCENT} % "
            f"of a core during: {', '.join(disturbed)}. Those numbers are low; rerun on a quiet "
            "machine."
        )
    console.print(
        f"req/s counts completed operations (a password login is {LOGIN_REQUESTS} requests). "
        "A raw limit with \\[before → after] was measured right around its scenario; the "
        "limit is their mean. "
        "The cpu columns are per cent of one core over the scenario, warm-up included; other "
        "is everything else running on the machine (noise).\nserver µs/req is the server's CPU "
        "per HTTP request (a login is three requests).\ncpu ms/op is the CPU of server + "
        f"database + client per operation; ceiling/s = {CORES} cores ÷ cpu ms/op, the rate this "
        "machine would allow if nothing else ran and the service were purely CPU-bound."
    )


def print_login_cost(results: list[ScenarioResult]) -> None:
    """Issue 15: what a password login costs the server besides verifying the password."""
    for result in results:
        if result.server_cpu_ms_per_operation_excluding_raw is None:
            continue
        assert result.server_cpu_us_per_request is not None
        assert result.raw_cpu_ms_per_operation is not None
        per_login = result.server_cpu_us_per_request * result.requests_per_operation / 1000
        console.print(
            f"{result.name}: server cpu {per_login:.1f} ms per login "
            f"({result.requests_per_operation} requests), of which argon2id "
            f"{result.raw_cpu_ms_per_operation:.1f} ms (one verification, measured in the "
            f"same minutes) → [bold]{result.server_cpu_ms_per_operation_excluding_raw:.1f} ms "
            f"besides the hash[/bold] (target ≤ {LOGIN_SERVER_MS_EXCLUDING_HASH:.0f} ms)"
        )


@dataclass
class ComparisonRow:
    name: str
    peer_rate: float | None
    ours_rate: float | None
    rate_ratio: float | None  # ours ÷ peer
    peer_server_us_per_request: float | None
    ours_server_us_per_request: float | None
    cpu_ratio: float | None  # ours ÷ peer
    target: str
    passed: bool | None
    peer_runs_it: bool = True  # False: a scenario of ours alone, its peer columns say "—"


def compare_with_peer(
    ours: list[ScenarioResult], peer: list[ScenarioResult]
) -> list[ComparisonRow]:
    """One row per compared scenario; without peer results, ours alone and no verdict."""
    ours_by_name = {result.name: result for result in ours}
    peer_by_name = {result.name: result for result in peer}
    rows = []
    for comparison in PEER_COMPARISONS:
        mine, theirs = ours_by_name.get(comparison.name), peer_by_name.get(comparison.name)
        target = f"≥ {comparison.minimum_rate_ratio:.1f}× peer"
        if comparison.maximum_cpu_ratio is not None:
            target += f", cpu ≤ {comparison.maximum_cpu_ratio:.1f}× peer"
        rate_ratio = cpu_ratio = passed = None
        if mine is not None and theirs is not None and theirs.rate > 0:
            rate_ratio = mine.rate / theirs.rate
            if mine.server_cpu_us_per_request and theirs.server_cpu_us_per_request:
                cpu_ratio = mine.server_cpu_us_per_request / theirs.server_cpu_us_per_request
            passed = (
                mine.errors == 0
                and theirs.errors == 0
                and rate_ratio >= comparison.minimum_rate_ratio
                and (
                    comparison.maximum_cpu_ratio is None
                    or (cpu_ratio is not None and cpu_ratio <= comparison.maximum_cpu_ratio)
                )
            )
        rows.append(
            ComparisonRow(
                name=comparison.name,
                peer_rate=theirs.rate if theirs else None,
                ours_rate=mine.rate if mine else None,
                rate_ratio=rate_ratio,
                peer_server_us_per_request=theirs.server_cpu_us_per_request if theirs else None,
                ours_server_us_per_request=mine.server_cpu_us_per_request if mine else None,
                cpu_ratio=cpu_ratio,
                target=target,
                passed=passed,
            )
        )
    cost = dpop_cost(ours)
    if cost is not None:
        rows.append(
            ComparisonRow(
                name=DPOP_SCENARIO,
                peer_rate=None,
                ours_rate=cost.rate,
                rate_ratio=None,
                peer_server_us_per_request=None,
                ours_server_us_per_request=cost.server_us_per_request,
                cpu_ratio=None,
                target=cost.beside_plain(),
                passed=None,
                peer_runs_it=False,
            )
        )
    return rows


@dataclass(frozen=True)
class DpopCost:
    """Issue 16: client_credentials with private_key_jwt + DPoP beside the plain ES256 one."""

    rate: float
    plain_rate: float
    server_us_per_request: float | None
    plain_server_us_per_request: float | None

    @property
    def rate_ratio(self) -> float | None:
        return self.rate / self.plain_rate if self.plain_rate else None

    @property
    def cpu_ratio(self) -> float | None:
        if self.server_us_per_request is None or not self.plain_server_us_per_request:
            return None
        return self.server_us_per_request / self.plain_server_us_per_request

    def beside_plain(self) -> str:
        return (
            f"no target; vs plain ES256: server µs/req ×{format_number(self.cpu_ratio, 2)}, "
            f"req/s ×{format_number(self.rate_ratio, 2)}"
        )


def dpop_cost(results: list[ScenarioResult]) -> DpopCost | None:
    by_name = {result.name: result for result in results}
    dpop, plain = by_name.get(DPOP_SCENARIO), by_name.get(PLAIN_OF_DPOP_SCENARIO)
    if dpop is None or plain is None:
        return None
    return DpopCost(
        rate=dpop.rate,
        plain_rate=plain.rate,
        server_us_per_request=dpop.server_cpu_us_per_request,
        plain_server_us_per_request=plain.server_cpu_us_per_request,
    )


def print_dpop_cost(results: list[ScenarioResult]) -> None:
    cost = dpop_cost(results)
    if cost is None:
        return
    console.print(
        f"{DPOP_SCENARIO}: server cpu {format_number(cost.server_us_per_request)} µs/req = "
        f"[bold]×{format_number(cost.cpu_ratio, 2)}[/bold] the plain {PLAIN_OF_DPOP_SCENARIO} "
        f"({format_number(cost.plain_server_us_per_request)} µs/req); "
        f"{format_number(cost.rate)}/s = ×{format_number(cost.rate_ratio, 2)} its "
        f"{format_number(cost.plain_rate)}/s"
    )


def print_comparison(rows: list[ComparisonRow], peer_label: str, workers: int) -> None:
    table = Table(title=f"commune-sso ({workers} workers) beside {peer_label}, same run")
    columns = [
        "scenario",
        "peer req/s",
        "ours req/s",
        "ratio",
        "peer server µs/req",
        "ours server µs/req",
        "cpu ratio",
        "target",
        "result",
    ]
    for column in columns:
        left = column in ("scenario", "target")
        table.add_column(column, justify="left" if left else "right")
    verdict = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "-"}
    for row in rows:
        no_peer = "—"
        table.add_row(
            row.name,
            format_number(row.peer_rate) if row.peer_runs_it else no_peer,
            format_number(row.ours_rate),
            format_number(row.rate_ratio, 2) if row.peer_runs_it else no_peer,
            format_number(row.peer_server_us_per_request) if row.peer_runs_it else no_peer,
            format_number(row.ours_server_us_per_request),
            format_number(row.cpu_ratio, 2) if row.peer_runs_it else no_peer,
            row.target,
            verdict[row.passed],
        )
    console.print(table)
    console.print(
        "Each scenario ran against the peer right before ours, same load generator and "
        "connections. ratio = ours ÷ peer req/s; cpu ratio = ours ÷ peer server CPU per "
        "request (server processes from /proc, warm-up included; ours without PostgreSQL). "
        "— : the peer does not run that scenario."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument(
        "--concurrency",
        type=int,
        help=f"connections for every scenario (default {CHEAP_CONCURRENCY}, and "
        f"{HEAVY_CONCURRENCY} for logins and refresh chains)",
    )
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--json-out", type=Path, help="default bench/results/oidc-<time>.json")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: {QUICK_DURATION:.0f} s per scenario"
    )
    parser.add_argument(
        "--no-peer",
        dest="peer",
        action="store_false",
        help=f"do not start the reference peer (oidc-provider {PEER_MAJOR}, from npm)",
    )
    defaults = Argon2Parameters.service_defaults()
    parser.add_argument(
        "--argon2-memory-kib",
        type=int,
        default=defaults.memory_kib,
        help="the service's argon2id memory cost for this run (default: the service default)",
    )
    parser.add_argument(
        "--load-generator",
        choices=["autocannon", "loadgen"],
        default="autocannon",
        help="what drives the scenarios compared with the peer: autocannon (npm, as issue 15 "
        "measured; the default) or the bench's own asyncio loadgen.py",
    )
    parser.add_argument("--argon2-time-cost", type=int, default=defaults.time_cost)
    parser.add_argument("--argon2-parallelism", type=int, default=defaults.parallelism)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.workers < 1 or (args.concurrency or 1) < 1:
        parser.error("duration, workers and concurrency must be positive")
    return args


def start_peer(
    cleanup: contextlib.ExitStack,
    options: BenchOptions,
    raw: dict[str, RawRate],
    argon2: Argon2Parameters,
    var_dir: Path,
    wanted: bool,
) -> tuple[PeerSide | None, dict[str, Any]]:
    """oidc-provider on its own loopback port until ``cleanup`` closes, or why not."""
    name = f"oidc-provider {PEER_MAJOR}"
    if not wanted:
        return None, {"name": name, "unavailable": "--no-peer"}
    try:
        peer = cleanup.enter_context(
            running_peer(
                host=HOST,
                port=free_port(),
                redirect_uri=REDIRECT_URI,
                log_path=var_dir / "oidc-provider.log",
            )
        )
    except PeerUnavailable as error:
        console.print(f"[red]peer not started[/red]: {error}", markup=False)
        return None, {"name": name, "unavailable": str(error)}
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    name = f"oidc-provider {peer.version}"
    console.print(
        f"peer: {name} (node {node.stdout.strip()}, NODE_ENV=production), one process, "
        f"in-memory adapter, pid {peer.pid}, port {peer.port}"
    )
    runner = ScenarioRunner(
        options=options,
        port=peer.port,
        server_pid=peer.pid,
        database_pid=None,
        raw=raw,
        argon2=argon2,
    )
    return PeerSide(runner=runner, peer=peer), {
        "name": name,
        "node": node.stdout.strip(),
        "unavailable": None,
    }


def autocannon_version(wanted: str) -> str | None:
    """autocannon installed (from npm, once) when asked for; None: loadgen.py drives all."""
    if wanted != "autocannon":
        return None
    try:
        return autocannon_load.install()
    except PeerUnavailable as error:
        console.print(f"[red]autocannon unavailable, loadgen.py drives all[/red]: {error}")
        return None


def exit_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # runs every cleanup, like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = BenchOptions(
        duration=QUICK_DURATION if args.quick else args.duration,
        warmup=WARMUP_SECONDS / 2 if args.quick else WARMUP_SECONDS,
        raw_seconds=QUICK_RAW_SECONDS if args.quick else RAW_SECONDS,
        workers=args.workers,
        database=args.database,
        concurrency=args.concurrency,
        autocannon=autocannon_version(args.load_generator),
    )
    started_at = datetime.now(UTC)
    json_out = args.json_out or (
        REPO / "bench" / "results" / f"oidc-{started_at:%Y%m%dT%H%M%SZ}.json"
    )
    signal.signal(signal.SIGTERM, exit_on_sigterm)

    machine = machine_info()
    console.print(
        f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"Python {machine['python']}, {machine['platform']}"
    )
    console.print(f"options: {asdict(options)}")

    argon2 = Argon2Parameters(
        memory_kib=args.argon2_memory_kib,
        time_cost=args.argon2_time_cost,
        parallelism=args.argon2_parallelism,
    )
    raw = {
        kind: measure_raw_rate(
            kind, processes=options.workers, seconds=options.raw_seconds, argon2=argon2
        )
        for kind in ("rs256_sign", "es256_sign", "argon2id_verify")
    }
    print_raw_limits(raw, options.workers)

    with contextlib.ExitStack() as cleanup:
        var_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="oidc-bench-")))
        if options.database == "postgresql":
            database_url, cluster = cleanup.enter_context(throwaway_postgres("oidc-bench-pg-"))
            database_pid: int | None = postmaster_pid(cluster)
            database_version = f"PostgreSQL {postgres_version(database_url)} (durable)"
        else:
            database_url = f"sqlite:///{var_dir / 'commune-sso.db'}"
            database_pid, database_version = None, "SQLite (WAL)"
        port = free_port()
        env = service_environment(database_url=database_url, var_dir=var_dir, port=port)
        env.update(argon2.environment())
        service_settings = Settings(
            issuer=env["COMMUNE_SSO_ISSUER"],
            var_dir=var_dir,
            database_url=database_url,
            environment="production",
            argon2_memory_kib=argon2.memory_kib,
            argon2_time_cost=argon2.time_cost,
            argon2_parallelism=argon2.parallelism,
        )
        console.print(
            f"service: {database_version}, {options.workers} workers, argon2id "
            f"m={service_settings.argon2_memory_kib} KiB t={service_settings.argon2_time_cost} "
            f"p={service_settings.argon2_parallelism}, pool {service_settings.db_pool_size}"
            f"/worker, issuer {service_settings.issuer}"
        )
        accounts = prepare_service(env)
        log_path = var_dir / "server.log"
        server = cleanup.enter_context(
            running_server(env, port=port, workers=options.workers, log_path=log_path)
        )
        runner = ScenarioRunner(
            options=options,
            port=port,
            server_pid=server.pid,
            database_pid=database_pid,
            raw=raw,
            argon2=argon2,
        )
        peer_side, peer_report = start_peer(cleanup, options, raw, argon2, var_dir, args.peer)
        uvloop.run(run_scenarios(runner, accounts, peer_side))
        server_errors = [
            line
            for line in log_path.read_text("utf-8", "replace").splitlines()
            if "Traceback" in line or " ERROR" in line or line.startswith("ERROR")
        ]

    print_results(runner.results)
    print_login_cost(runner.results)
    print_dpop_cost(runner.results)
    peer_results = peer_side.runner.results if peer_side else []
    if peer_side is not None:
        print_results(peer_results, title=f"{peer_report['name']}: the same scenarios")
    comparison = compare_with_peer(runner.results, peer_results)
    print_comparison(comparison, str(peer_report["name"]), options.workers)
    if peer_side is None:
        console.print(
            f"[yellow]no peer in this run[/yellow] ({peer_report['unavailable']}): the "
            "comparison shows commune-sso only, and its targets are not judged."
        )
    if server_errors:
        console.print(f"[red]server log has {len(server_errors)} error lines[/red], first ones:")
        for line in server_errors[:5]:
            console.print(f"  {line}", markup=False)
    report = {
        "started_at": started_at.isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine,
        "options": asdict(options),
        "database": database_version,
        "settings": service_settings.model_dump(
            mode="json", exclude={"key_passphrase", "secret_key"}
        ),
        "raw_limits": {
            kind: {"per_process": rate.per_process, "total": rate.total}
            for kind, rate in raw.items()
        },
        "scenarios": [asdict(result) for result in runner.results],
        "peer": peer_report | {"scenarios": [asdict(result) for result in peer_results]},
        "comparison_with_peer": [asdict(row) for row in comparison],
        "dpop_beside_plain": (
            asdict(cost) | {"cpu_ratio": cost.cpu_ratio, "rate_ratio": cost.rate_ratio}
            if (cost := dpop_cost(runner.results))
            else None
        ),
        "server_error_lines": len(server_errors),
    }
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    console.print(f"JSON: {json_out}")
    failed = [result.name for result in runner.results if result.passed is False]
    failed += [row.name for row in comparison if row.passed is False]
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        console.print("interrupted: the server and the database were stopped")
        sys.exit(130)
