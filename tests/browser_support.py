"""Real servers for end-to-end tests: the provider and demo shared apps under uvicorn on
loopback ports, each in a thread, with their lifespans running (the provider's back-channel
logout delivery worker is part of its lifespan)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from examples.shared_app.app import Settings as SharedAppSettings
from examples.shared_app.app import create_app as create_shared_app
from examples.shared_app.cas_app import CasSettings, create_cas_app
from examples.shared_app.saml_app import SamlSettings, create_saml_app
from tests.idp.live_server import bind_loopback

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


@contextmanager
def serve(app: Any, sock: socket.socket, *, name: str) -> Iterator[None]:
    """Serve ``app`` on ``sock`` in a thread, lifespan on, until the block ends."""
    # proxy_headers off, as commune_sso/workers.py serves (tests/idp/live_server.py says why).
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"{name} stopped before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {READY_TIMEOUT} s")
            time.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"{name} did not stop within {STOP_TIMEOUT} s")


@dataclass(frozen=True)
class SharedApp:
    """A running demo shared app."""

    base_url: str
    client_id: str

    def url(self, path: str = "/") -> str:
        return f"{self.base_url}{path}"


@contextmanager
def run_shared_app(
    *, issuer: str, client_id: str, client_secret: str, sock: socket.socket, name: str
) -> Iterator[SharedApp]:
    port = port_of(sock)
    base_url = f"http://127.0.0.1:{port}"
    settings = SharedAppSettings(
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        base_url=base_url,
        port=port,
        name=name,
        cookie_name=f"shared_app_{port}",  # cookies ignore ports: one name per app
    )
    with serve(create_shared_app(settings), sock, name=f"shared-app-{port}"):
        yield SharedApp(base_url=base_url, client_id=client_id)


@contextmanager
def run_shared_cas_app(
    *, cas_url: str, service_path: str, sock: socket.socket, name: str
) -> Iterator[SharedApp]:
    """The demo app's CAS variant on ``sock``; its service URL is ``service_path`` there
    (register that URL first). ``client_id`` is the service URL."""
    port = port_of(sock)
    base_url = f"http://127.0.0.1:{port}"
    settings = CasSettings(
        cas_url=cas_url,
        service_url=f"{base_url}{service_path}",
        name=name,
        cookie_name=f"shared_cas_app_{port}",
    )
    with serve(create_cas_app(settings), sock, name=f"shared-cas-app-{port}"):
        yield SharedApp(base_url=base_url, client_id=settings.service_url)


@contextmanager
def run_shared_saml_app(
    *, idp_metadata_url: str, key_dir: Path, sock: socket.socket, name: str
) -> Iterator[SharedApp]:
    """The demo app's SAML variant on ``sock``, its key pair made in ``key_dir``; register its
    metadata (``<base URL>/saml/metadata``) before signing in. ``client_id`` is its entity ID."""
    port = port_of(sock)
    settings = SamlSettings(
        idp_metadata_url=idp_metadata_url,
        base_url=f"http://127.0.0.1:{port}",
        key_file=key_dir / "sp.key",
        cert_file=key_dir / "sp.crt",
        name=name,
        cookie_name=f"shared_saml_app_{port}",
    )
    with serve(create_saml_app(settings), sock, name=f"shared-saml-app-{port}"):
        yield SharedApp(base_url=settings.base_url, client_id=settings.entity_id)


__all__ = [
    "SharedApp",
    "bind_loopback",
    "port_of",
    "run_shared_app",
    "run_shared_cas_app",
    "run_shared_saml_app",
    "serve",
]
