"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams.

The benchmark machine has two cores shared by the server's workers, PostgreSQL and this load
generator, so the client must cost as little CPU as possible: no HTTP library in the hot loop,
one persistent connection per concurrent worker, and only the status line, the headers and the
body are parsed (bodies framed by Content-Length, or chunked as a fallback).

Load is closed-loop: each worker sends one operation (one or more requests) at a time on its
own connection, for a fixed time or until a global operation count is reached, whichever comes
first. Latency is measured per operation on the client side.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field


class UnexpectedResponse(Exception):
    """The server answered, but not with what the operation expects: counted as an error."""

    def __init__(self, step: str, response: HttpResponse) -> None:
        super().__init__(f"{step}: HTTP {response.status}")
        self.step = step
        self.response = response

    def describe(self) -> str:
        body = self.response.body[:500].decode("utf-8", "replace")
        return f"{self.step}: HTTP {self.response.status}: {body}"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in the order received
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def set_cookies(self) -> dict[str, str]:
        """Name and value of each Set-Cookie (attributes are ignored: one host, one path)."""
        cookies = {}
        for key, value in self.headers:
            if key == "set-cookie":
                pair = value.split(";", 1)[0]
                name, _, cookie_value = pair.partition("=")
                cookies[name.strip()] = cookie_value.strip()
        return cookies


class HttpConnection:
    """One keep-alive HTTP/1.1 connection, (re)opened on demand.

    Requests are never retried: a refresh token or an authorization code sent on a connection
    that then failed may already have been used by the server.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._host_header = f"Host: {host}:{port}\r\n".encode("ascii")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> HttpResponse:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        head = [f"{method} {target} HTTP/1.1\r\n".encode("ascii"), self._host_header]
        head.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers)
        if body or method == "POST":
            head.append(f"Content-Length: {len(body)}\r\n".encode("ascii"))
        head.append(b"\r\n")
        # No drain(): one small request at a time per connection never fills the buffer.
        writer.write(b"".join(head) + body)
        try:
            response, keep_alive = await self._read_response(reader)
        except BaseException:
            self.close()
            raise
        if not keep_alive:
            self.close()
        return response

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> tuple[HttpResponse, bool]:
        try:
            raw_head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as error:  # over the stream's 64 KiB limit
            raise ConnectionError("response head too large") from error
        lines = raw_head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise ConnectionError(f"not an HTTP/1.x response: {lines[0]!r}")
        status = int(rest[:3])
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        response_headers = dict(headers)
        connection = response_headers.get("connection", "").lower()
        # RFC 9112 §9.3: HTTP/1.1 stays open unless "close"; HTTP/1.0 (openssl ocsp's
        # responder) closes unless "keep-alive".
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        length = response_headers.get("content-length")
        if length is not None:
            body = await reader.readexactly(int(length))
        elif "chunked" in response_headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        elif status in (204, 304):
            body = b""
        else:
            # No framing: the body runs to the end of the connection (RFC 9112 §6.3).
            body = await reader.read()
            keep_alive = False
        return HttpResponse(status=status, headers=headers, body=body), keep_alive

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """RFC 9112 §7.1: size lines (extensions ignored), data, and trailers that are dropped."""
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            break
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass
    return b"".join(parts)


Operation = Callable[[HttpConnection], Awaitable[None]]
"""One measured unit of work on a connection; raises UnexpectedResponse when it goes wrong."""

# Failures that count as an error of the operation: the connection broke, or the response (or a
# body the operation parses) was malformed.
OPERATION_ERRORS = (OSError, asyncio.IncompleteReadError, ValueError)


@dataclass
class LoadResult:
    """Outcome of one closed-loop run. Operations started during the warm-up are not counted;
    CPU and wall time cover the whole run, warm-up included, so their ratio is a utilisation."""

    concurrency: int
    elapsed_seconds: float = 0.0  # from the end of the warm-up to the last measured completion
    latencies_seconds: list[float] = field(default_factory=list)  # of successful operations
    errors: int = 0
    first_error: str | None = None
    # Every operation that finished, warm-up and errors included: the work the CPU time paid for.
    all_operations: int = 0
    wall_seconds: float = 0.0
    client_cpu_seconds: float = 0.0

    @property
    def completed(self) -> int:
        return len(self.latencies_seconds)

    @property
    def rate(self) -> float:
        """Successful operations per second."""
        return self.completed / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float | None:
        """Nearest-rank percentile of the successful operations' latency, in milliseconds."""
        if not self.latencies_seconds:
            return None
        ordered = sorted(self.latencies_seconds)
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1] * 1000


async def run_closed_loop(
    *,
    host: str,
    port: int,
    operations: Sequence[Operation],
    duration: float,
    warmup: float,
    max_operations: int,
    stop_worker_on_error: bool = False,
) -> LoadResult:
    """Run ``len(operations)`` workers, each repeating its own operation on its own connection.

    Operations started during ``warmup`` are not measured. Workers start no operation after
    ``warmup + duration`` seconds, nor once ``max_operations`` measured operations have started
    in total. With ``stop_worker_on_error``, a worker whose operation failed stops: its state,
    such as a refresh-token chain, may be unusable.
    """
    result = LoadResult(concurrency=len(operations))
    started = 0
    cpu_start = time.process_time()
    run_start = time.perf_counter()
    measure_start = run_start + warmup
    deadline = measure_start + duration
    last_finish = measure_start

    async def worker(operation: Operation) -> None:
        nonlocal started, last_finish
        connection = HttpConnection(host, port)
        try:
            while True:
                begin = time.perf_counter()
                if begin >= deadline or started >= max_operations:
                    return
                measured = begin >= measure_start
                started += measured
                try:
                    await operation(connection)
                    failure = None
                except (UnexpectedResponse, *OPERATION_ERRORS) as error:
                    failure = error
                end = time.perf_counter()
                result.all_operations += 1
                if measured:
                    last_finish = max(last_finish, end)
                    if failure is None:
                        result.latencies_seconds.append(end - begin)
                    else:
                        result.errors += 1
                        result.first_error = result.first_error or _describe(failure)
                if failure is not None and stop_worker_on_error:
                    return
        finally:
            connection.close()

    await asyncio.gather(*(worker(operation) for operation in operations))
    result.elapsed_seconds = last_finish - measure_start
    result.wall_seconds = time.perf_counter() - run_start
    result.client_cpu_seconds = time.process_time() - cpu_start
    return result


def _describe(error: BaseException) -> str:
    if isinstance(error, UnexpectedResponse):
        return error.describe()
    return f"{type(error).__name__}: {error}"
