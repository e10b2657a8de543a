"""Several uvicorn worker processes, each accepting on its own SO_REUSEPORT socket.

uvicorn's own multi-worker mode shares one listening socket: whichever worker wakes first
accepts a burst of connections, and with keep-alive (load balancers, HTTP clients) one worker
can end up serving most of the traffic while the other idles. With a socket per worker and
SO_REUSEPORT, the kernel spreads new connections evenly across the workers.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
from typing import Any

import uvicorn

APP = "commune_sso.asgi:app_from_environment"


def uvicorn_config(*, access_log: bool, graceful_shutdown: float) -> dict[str, Any]:
    return {
        "factory": True,
        "server_header": False,
        "access_log": access_log,
        # Off: uvicorn would rewrite the peer address from X-Forwarded-For on its own terms.
        # The client address is computed in one place (core/web/client_address.py), from the
        # TCP peer and COMMUNE_SSO_TRUSTED_PROXIES.
        "proxy_headers": False,
        "log_level": "info",
        # SIGTERM (docker stop, systemd, Kubernetes): stop accepting, let requests in flight
        # finish for at most this long, then close.
        "timeout_graceful_shutdown": graceful_shutdown,
    }


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    server = uvicorn.Server(uvicorn.Config(APP, **options))
    server.run(sockets=[_listening_socket(host, port)])


def serve(
    *, host: str, port: int, workers: int, access_log: bool, graceful_shutdown: float
) -> None:
    """Serve until SIGTERM or SIGINT; then every worker drains its requests in flight (at most
    ``graceful_shutdown`` seconds) and the call returns."""
    options = uvicorn_config(access_log=access_log, graceful_shutdown=graceful_shutdown)
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(APP, host=host, port=port, workers=max(workers, 1), **options)
        return
    # Fail here, in the parent, if the address is taken, rather than in every child.
    _listening_socket(host, port).close()
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_worker, args=(host, port, options), name=f"worker-{n}")
        for n in range(workers)
    ]
    for child in children:
        child.start()

    def stop(signum: int, _frame: object) -> None:
        # Passed on as SIGTERM: each worker's uvicorn drains its own connections.
        for child in children:
            if child.is_alive() and child.pid is not None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()  # a worker exits after its drain; the parent waits for all of them
    failed = [child for child in children if child.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        sys.exit(1)
