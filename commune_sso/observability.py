"""How the service tells its operator how it is (DESIGN: Operations): ``/healthz``,
``/readyz``, Prometheus ``/metrics``, a request id on every request and the access line.

:func:`install_observability` adds all of it to the app built by ``create_app``.

- ``/healthz``: the process answers; touches nothing else (a liveness probe must not fail
  because the database is down, or the orchestrator restarts healthy processes in a loop).
- ``/readyz``: database reachable, schema at the migration scripts' head, token-signing keys
  usable, CA keys usable (and the HSM holding them present). 503 with ``Retry-After`` and the
  failing part(s) named, never a 500. A CA not yet created (``ca init``) is named as a
  warning, not a failure: signing in works without it, only certificates wait.
- ``/metrics``: the Prometheus text format (``prometheus-client``); across all workers when
  ``PROMETHEUS_MULTIPROC_DIR`` is set (``commune-sso serve --workers N`` sets it). Open to
  loopback clients, otherwise only with ``Authorization: Bearer <COMMUNE_SSO_METRICS_TOKEN>``.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Engine, func, select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from ca_admin.models import Authority, PublishedCrl, TimeStampingUnit
from ca_admin.runtime import CaRuntime
from commune_sso import database
from commune_sso.input_guard import is_clean_request
from commune_sso.logs import ACCESS_LOGGER, hold_secret_bearing_loggers, request_id
from core.audit_checkpoints import AuditCheckpoint
from core.db import transaction
from core.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS, PREFIX
from core.settings import Settings
from core.web.client_address import configured_client_address
from idp.runtime import IdpRuntime
from keys.keyring import SUPPORTED_ALGORITHMS
from keys.signing_keys import SigningKey

log = logging.getLogger("commune_sso.observability")
access_log = logging.getLogger(ACCESS_LOGGER)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# An incoming X-Request-ID is kept only if it cannot smuggle anything into a log line.
SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DATABASE_TIMEOUT = 2.0  # seconds /readyz waits for SELECT 1 before calling the database down
KEY_CHECK_SECONDS = 5.0  # key checks sign a probe (an HSM round trip): reuse the answer a while
PROBE = b"commune-sso readiness probe"

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


# --------------------------------------------------------------------------------------------
# Request id, request metrics and the access line


def route_template(scope: MutableMapping[str, Any]) -> str:
    """The matched route's path template (bounded label values); unmatched: ``other``."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "other"


_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _series(method: str, route: str, status_class: int) -> tuple[Any, Any]:
    """The counter and histogram children of one label set, looked up once: ``labels()``
    takes a lock and builds the key on every call, a few microseconds per request. Bounded
    like the labels themselves (methods × route templates × status classes)."""
    key = (method, route, status_class)
    found = _SERIES.get(key)
    if found is None:
        found = _SERIES[key] = (
            HTTP_REQUESTS.labels(method, route, f"{status_class}xx"),
            HTTP_REQUEST_DURATION.labels(method, route),
        )
    return found


