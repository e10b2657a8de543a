"""Per-request cost of the observability middleware (request id, request metrics by route,
commune_sso/observability.py): the same app with and without it, N requests to /healthz
through Starlette's TestClient, alternated in rounds so machine drift hits both alike.

    .venv/bin/python bench/request_middleware.py [--requests 20000] [--json out.json]

Also calls the app directly as ASGI (no HTTP client), where the difference is not lost in
the TestClient's own ~2 ms per request. Prints the best round's cost per request of each
and the difference (the middleware's overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from commune_sso.observability import RequestObservability


async def healthz(_request: object) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def build(with_middleware: bool) -> Starlette:
    middleware = [Middleware(RequestObservability, access_log_enabled=False)]
    return Starlette(
        routes=[Route("/healthz", healthz)], middleware=middleware if with_middleware else []
    )


def per_request(client: TestClient, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        client.get("/healthz")
    return (time.perf_counter() - started) / count


def direct_per_request(app: Starlette, count: int) -> float:
    """The app called as ASGI on the event loop, no HTTP client: the TestClient's own cost
    (a thread hop and httpx per request, ~2 ms here) would drown a few microseconds."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/healthz", "raw_path": b"/healthz", "root_path": "",
        "query_string": b"", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
        "server": ("bench", 80), "state": {},
    }  # fmt: skip

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: object) -> None:
        return None

    async def run() -> float:
        started = time.perf_counter()
        for _ in range(count):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - started) / count

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"without": [], "with": []}
    with TestClient(build(False)) as bare, TestClient(build(True)) as observed:
        per_request(bare, 500)  # warm-up
        per_request(observed, 500)
        chunk = args.requests // args.rounds
        for _ in range(args.rounds):
            results["without"].append(per_request(bare, chunk))
            results["with"].append(per_request(observed, chunk))
        direct = {"without": [], "with": []}
        for _ in range(args.rounds):
            direct["without"].append(direct_per_request(bare.app, chunk))  # type: ignore[arg-type]
            direct["with"].append(direct_per_request(observed.app, chunk))  # type: ignore[arg-type]
    d_without, d_with = min(direct["without"]), min(direct["with"])
    print(f"direct ASGI: {d_without * 1e6:.1f} µs without, {d_with * 1e6:.1f} µs with, "
          f"overhead {(d_with - d_without) * 1e6:.1f} µs/request")  # fmt: skip
    without = min(results["without"])
    with_ = min(results["with"])
    print(f"{'':>22} {'µs/request (best round)':>24}")
    print(f"{'without middleware':>22} {without * 1e6:>24.1f}")
    print(f"{'with middleware':>22} {with_ * 1e6:>24.1f}")
    print(f"{'overhead':>22} {(with_ - without) * 1e6:>24.1f}")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as out:
            json.dump({"requests": args.requests, "testclient": results, "direct": direct}, out)


if __name__ == "__main__":
    main()
