"""`commune-sso serve` as a real process, for tests that need what only a process shows (the
issuer it derives, several workers, signals, the installed wheel)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest


def wait_until_answering(
    server: subprocess.Popen[bytes], url: str, log_path: Path, *, timeout: float = 180
) -> httpx.Response:
    """Poll ``url`` until it answers 200; fail with the server's output if it exits first or
    does not answer in time. Returns that first 200 response. A first start loads the units
    and creates the quick-start CA: on a busy two-core machine that can pass 30 s, and with
    several workers each importing the app under load, over 60 s. A liveness bound, not a
    speed target: a server that never comes up still fails, with its output."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            pytest.fail(f"serve exited with {server.returncode}:\n{log_path.read_text()}")
        try:
            reply = httpx.get(url, timeout=2)
            if reply.status_code == 200:
                return reply
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"serve did not answer within {timeout:.0f} s:\n{log_path.read_text()}")
        time.sleep(0.1)


def stop(server: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM, as systemd or Docker stop it; SIGKILL only if it does not end in time."""
    server.terminate()
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
