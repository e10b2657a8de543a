"""The back-channel logout delivery worker: an asyncio task in the app's lifespan.

It runs a round of :func:`idp.logout.backchannel.deliver_due` whenever it is woken (right
after a logout committed in this process, so apps hear of it at once) and otherwise every
``POLL_SECONDS`` (notices queued by other processes and hosts, the CLI, SCIM, retries that
came due). Every uvicorn worker runs one; claims keep them from sending a notice twice.
The official's logout never waits for it: the response is sent whatever the apps do.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl

import httpx
from starlette.applications import Starlette

from idp.logout.backchannel import BATCH_SIZE, SEND_TIMEOUT, deliver_due
from idp.runtime import IdpRuntime

log = logging.getLogger("commune_sso.logout")

POLL_SECONDS = 2.0
# After an unexpected error (database down), wait longer than a poll before trying again.
ERROR_PAUSE_SECONDS = 10.0
STATE_NAME = "logout_delivery_worker"


class DeliveryWorker:
    def __init__(self, runtime: IdpRuntime) -> None:
        self._runtime = runtime
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="logout-delivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Safe from any thread; a no-op once stopped."""
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        async with httpx.AsyncClient(
            timeout=SEND_TIMEOUT, follow_redirects=False, verify=_delivery_tls()
        ) as http:
            while True:
                # Cleared before the round: a wake-up during the round starts another one.
                self._wake.clear()
                pause = POLL_SECONDS
                try:
                    outcomes = await deliver_due(self._runtime, http)
                    if len(outcomes) >= BATCH_SIZE:
                        continue  # more may be due already
                except Exception:
                    log.exception("back-channel logout delivery round failed")
                    pause = ERROR_PAUSE_SECONDS
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)


@functools.cache
def _delivery_tls() -> ssl.SSLContext:
    """The TLS context of deliveries, made once per process: loading the trusted certificates
    is most of what a new client costs, and the app (each app the test suite builds) starts
    one client per worker."""
    return httpx.create_ssl_context()


def start(app: Starlette) -> None:
    """Start the worker of ``app`` (call from the lifespan's start-up)."""
    worker = DeliveryWorker(app.state.idp)
    worker.start()
    setattr(app.state, STATE_NAME, worker)


async def stop(app: Starlette) -> None:
    """Stop it (call from the lifespan's shutdown)."""
    worker = getattr(app.state, STATE_NAME, None)
    if worker is not None:
        await worker.stop()
        delattr(app.state, STATE_NAME)


def wake(app: Starlette) -> None:
    """Ask for a delivery round now; without a running worker (no lifespan) nothing happens
    and the notices wait for the next worker that polls."""
    worker = getattr(app.state, STATE_NAME, None)
    if worker is not None:
        worker.wake()
