"""The real app under uvicorn on a loopback port, for tests that speak real HTTP.

Relying-party libraries bring their own HTTP stacks (httpx, requests, urllib), so the ASGI test
client is not enough for them. The port is taken first, by binding a socket that uvicorn then
serves on (no window in which another process could take it), and the settings' issuer is built
from it, so every URL the provider publishes points at the server really answering.

A test module imports the three fixtures to use them (their functions are named apart from
the fixtures, so requesting ``live_server`` does not shadow an import)::

    from tests.idp.live_server import (  # noqa: F401 (fixtures)
        live_server_fixture,
        live_settings_fixture,
        loopback_socket_fixture,
    )

``settings`` then overrides the conftest fixture of that name for that module only, so
``runtime``, ``app``, ``rp`` and the rest are built with the live issuer.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.applications import Starlette

from core.settings import Settings

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def bind_loopback() -> socket.socket:
    """A TCP socket bound to a free port on 127.0.0.1 (uvicorn makes it listen)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def issuer_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"http://{host}:{port}"


@contextmanager
def serve(app: Starlette, sock: socket.socket) -> Iterator[None]:
    """Run ``app`` on ``sock`` in a background thread until the block ends."""
    # proxy_headers off, as commune_sso/workers.py serves: the app itself decides which
    # forwarded headers to believe (core/web/client_address.py), and the TCP peer must reach it.
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", proxy_headers=False
    )
    server = uvicorn.Server(config)
    # uvicorn installs signal handlers only in the main thread, so a worker thread is safe.
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="live-idp", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn was not ready within {READY_TIMEOUT} s")
            time.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"uvicorn did not stop within {STOP_TIMEOUT} s")


@dataclass(frozen=True)
class LiveServer:
    issuer: str

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"

    @property
    def discovery_url(self) -> str:
        return self.url("/.well-known/openid-configuration")


@pytest.fixture(name="loopback_socket")
def loopback_socket_fixture() -> Iterator[socket.socket]:
    sock = bind_loopback()
    yield sock
    sock.close()


@pytest.fixture(name="settings")
def live_settings_fixture(settings: Settings, loopback_socket: socket.socket) -> Settings:
    """The conftest settings with the live server's address as issuer."""
    return Settings(**{**settings.model_dump(), "issuer": issuer_for(loopback_socket)})


@pytest.fixture(name="live_server")
def live_server_fixture(
    app: Starlette, settings: Settings, loopback_socket: socket.socket
) -> Iterator[LiveServer]:
    with serve(app, loopback_socket):
        yield LiveServer(issuer=settings.issuer)
