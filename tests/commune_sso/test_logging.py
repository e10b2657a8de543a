"""Structured logs: one JSON object per line with the request id; no secret in any line; and a
real `commune-sso serve --workers 2` whose /metrics adds up both workers."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.applications import Starlette
from starlette.testclient import TestClient

from commune_sso.app import create_app
from commune_sso.logs import JsonFormatter, RequestIdFilter
from core.settings import Settings
from idp.runtime import IdpRuntime
from tests.commune_sso.test_cli import commune_sso_executable, free_port
from tests.commune_sso.test_health_and_metrics import sample
from tests.conftest import OFFICIAL_PASSWORD, register_client
from tests.idp.oidc_flow import (
    authorize_params,
    exchange_code,
    log_in,
    open_login_form,
    pkce_pair,
    query_of,
    submit_login,
)
from tests.serving import stop


class JsonLines(logging.Handler):
    """Every record of every logger, formatted as the service's JSON log line."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestIdFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The test's own HTTP client (TestClient is httpx) logs the URLs it requests; the
        # service's logging configuration keeps httpx at WARNING (commune_sso/logs.py).
        if not record.name.startswith(("httpx", "httpcore")):  # httpx2 is the TestClient's
            self.lines.append(self.format(record))


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    handler = JsonLines()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # the most that could ever be written
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@pytest.fixture
def app(settings: Settings, runtime: IdpRuntime) -> Starlette:
    return create_app(settings.model_copy(update={"access_log": True}), runtime=runtime)


def test_access_line_is_json_with_request_id_and_no_query_string(
    web: TestClient, json_logs: JsonLines
) -> None:
    response = web.get(
        "/.well-known/openid-configuration?code=secret-looking-value",
        headers={"X-Request-ID": "probe-123"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "probe-123"
    entries = [json.loads(line) for line in json_logs.lines]  # every line is one JSON object
    (access,) = [e for e in entries if e["logger"] == "commune_sso.access"]
    assert access["request_id"] == "probe-123"
    assert access["method"] == "GET"
    assert access["path"] == "/.well-known/openid-configuration"
    assert access["route"] == "/.well-known/openid-configuration"
    assert access["status"] == 200
    assert access["client"] == "testclient"
    assert isinstance(access["duration_ms"], float)
    assert access["level"] == "INFO" and access["ts"].endswith("+00:00")
    assert "secret-looking-value" not in "\n".join(json_logs.lines)


def test_no_secret_in_any_log_line_through_a_whole_flow(
    web: TestClient, runtime: IdpRuntime, official, rp, json_logs: JsonLines
) -> None:
    client, client_secret = rp
    service, service_secret = register_client(
        runtime, grant_types=["client_credentials"], redirect_uris=[], scope="profile"
    )
    assert service_secret is not None
    secrets_seen: list[str] = [OFFICIAL_PASSWORD, client_secret, service_secret]

    # A wrong password first (the failure path logs and audits too).
    login_page = open_login_form(web, authorize_params(client.client_id, pkce_pair()[1]))
    assert submit_login(web, login_page, official.username, "sai-mật-khẩu-1").status_code == 401
    secrets_seen.append("sai-mật-khẩu-1")

    verifier, challenge = pkce_pair()
    redirected = log_in(web, authorize_params(client.client_id, challenge), official.username,
                        OFFICIAL_PASSWORD)  # fmt: skip
    code = query_of(redirected.headers["location"])["code"]
    tokens = exchange_code(web, client.client_id, client_secret, code, verifier)
    assert tokens.status_code == 200, tokens.text
    issued = tokens.json()
    refreshed = web.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        auth=(client.client_id, client_secret),
    )
    assert refreshed.status_code == 200, refreshed.text
    # A replayed code is refused (and the refusal logged, if anything is).
    assert exchange_code(web, client.client_id, client_secret, code, verifier).status_code == 400
    service_token = web.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(service.client_id, service_secret),
    )
    assert service_token.status_code == 200
    secrets_seen += [
        code,
        verifier,
        issued["access_token"],
        issued["refresh_token"],
        issued["id_token"],
        refreshed.json()["access_token"],
        refreshed.json()["refresh_token"],
        service_token.json()["access_token"],
        web.cookies.get(runtime.session_cookie_name) or "",
    ]
    text = "\n".join(json_logs.lines)
    # The capture saw the flow: an access line per request at least.
    assert text.count('"logger": "commune_sso.access"') >= 8
    for secret in secrets_seen:
        assert secret and secret not in text, f"a secret reached the log: {secret[:6]}…"


def test_two_workers_share_metrics_and_write_json_lines(tmp_path: Path) -> None:
    """`serve --workers 2`: each worker writes its own samples to the multiprocess directory;
    /metrics (answered by either) adds them up; the access lines are JSON on stderr."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale")  # emptied at start
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMUNE_SSO_")}
    env.update(
        COMMUNE_SSO_VAR_DIR=str(tmp_path / "var"),
        COMMUNE_SSO_ISSUER=issuer,
        COMMUNE_SSO_LOG_FORMAT="json",
        COMMUNE_SSO_AUDIT_CHECKPOINT_INTERVAL="0",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    log_path = tmp_path / "serve.log"
    sent = 30
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                commune_sso_executable(),
                "serve",
                "--port",
                str(port),
                "--workers",
                "2",
                "--access-log",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
        try:
            # Both workers listening before counting (each logs it once its socket is open).
            deadline = time.monotonic() + 60
            while log_path.read_text(encoding="utf-8").count("Application startup complete") < 2:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            for _ in range(sent):  # fresh connections, spread over the workers by the kernel
                reply = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=5)
                assert reply.status_code == 200
            metrics = httpx.get(f"{issuer}/metrics", timeout=5)  # from loopback: allowed
            assert metrics.status_code == 200, metrics.text
        finally:
            stop(server)
    counted = sample(
        metrics.text,
        "commune_sso_http_requests_total",
        method="GET",
        route="/.well-known/openid-configuration",
        status="2xx",
    )
    assert counted == sent
    # What each worker counted, read from its own samples file alone: both served, and the
    # scrape above was the sum of the two.
    per_worker = []
    for samples in metrics_dir.glob("counter_*.db"):
        alone = tmp_path / f"alone-{samples.stem}"
        alone.mkdir()
        shutil.copyfile(samples, alone / samples.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        per_worker.append(
            registry.get_sample_value(
                "commune_sso_http_requests_total",
                {"method": "GET", "route": "/.well-known/openid-configuration", "status": "2xx"},
            )
            or 0
        )
    assert len(per_worker) == 2 and "counter_1.db" not in os.listdir(metrics_dir)
    assert sum(per_worker) == sent and min(per_worker) > 0, per_worker
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line]
    access = [
        entry
        for entry in (json.loads(line) for line in lines if line.startswith("{"))
        if entry["logger"] == "commune_sso.access"
    ]
    assert sum(e["route"] == "/.well-known/openid-configuration" for e in access) == sent
    assert all(e["request_id"] and e["client"] == "127.0.0.1" for e in access)
