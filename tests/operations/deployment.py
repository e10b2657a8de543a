"""A production-shaped deployment on one machine, for the operations tests (issue 14).

Three `commune-sso serve` instances on one PostgreSQL cluster of their own (so that it can be
stopped and started without touching the suite's shared cluster), behind a real nginx that
round-robins every request with no sticky sessions and appends X-Forwarded-For, as a
province's proxy does. Everything is started as real processes from the given `commune-sso`
executable (the built wheel in a fresh virtual environment), on loopback ports only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.restartable_postgres import RestartablePostgres

REPO = Path(__file__).resolve().parents[2]
KEY_PASSPHRASE = "ops-test-key-passphrase-0123456789"
SECRET_KEY = "ops-test-server-secret-0123456789abcdef"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()),
        None,
    )


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.05) -> float:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it is true; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s")


# ---------------------------------------------------------------------------------------------
# commune-sso instances


@dataclass
class Instance:
    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Deployment:
    root: Path
    executable: Path
    postgres: RestartablePostgres
    public_port: int
    instances: list[Instance] = field(default_factory=list)
    nginx: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    def environment(self, instance: str = "cli") -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            # Nothing of the test process's Python set-up: the fresh venv stands alone.
            if not key.startswith(("COMMUNE_SSO_", "PYTHON", "VIRTUAL_ENV", "PROMETHEUS_"))
        }
        env.update(
            {
                "COMMUNE_SSO_ISSUER": self.issuer,
                "COMMUNE_SSO_DATABASE_URL": self.postgres.url,
                "COMMUNE_SSO_VAR_DIR": str(self.root / f"var-{instance}"),
                # Shared by every host, as a province would mount it (the audit key lives
                # there too by default).
                "COMMUNE_SSO_KEY_DIR": str(self.root / "shared-keys"),
                "COMMUNE_SSO_KEY_PASSPHRASE": KEY_PASSPHRASE,
                "COMMUNE_SSO_SECRET_KEY": SECRET_KEY,
                "COMMUNE_SSO_TRUSTED_PROXIES": "127.0.0.1",
                "COMMUNE_SSO_BEHIND_PROXY": "true",
                "COMMUNE_SSO_ENVIRONMENT": "production",
                # The growing delay before a throttled attempt (up to 4 s) is tested on its
                # own; here only the lock matters, and 10 guesses need not take 30 s.
                "COMMUNE_SSO_LOGIN_MAX_DELAY": "0.2",
            }
        )
        return env

    def cli(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(self.executable), *args],
            env=self.environment(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
        )
        if result.returncode != 0:
            raise AssertionError(f"commune-sso {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.stdout

    # -- instances --------------------------------------------------------------------------

    def start_instance(self, instance: Instance) -> None:
        log = (self.root / f"{instance.name}.log").open("ab")
        instance.process = subprocess.Popen(
            [
                str(self.executable),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(instance.port),
                "--workers",
                "1",
                "--no-upgrade",
            ],
            env=self.environment(instance.name),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
        )
        wait_until(
            lambda: self._answers(instance),
            timeout=START_TIMEOUT,
            what=f"{instance.name} ready (log: {self.root / f'{instance.name}.log'})",
        )

    def _answers(self, instance: Instance) -> bool:
        assert instance.process is not None
        if instance.process.poll() is not None:
            log = (self.root / f"{instance.name}.log").read_text(errors="replace")
            raise AssertionError(f"{instance.name} exited: {log[-3000:]}")
        response = httpx.get(f"http://{instance.address}/healthz", timeout=2)
        return response.status_code == 200

    def kill(self, instance: Instance) -> None:
        """kill -9: no drain, no clean-up, as a crashed host."""
        assert instance.process is not None
        os.killpg(instance.process.pid, signal.SIGKILL)
        instance.process.wait(10)

    # -- nginx -------------------------------------------------------------------------------

    def start_nginx(self, upstreams: Sequence[Instance]) -> None:
        binary = nginx_binary()
        assert binary is not None
        directory = self.root / "nginx"
        directory.mkdir(exist_ok=True)
        (directory / "nginx.conf").write_text(nginx_conf(directory, self.public_port, upstreams))
        self.nginx = subprocess.Popen(
            [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"],
            stdout=subprocess.DEVNULL,
            stderr=(directory / "error.log").open("ab"),
        )
        wait_until(
            lambda: httpx.get(f"{self.issuer}/healthz", timeout=2).status_code == 200,
            timeout=START_TIMEOUT,
            what="nginx in front",
        )

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        for instance in self.instances:
            if instance.process is not None and instance.process.poll() is None:
                os.killpg(instance.process.pid, signal.SIGTERM)
                try:
                    instance.process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(instance.process.pid, signal.SIGKILL)
        self.postgres.remove()


def nginx_main_context(directory: Path, *, worker_connections: int) -> str:
    """The lines before ``http``: one worker in the foreground, its pid file in ``directory``
    (as root, nginx must be told to stay root: there is no other user to switch to here)."""
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes 1;
daemon off;
pid {directory / "nginx.pid"};
events {{ worker_connections {worker_connections}; }}"""


def nginx_temp_paths(directory: Path) -> str:
    """Every temporary directory inside ``directory`` (the defaults are not writable)."""
    return "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


def nginx_conf(directory: Path, port: int, upstreams: Sequence[Instance]) -> str:
    """What a province's proxy does: round robin, no stickiness, passive health checks
    (max_fails/fail_timeout), X-Forwarded-For appended, the serving upstream shown to the
    test in a response header."""
    servers = "\n".join(
        f"        server {each.address} max_fails=1 fail_timeout=10s;" for each in upstreams
    )
    return f"""
{nginx_main_context(directory, worker_connections=1024)}
http {{
    access_log off;
{nginx_temp_paths(directory)}
    upstream sso {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://sso;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_next_upstream error timeout http_502;
            proxy_connect_timeout 2s;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""
