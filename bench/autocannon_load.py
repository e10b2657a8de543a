"""autocannon (npm) as the load generator of the scenarios compared with the peer (issue 15).

The issue's figures were taken with autocannon; our own asyncio generator (``loadgen.py``) costs
~65 µs of client CPU per request, and on a two-core machine that CPU comes out of what the
servers can use: on the cheapest paths (discovery, JWKS) it capped both sides near the same rate,
so a 2× lead could not show. autocannon (one node process, a C HTTP parser) costs a fraction of
that. Both the peer and commune-sso are measured with it, with the same connections and
duration; scenarios whose every request must be signed afresh by the client (DPoP, logins,
refresh chains) stay on ``loadgen.py``.

A scenario's request is fixed (method, path, headers, body). When each answer must be the same
(userinfo, introspection: a revoked token would still get 200 with ``active: false``), the body
of a first answer is given to autocannon as ``--expectBody`` and every other answer counts as an
error.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from loadgen import LoadResult
from oidc_peer import install_npm_package

REPO = Path(__file__).resolve().parent.parent
AUTOCANNON_MAJOR = 8
INSTALL_DIRECTORY = REPO / ".cache" / f"autocannon-{AUTOCANNON_MAJOR}"


def install() -> str:
    """autocannon 8 in the cache directory (npm install when missing); its version."""
    return install_npm_package(INSTALL_DIRECTORY, "autocannon", AUTOCANNON_MAJOR)


@dataclass(frozen=True)
class FixedRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    same_answer: bool = False  # every answer must be byte for byte the first one


@dataclass
class AutocannonResult(LoadResult):
    """What autocannon reports, in the shape the bench's table reads from ``LoadResult``."""

    successes: int = 0
    p50_seconds: float | None = None
    p99_seconds: float | None = None

    @property
    def completed(self) -> int:
        return self.successes

    @property
    def rate(self) -> float:
        return self.successes / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def percentile_ms(self, fraction: float) -> float | None:
        chosen = {0.50: self.p50_seconds, 0.99: self.p99_seconds}.get(fraction)
        return chosen * 1000 if chosen is not None else None


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _autocannon(
    url: str, request: FixedRequest, *, connections: int, seconds: float, expect_body: bytes | None
) -> dict[str, object]:
    command = [
        "node",
        str(INSTALL_DIRECTORY / "node_modules" / "autocannon" / "autocannon.js"),
        "--json",
        "--connections",
        str(connections),
        "--duration",
        str(max(1, round(seconds))),
        "--method",
        request.method,
    ]
    for name, value in request.headers:
        command += ["--headers", f"{name}={value}"]
    if request.body:
        command += ["--body", request.body.decode("utf-8")]
    if expect_body is not None:
        command += ["--expectBody", expect_body.decode("utf-8")]
    process = await asyncio.create_subprocess_exec(
        *command, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"autocannon failed: {stderr.decode(errors='replace')[-500:]}")
    report: dict[str, object] = json.loads(stdout.decode("utf-8").strip().splitlines()[-1])
    return report


async def run_autocannon(
    *,
    host: str,
    port: int,
    request: FixedRequest,
    connections: int,
    duration: float,
    warmup: float,
    expect_body: bytes | None = None,
) -> AutocannonResult:
    """A warm-up run (not counted), then the measured run; the client's CPU is autocannon's
    (a waited-for child's rusage), warm-up included, like ``loadgen.run_closed_loop``."""
    url = f"http://{host}:{port}{request.path}"
    cpu_start = _children_cpu_seconds()
    wall_start = time.perf_counter()
    warm = await _autocannon(
        url, request, connections=connections, seconds=warmup, expect_body=expect_body
    )
    report = await _autocannon(
        url, request, connections=connections, seconds=duration, expect_body=expect_body
    )
    requests = report["requests"]
    latency = report["latency"]
    assert isinstance(requests, dict) and isinstance(latency, dict)
    total = int(requests["total"])
    non_2xx = int(report.get("non2xx", 0))  # type: ignore[call-overload]
    failures = sum(
        int(report.get(name, 0))  # type: ignore[call-overload]
        for name in ("errors", "timeouts", "mismatches")
    )
    result = AutocannonResult(concurrency=connections)
    result.successes = max(0, total - non_2xx - int(report.get("mismatches", 0)))  # type: ignore[call-overload]
    result.errors = non_2xx + failures
    if result.errors:
        result.first_error = (
            f"autocannon: {non_2xx} non-2xx, {report.get('errors')} errors, "
            f"{report.get('timeouts')} timeouts, {report.get('mismatches')} unexpected bodies"
        )
    result.elapsed_seconds = float(report["duration"])  # type: ignore[arg-type]
    result.p50_seconds = float(latency["p50"]) / 1000
    result.p99_seconds = float(latency["p99"]) / 1000
    warm_requests = warm["requests"]
    assert isinstance(warm_requests, dict)
    result.all_operations = total + int(warm_requests["total"])
    result.wall_seconds = time.perf_counter() - wall_start
    result.client_cpu_seconds = _children_cpu_seconds() - cpu_start
    return result
