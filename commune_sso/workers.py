"""Several uvicorn worker processes, each accepting on its own SO_REUSEPORT socket.

uvicorn's own multi-worker mode shares one listening socket: whichever worker wakes first
accepts a burst of connections, and with keep-alive (load balancers, HTTP clients) one worker
can end up serving most of the traffic while the other idles. With a socket per worker and
SO_REUSEPORT, the kernel spreads new connections evenly across the workers.
"""

from __future__ import annotations

import logging.config
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from commune_sso.logs import logging_config
from commune_sso.observability import MULTIPROC_ENV

APP = "commune_sso.asgi:app_from_environment"
# Read by each worker's Settings(): our middleware writes the access line (uvicorn's own has
# the query string, where codes and tokens travel, and ignores the log format).
ACCESS_LOG_ENV = "COMMUNE_SSO_ACCESS_LOG"


def uvicorn_config(*, graceful_shutdown: float, log_format: str = "text") -> dict[str, Any]:
    return {
        "factory": True,
        "server_header": False,
        "access_log": False,
        # Off: uvicorn would rewrite the peer address from X-Forwarded-For on its own terms.
        # The client address is computed in one place (core/web/client_address.py), from the
        # TCP peer and COMMUNE_SSO_TRUSTED_PROXIES.
        "proxy_headers": False,
        "log_level": "info",
        "log_config": logging_config(log_format),
        # SIGTERM (docker stop, systemd, Kubernetes): stop accepting, let requests in flight
        # finish for at most this long, then close.
        "timeout_graceful_shutdown": graceful_shutdown,
    }


def prepare_metrics_directory() -> tuple[Path, bool]:
    """The directory where every worker writes its Prometheus samples (prometheus-client's
    multiprocess mode), empty, and set in the environment before any worker starts (the
    library picks its storage when first imported). An operator's PROMETHEUS_MULTIPROC_DIR is
    used and emptied; otherwise a fresh temporary directory, removed at the end. Returns the
    directory and whether it is ours to remove."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        # Samples of an earlier run would be added to this run's counters.
        for stale in directory.glob("*.db"):
            stale.unlink()
        return directory, False
    directory = Path(tempfile.mkdtemp(prefix="commune-sso-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    return directory, True


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
    *,
    host: str,
    port: int,
    workers: int,
    access_log: bool,
    graceful_shutdown: float,
    log_format: str = "text",
) -> None:
    """Serve until SIGTERM or SIGINT; then every worker drains its requests in flight (at most
    ``graceful_shutdown`` seconds) and the call returns."""
    if access_log:
        os.environ[ACCESS_LOG_ENV] = "true"
    options = uvicorn_config(graceful_shutdown=graceful_shutdown, log_format=log_format)
    logging.config.dictConfig(options["log_config"])  # this process's own lines too
    if workers <= 1:
        # One process: prometheus-client's in-process registry is the whole picture.
        uvicorn.run(APP, host=host, port=port, **options)
        return
    metrics_dir, ours = prepare_metrics_directory()
    try:
        if not hasattr(socket, "SO_REUSEPORT"):
            uvicorn.run(APP, host=host, port=port, workers=workers, **options)
        else:
            _serve_workers(host=host, port=port, workers=workers, options=options)
    finally:
        if ours:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve_workers(*, host: str, port: int, workers: int, options: dict[str, Any]) -> None:
    from prometheus_client import multiprocess

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
        for child in children:
            if child.is_alive() and child.pid is not None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()  # a worker exits after its drain; the parent waits for all of them
        if child.pid is not None:
            # Drops the dead worker's live gauges; its counters stay in the totals.
            multiprocess.mark_process_dead(child.pid)
    failed = [child for child in children if child.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        sys.exit(1)
