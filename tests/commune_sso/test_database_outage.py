"""Failure behaviour over real HTTP: a real uvicorn on a loopback port, a raw keep-alive
HTTP/1.1 client, and a PostgreSQL cluster of this test's own that it stops (immediate
shutdown, as a crash or a failover looks to the app) and starts again.

While the database is down every request answers 503 with Retry-After in the caller's format
(HTML page, OAuth JSON, SCIM Error, OCSP tryLater), never 500; after it is back the next
requests succeed within 2 s without restarting the app. Every 5xx carries Connection: close
and the connection then ends cleanly (EOF, not a reset).
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from starlette.applications import Starlette

from commune_sso.app import build_runtime, create_app
from commune_sso.database import upgrade
from idp.claims import SCIM_SCOPE
from tests import restartable_postgres
from tests.conftest import register_client, settings_for
from tests.restartable_postgres import RestartablePostgres
from tests.throwaway_certificates import self_signed_p256

ROOT = Path(__file__).resolve().parents[2]
PG_THROWAWAY = ROOT / "scripts" / "pg-throwaway"


# --------------------------------------------------------------------------------------------
# A real server and a raw client


class LiveServer:
    """uvicorn serving ``app`` in a thread on a free loopback port."""

    def __init__(self, app: Starlette) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, lifespan="off", log_level="critical", server_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    closed_cleanly: bool | None  # after Connection: close, did the server end with EOF?

    def json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.body)
        return data


class KeepAliveClient:
    """One HTTP/1.1 connection reused across requests, as a proxy's upstream pool does."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Answer:
        reused = self.sock is not None
        try:
            return self._exchange(method, path, headers, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server may close a connection left idle past its keep-alive timeout (a slow
            # database restart on a busy machine); a proxy then retries on a new connection.
            if not reused:
                raise
            self.close()
            return self._exchange(method, path, headers, body)

    def _exchange(
        self, method: str, path: str, headers: dict[str, str] | None, body: bytes
    ) -> Answer:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        response = http.client.HTTPResponse(self.sock, method=method)
        response.begin()
        data = response.read()  # the whole body (Content-Length or chunked): a complete answer
        closed: bool | None = None
        if response.getheader("connection", "").lower() == "close":
            try:
                closed = self.sock.recv(1) == b""
            except ConnectionResetError:
                closed = False
            self.close()
        return Answer(response.status, response.headers, data, closed)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def assert_unavailable(answer: Answer) -> None:
    assert answer.status == 503, (answer.status, answer.body[:300])
    assert answer.headers["retry-after"] == "5"
    assert answer.headers["connection"] == "close"
    assert answer.closed_cleanly is True


# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[RestartablePostgres, str]]:
    if not restartable_postgres.available():
        pytest.skip("needs PostgreSQL server binaries")
    postgres = RestartablePostgres("pg-outage-")
    try:
        upgrade(postgres.url)
        yield postgres, postgres.url
    finally:
        postgres.remove()


def _ocsp_request_path() -> str:
    """A well-formed OCSP GET path about a CA this instance does not serve."""
    certificate, _ = self_signed_p256("Outage test CA")
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, certificate, hashes.SHA1())
        .build()
        .public_bytes(Encoding.DER)
    )
    return "/ca/ocsp/" + base64.b64encode(request).decode("ascii")