class RequestObservability:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would copy every response through a
    task and a stream, on endpoints answering ~1,000 requests/s): request id in and out,
    request count and latency by route template, and the access line when asked.

    ``fast_lane`` maps exact paths to endpoints that answer a GET or HEAD from bytes made in
    advance (discovery, the JWKS: fetched by every app and resource server, issue 15). A clean
    request without a query string goes straight to them: the middleware after this one and
    the router would only pass it along, and are a third of such a request's cost. Anything
    else (a query string, a byte the hostile-input guard refuses, another method) takes the
    ordinary way and gets the ordinary answer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        access_log_enabled: bool,
        settings: Settings,
        fast_lane: Mapping[str, ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled
        self.settings = settings
        self.fast_lane = dict(fast_lane or {})

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        handler = self.app
        route: str | None = None
        fast = self.fast_lane.get(scope["path"])
        if (
            fast is not None
            and not scope["query_string"]
            and scope["method"] in ("GET", "HEAD")
            and is_clean_request(scope)
        ):
            handler, route = fast, scope["path"]
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        if incoming is not None and SAFE_REQUEST_ID.fullmatch(incoming):
            rid = incoming.decode("ascii")
        else:
            rid = secrets.token_hex(8)
        encoded_rid = rid.encode("ascii")
        token = request_id.set(rid)
        status = 500  # if the app raises before answering, the error handler answers 500

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", encoded_rid)]
            await send(message)

        try:
            await handler(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in METHODS else "other"
            if route is None:
                route = route_template(scope)
            series = _series(method, route, status // 100)
            series[0].inc()
            series[1].observe(elapsed)
            if self.access_log_enabled:
                client = configured_client_address(scope, self.settings)
                duration_ms = round(elapsed * 1000, 2)
                # The path without its query string: query strings carry codes and tokens.
                access_log.info(
                    '%s "%s %s" %s %.2fms',
                    client or "-",
                    method,
                    scope["path"],
                    status,
                    duration_ms,
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": duration_ms,
                        "client": client,
                    },
                )
            request_id.reset(token)


# --------------------------------------------------------------------------------------------
# Readiness


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str
    # Ready all the same, but the operator has something to do (listed under "warnings").
    warning: bool = False

    @classmethod
    def failed(cls, error: BaseException) -> Check:
        # Short: /readyz is not a place for a stack trace; the log has the whole cause.
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        return cls(False, f"{type(error).__name__}: {first_line}".rstrip(": "))


OK = Check(True, "ok")
# Not a failure of its own: the part it depends on is the one named as failing.
NOT_CHECKED = Check(True, "not checked (database unavailable)")
CA_NOT_INITIALISED = Check(True, "not initialised: run commune-sso ca init", warning=True)


def probe_sign(key: SigningKey) -> None:
    """Sign a few bytes: the only proof that a key (an HSM key above all) can sign now."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key.sign(PROBE, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        key.sign(PROBE, padding.PKCS1v15(), hashes.SHA256())
    else:
        key.sign(PROBE)


@dataclass(frozen=True)
class CaKeyState:
    authority: str
    usage: str  # "issuing" (certificates, CRLs), "ocsp" or "tsa" (time-stamps)
    hsm: bool
    check: Check


@dataclass
class Readiness:
    """The checks behind /readyz and the scrape-time gauges, one per app."""

    runtime: IdpRuntime
    ca_runtime: CaRuntime | None
    key_check_seconds: float = KEY_CHECK_SECONDS
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _keys_checked_at: float = -1e9
    _keys: tuple[Check, list[CaKeyState] | None] = (OK, None)
    _database_check: asyncio.Future[tuple[Check, Check]] | None = None

    @property
    def engine(self) -> Engine:
        engine: Engine = self.runtime.session_factory.kw["bind"]
        return engine

    def check_database(self) -> tuple[Check, Check]:
        """``SELECT 1``, then the schema revision against the scripts' head."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                try:
                    found = set(connection.scalars(text("SELECT version_num FROM alembic_version")))
                except Exception as error:
                    return OK, Check.failed(error)
        except Exception as error:
            log.warning("readiness: database unreachable: %s", error)
            return Check.failed(error), NOT_CHECKED
        heads = database.script_heads()
        if found != heads:
            have = ", ".join(sorted(found)) or "none"
            want = ", ".join(sorted(heads))
            return OK, Check(False, f"database at revision {have}, code expects {want}")
        return OK, OK

    async def database(self) -> tuple[Check, Check]:
        # One check in flight at a time: a database that hangs must not collect a thread per
        # probe; later probes wait for the same answer (or its timeout) instead.
        pending = self._database_check
        if (
            pending is None
            or pending.done()
            or pending.get_loop() is not asyncio.get_running_loop()
        ):
            pending = asyncio.ensure_future(asyncio.to_thread(self.check_database))
            self._database_check = pending
        try:
            return await asyncio.wait_for(asyncio.shield(pending), DATABASE_TIMEOUT)
        except TimeoutError:
            return Check(False, f"no answer within {DATABASE_TIMEOUT:.0f} s"), NOT_CHECKED

    def keys(self, *, database_ok: bool) -> tuple[Check, list[CaKeyState] | None]:
        """Token-signing keys and CA keys, checked at most every few seconds."""
        with self._lock:
            if time.monotonic() - self._keys_checked_at < self.key_check_seconds:
                return self._keys
            signing = self._check_signing_keys()
            ca = self._check_ca_keys() if database_ok else None
            self._keys = (signing, ca)
            # A check skipped for the database is not remembered: redo it once it is back.
            self._keys_checked_at = time.monotonic() if ca is not None else -1e9
            return self._keys

    def _check_signing_keys(self) -> Check:
        try:
            ring = self.runtime.keyring  # re-reads the ring if another process rotated it
            now = self.runtime.clock.now()
            for alg in SUPPORTED_ALGORITHMS:
                ring.sign_jwt({"probe": True}, alg=alg, now=now)
        except Exception as error:
            log.warning("readiness: token signing keys unusable: %s", error)
            return Check.failed(error)
        return OK

    def _check_ca_keys(self) -> list[CaKeyState] | None:
        """Every online CA key: each issuing CA's key (certificates, CRLs), its OCSP signer's
        key, and the signing TSA unit's key. The root's key is kept offline and is not
        checked."""
        if self.ca_runtime is None:
            return []
        try:
            with transaction(self.ca_runtime.session_factory) as session:
                authorities = self.ca_runtime.authorities(session)
                tsa_units = session.execute(
                    select(TimeStampingUnit.name, TimeStampingUnit.key_uri).where(
                        TimeStampingUnit.active.is_(True)
                    )
                ).all()
        except Exception as error:
            log.warning("readiness: CA authorities unreadable: %s", error)
            return None
        states = []
        for authority in authorities.values():
            if authority.role != "issuing":
                continue
            for usage, uri in (("issuing", authority.key_uri), ("ocsp", authority.ocsp_key_uri)):
                if uri is None:
                    continue
                states.append(self._probe_ca_key(authority.name, usage, uri))
        for name, uri in tsa_units:  # the time-stamping unit that signs tokens (POST /tsa)
            states.append(self._probe_ca_key(name, "tsa", uri))
        return states

    def _probe_ca_key(self, owner: str, usage: str, uri: str) -> CaKeyState:
        assert self.ca_runtime is not None
        try:
            probe_sign(self.ca_runtime.key_store.get(uri))
            check = OK
        except Exception as error:
            log.warning("readiness: CA %s %s key: %s", owner, usage, error)
            check = Check.failed(error)
        return CaKeyState(owner, usage, uri.startswith("pkcs11:"), check)

    async def report(self) -> tuple[dict[str, str], list[str], list[str]]:
        """Each part's state, the names of the failing ones and of those with a warning."""
        database_check, schema_check = await self.database()
        signing, ca_states = await asyncio.to_thread(self.keys, database_ok=database_check.ok)
        checks = {"database": database_check, "schema": schema_check, "signing_keys": signing}
        if ca_states is None:
            checks["ca_keys"] = NOT_CHECKED
        else:
            file_keys = [s for s in ca_states if not s.hsm]
            hsm_keys = [s for s in ca_states if s.hsm]
            checks["ca_keys"] = _combine(file_keys, none="ok" if hsm_keys else "no CA key yet")
            if hsm_keys:
                checks["hsm"] = _combine(hsm_keys, none="")
            if self.ca_runtime is not None:
                # Every initialised CA has an issuing CA with online keys: none means no CA.
                checks["ca"] = OK if ca_states else CA_NOT_INITIALISED
        failing = [name for name, check in checks.items() if not check.ok]
        warnings = [name for name, check in checks.items() if check.warning]
        return {name: check.detail for name, check in checks.items()}, failing, warnings


def _combine(states: list[CaKeyState], *, none: str) -> Check:
    bad = [s for s in states if not s.check.ok]
    if bad:
        return Check(False, "; ".join(f"{s.authority} {s.usage}: {s.check.detail}" for s in bad))
    return Check(True, "ok" if states else none)


# --------------------------------------------------------------------------------------------
# Scrape-time gauges


class ScrapeTimeGauges:
    """Gauges read from the database and the keys when /metrics is scraped: two small queries
    (one row per issuing CA, one MAX) and the cached key checks of /readyz."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    def describe(self) -> Iterable[Metric]:
        return []  # no name clash checks: this registry holds only this collector

    def collect(self) -> Iterable[Metric]:
        runtime = self.readiness.runtime
        crl_age = GaugeMetricFamily(
            f"{PREFIX}crl_age_seconds",
            "Seconds since the thisUpdate of each issuing CA's current CRL.",
            labels=["authority"],
        )
        crl_next = GaugeMetricFamily(
            f"{PREFIX}crl_next_update_seconds",
            "Seconds until the nextUpdate of each issuing CA's current CRL (negative: stale).",
            labels=["authority"],
        )
        full_crl_behind = GaugeMetricFamily(
            f"{PREFIX}full_crl_behind_seconds",
            "Seconds since the oldest change of a partitioned certificate that each issuing CA's "
            "full CRL does not list yet (0: current); the maintenance pass signs it within "
            "COMMUNE_SSO_CA_FULL_CRL_MAX_DELAY.",
            labels=["authority"],
        )
        checkpoint_age = GaugeMetricFamily(
            f"{PREFIX}audit_checkpoint_age_seconds",
            "Seconds since the last signed audit checkpoint (absent before the first).",
        )
        database_ok = True
        try:
            now = runtime.clock.now()
            with transaction(runtime.session_factory) as session:
                rows = session.execute(
                    select(
                        Authority.name,
                        PublishedCrl.this_update,
                        PublishedCrl.next_update,
                        Authority.full_crl_stale_since,
                    ).join(PublishedCrl, PublishedCrl.authority_id == Authority.id)
                ).all()
                last_checkpoint = session.scalar(select(func.max(AuditCheckpoint.at)))
            for name, this_update, next_update, stale_since in rows:
                crl_age.add_metric([name], (now - this_update).total_seconds())
                crl_next.add_metric([name], (next_update - now).total_seconds())
                behind = (now - stale_since).total_seconds() if stale_since else 0.0
                full_crl_behind.add_metric([name], behind)
            if last_checkpoint is not None:
                checkpoint_age.add_metric([], (now - last_checkpoint).total_seconds())
        except Exception as error:
            database_ok = False
            log.warning("metrics: database gauges unavailable: %s", error)
        yield crl_age
        yield crl_next
        yield full_crl_behind
        yield checkpoint_age
        hsm = GaugeMetricFamily(
            f"{PREFIX}hsm_available",
            "1 if an HSM (PKCS#11) CA key signed a probe at the last check, else 0.",
            labels=["authority", "key"],
        )
        _, states = self.readiness.keys(database_ok=database_ok)
        for state in states or []:
            if state.hsm:
                hsm.add_metric([state.authority, state.usage], 1.0 if state.check.ok else 0.0)
        yield hsm


def render_metrics(scrape_registry: CollectorRegistry) -> bytes:
    """This process's metrics, or every worker's in multiprocess mode, then the scrape-time
    gauges (their names differ, so the two texts concatenate into one valid exposition)."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        counters = generate_latest(registry)
    else:
        counters = generate_latest(REGISTRY)
    return counters + generate_latest(scrape_registry)


# --------------------------------------------------------------------------------------------
# Endpoints


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "testclient", a Unix socket path, ...


def metrics_access(request: Request, settings: Settings) -> Response | None:
    """None if the caller may read /metrics, else the refusal. A valid bearer token opens it
    from anywhere; without one, only loopback clients: the client address as the throttle sees
    it (core/web/client_address.py), so a request that a trusted proxy forwards counts as its
    real client's, not as the proxy's loopback connection."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, presented = authorization.partition(" ")
        expected = settings.metrics_token
        if (
            expected is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(presented.strip().encode(), expected.encode())
        ):
            return None
        return JSONResponse(
            {"error": "invalid_token"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if _is_loopback(configured_client_address(request.scope, settings)):
        return None
    if settings.metrics_token is not None:
        return JSONResponse(
            {"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )
    return JSONResponse({"error": "forbidden"}, status_code=403)


def observability_routes(
    settings: Settings, readiness: Readiness, scrape_registry: CollectorRegistry
) -> list[Route]:
    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    async def readyz(request: Request) -> Response:
        warnings: list[str] = []
        try:
            checks, failing, warnings = await readiness.report()
        except Exception as error:  # never a 500 from the probe itself
            log.exception("readiness check failed")
            checks, failing = {"readiness": Check.failed(error).detail}, ["readiness"]
        if metrics_access(request, settings) is not None:
            # Not the operator (loopback or the metrics token): which parts fail, not why. A
            # reason may name a database host or a key path; the log has it in full.
            checks = {
                part: "failing" if part in failing else "warning" if part in warnings else "ok"
                for part in checks
            }
        extra = {"warnings": warnings} if warnings else {}
        if failing:
            return JSONResponse(
                {"status": "unavailable", "failing": failing, "checks": checks, **extra},
                status_code=503,
                headers={
                    "Retry-After": str(settings.unavailable_retry_after),
                    "Cache-Control": "no-store",
                },
            )
        return JSONResponse(
            {"status": "ready", "checks": checks, **extra}, headers={"Cache-Control": "no-store"}
        )

    async def metrics(request: Request) -> Response:
        refusal = metrics_access(request, settings)
        if refusal is not None:
            return refusal
        body = await asyncio.to_thread(render_metrics, scrape_registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def install_observability(
    app: Starlette,
    *,
    settings: Settings,
    runtime: IdpRuntime,
    ca_runtime: CaRuntime | None,
    fast_lane: Mapping[str, ASGIApp] | None = None,
) -> None:
    """Add /healthz, /readyz, /metrics and the request middleware to the app (``fast_lane``:
    see :class:`RequestObservability`)."""
    hold_secret_bearing_loggers()
    readiness = Readiness(runtime=runtime, ca_runtime=ca_runtime)
    scrape_registry = CollectorRegistry(auto_describe=False)
    scrape_registry.register(ScrapeTimeGauges(readiness))
    app.router.routes[:0] = observability_routes(settings, readiness, scrape_registry)
    app.add_middleware(
        RequestObservability,
        access_log_enabled=settings.access_log,
        settings=settings,
        fast_lane=fast_lane,
    )
    app.state.readiness = readiness
