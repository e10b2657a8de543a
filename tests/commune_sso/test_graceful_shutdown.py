"""SIGTERM drains requests in flight: a real `commune-sso serve --workers 2` on SQLite, requests
whose bodies are still arriving when the parent gets SIGTERM; they complete with 200 once the
workers are shutting down, and the process exits 0 (issue 14)."""

from __future__ import annotations

import base64
import http.client
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.commune_sso.test_cli import commune_sso_executable, free_port, subprocess_env
from tests.serving import wait_until_answering

BODY = b"token=not-a-token-of-ours&token_type_hint=access_token"


def waiting_to_be_accepted(port: int) -> int:
    """Connections in the accept queues of the sockets listening on ``port``: for a socket in
    state LISTEN (0A), /proc/net/tcp's rx_queue is its accept backlog."""
    waiting = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            waiting += int(queues.split(":")[1], 16)
    return waiting


def test_sigterm_lets_requests_in_flight_finish_and_exits_0(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [commune_sso_executable(), "serve", "--port", str(port), "--workers", "2"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=subprocess_env(var_dir=str(tmp_path / "var"), issuer=issuer),
        )
        try:
            wait_until_answering(server, f"{issuer}/oauth2/jwks", log_path)
            printed = log_path.read_text()
            secret = re.search(r"demo client_secret:\s+(\S+)", printed)
            assert secret, printed
            basic = base64.b64encode(f"demo-shared-app:{secret.group(1)}".encode()).decode()

            # Introspection of a token that is not ours answers 200 {"active": false}
            # (RFC 7662 §2.2). Each request is sent but for its last bytes: in flight.
            head = (
                f"POST /oauth2/introspect HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Basic {basic}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(BODY)}\r\n\r\n"
            ).encode()
            connections = []
            for _ in range(6):  # spread by SO_REUSEPORT: most likely on both workers
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.sendall(head + BODY[:10])
                connections.append(sock)
            # In flight means accepted by a worker: wait until no connection is left in the
            # listening sockets' accept queues (a fixed sleep lost this race under load).
            deadline = time.monotonic() + 10
            while waiting_to_be_accepted(port):
                assert time.monotonic() < deadline, "the workers did not accept"
                time.sleep(0.02)
            time.sleep(0.05)  # and let the event loop read the heads it was handed

            server.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while "Shutting down" not in log_path.read_text():
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.02)
            assert server.poll() is None  # still draining

            for sock in connections:
                sock.sendall(BODY[10:])
                response = http.client.HTTPResponse(sock, method="POST")
                response.begin()
                assert response.status == 200, response.read()
                assert response.read() == b'{"active":false}'
                sock.close()
            assert server.wait(timeout=30) == 0, log_path.read_text()
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