def test_postgresql_outage_answers_503_then_recovers_without_restart(
    cluster: tuple[RestartablePostgres, str], tmp_path: Path, key_dir: Path
) -> None:
    postgres, url = cluster
    settings = settings_for(tmp_path=tmp_path, database_url=url, key_dir=key_dir)
    runtime = build_runtime(settings)
    client, secret = register_client(
        runtime,
        name="Hệ thống một cửa",
        grant_types=["client_credentials", "authorization_code"],
        scope=f"openid {SCIM_SCOPE}",
    )
    assert secret is not None
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode("ascii")
    token_request = {
        "headers": {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        "body": b"grant_type=client_credentials",
    }
    ocsp_path = _ocsp_request_path()
    browser = {"Accept": "text/html,application/xhtml+xml", "Accept-Language": "vi"}
    # A complete authorization request: it makes a login interaction in the database.
    authorize = (
        f"/oauth2/authorize?client_id={client.client_id}&response_type=code&scope=openid"
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=s&nonce=n&code_challenge_method=S256"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )

    with LiveServer(create_app(settings, runtime=runtime)) as server:
        web = KeepAliveClient(server.port)
        answer = web.request("POST", "/oauth2/token", **token_request)  # type: ignore[arg-type]
        assert answer.status == 200, answer.body
        access_token = answer.json()["access_token"]
        scim_headers = {"Authorization": f"Bearer {access_token}"}
        assert web.request("GET", "/scim/v2/Users", headers=scim_headers).status == 200
        assert web.request("GET", authorize, headers=browser).status in (200, 302, 303)

        # An authorization code is looked up in the database (the client is cached).
        code_request = {
            "headers": token_request["headers"],
            "body": b"grant_type=authorization_code&code=unknown"
            b"&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb",
        }
        answer = web.request("POST", "/oauth2/token", **code_request)  # type: ignore[arg-type]
        assert answer.status == 400
        assert answer.json()["error"] == "invalid_grant"

        postgres.crash()
        # The first request meets a pooled connection the crash broke, the next ones a
        # refused connection: both are "unavailable".
        for _ in range(2):
            answer = web.request("POST", "/oauth2/token", **code_request)  # type: ignore[arg-type]
            assert_unavailable(answer)
            assert answer.json()["error"] == "temporarily_unavailable"

        page = web.request("GET", authorize, headers=browser)
        assert_unavailable(page)
        assert page.headers["content-type"].startswith("text/html")
        assert "Dịch vụ tạm thời gián đoạn" in page.body.decode("utf-8")

        scim = web.request("GET", "/scim/v2/Users", headers=scim_headers)
        assert_unavailable(scim)
        assert scim.headers["content-type"].startswith("application/scim+json")
        assert scim.json()["status"] == "503"
        assert "urn:ietf:params:scim:api:messages:2.0:Error" in scim.json()["schemas"]  # type: ignore[operator]

        api = web.request("GET", "/ca/crl/issuing.crl")
        assert_unavailable(api)
        assert api.json()["error"] == "temporarily_unavailable"

        # RFC 6960 §2.3: the OCSP responder says tryLater, inside an HTTP 200.
        answer = web.request("GET", ocsp_path)
        assert answer.status == 200
        status = ocsp.load_der_ocsp_response(answer.body).response_status
        assert status == ocsp.OCSPResponseStatus.TRY_LATER

        postgres.start_again()
        back = time.monotonic()
        while True:
            answer = web.request("GET", "/scim/v2/Users", headers=scim_headers)
            if answer.status == 200:
                break
            assert answer.status == 503, answer.body
            assert time.monotonic() - back < 2, "not recovered within 2 s"
            time.sleep(0.05)
        assert time.monotonic() - back < 2
        # Everything works again on the same process, keep-alive reused.
        answer = web.request("POST", "/oauth2/token", **code_request)  # type: ignore[arg-type]
        assert answer.status == 400
        assert answer.json()["error"] == "invalid_grant"
        answer = web.request("GET", ocsp_path)
        status = ocsp.load_der_ocsp_response(answer.body).response_status
        assert status == ocsp.OCSPResponseStatus.UNAUTHORIZED  # not our CA: answered again
        assert answer.closed_cleanly is None  # no Connection: close on a 200
        web.close()
    runtime.session_factory.kw["bind"].dispose()


def test_unexpected_error_is_a_complete_500_with_connection_close(
    tmp_path: Path, sqlite_template: Path, key_dir: Path
) -> None:
    """A real 500: a table missing from the database (SQLite says "no such table", which is a
    broken schema, not an outage). The answer is complete and the connection ends cleanly."""
    database = tmp_path / "broken.db"
    shutil.copyfile(sqlite_template, database)
    settings = settings_for(
        tmp_path=tmp_path, database_url=f"sqlite:///{database}", key_dir=key_dir
    )
    runtime = build_runtime(settings)
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA foreign_keys=OFF")
        connection.execute("DROP TABLE idp_client")
    with LiveServer(create_app(settings, runtime=runtime)) as server:
        web = KeepAliveClient(server.port)
        answer = web.request(
            "POST",
            "/oauth2/token",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=b"grant_type=client_credentials&client_id=x&client_secret=y",
        )
        assert answer.status == 500
        assert answer.json() == {
            "error": "server_error",
            "error_description": "The server could not complete the request.",
        }
        assert answer.headers["connection"] == "close"
        assert "retry-after" not in answer.headers
        assert answer.closed_cleanly is True
        # A 4xx keeps the connection open for the next request.
        answer = web.request("GET", "/no-such-page")
        assert answer.status == 404
        assert answer.closed_cleanly is None
        again = web.request("GET", "/no-such-page")
        assert again.status == 404
        web.close()
    runtime.session_factory.kw["bind"].dispose()
