"""/healthz, /readyz and /metrics through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin.hierarchy import CaSetup, init_hierarchy
from commune_sso.app import build_runtime, create_app
from commune_sso.database import alembic_config
from core.db import transaction
from core.settings import Settings
from idp.runtime import IdpRuntime
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, register_client, settings_for
from tests.idp.oidc_flow import authorize_params, log_in, open_login_form, pkce_pair, submit_login
from tests.softhsm import SoftHsmToken

METRICS_TOKEN = "metrics-token-0123456789abcdef-0123456789"
_labels = itertools.count()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text exposition (0 if absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


def scrape(web: TestClient) -> str:
    response = web.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.fixture
def service(runtime: IdpRuntime) -> tuple[str, str]:
    client, secret = register_client(
        runtime, grant_types=["client_credentials"], redirect_uris=[], scope="profile"
    )
    assert secret is not None
    return client.client_id, secret


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"metrics_token": METRICS_TOKEN})


def test_healthz_answers_without_the_database(web: TestClient) -> None:
    response = web.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(response.headers["x-request-id"]) == 16


def test_request_id_is_kept_when_safe_and_replaced_otherwise(web: TestClient) -> None:
    kept = web.get("/healthz", headers={"X-Request-ID": "lb-7f3a.2_x"})
    assert kept.headers["x-request-id"] == "lb-7f3a.2_x"
    for unsafe in (b"a b", b"x" * 65, b'a"}{"level":"ERROR"', "ä".encode(), b""):
        replaced = web.get("/healthz", headers={"X-Request-ID": unsafe})
        assert replaced.headers["x-request-id"].encode() != unsafe
        assert len(replaced.headers["x-request-id"]) == 16


def test_readyz_ready_on_a_healthy_app(web: TestClient) -> None:
    response = web.get("/readyz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {
            "database": "ok",
            "schema": "ok",
            "signing_keys": "ok",
            "ca_keys": "no CA key yet",
            "ca": "not initialised: run commune-sso ca init",
        },
        "warnings": ["ca"],
    }


def _unreachable_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        # A directory that does not exist: SQLite cannot open (or create) the file.
        return f"sqlite:///{tmp_path / 'gone' / 'commune-sso.db'}"
    # A port nothing listens on (port 1 needs root to bind; nothing here does).
    return "postgresql+psycopg://postgres@127.0.0.1:1/commune_sso?connect_timeout=2"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_readyz_names_the_database_when_it_is_unreachable(
    backend: str, tmp_path: Path, key_dir: Path
) -> None:
    settings = settings_for(
        tmp_path=tmp_path, database_url=_unreachable_url(backend, tmp_path), key_dir=key_dir
    )
    runtime = build_runtime(settings)
    try:
        app = create_app(settings, runtime=runtime)
        with TestClient(app, base_url=ISSUER, client=("127.0.0.1", 50000)) as web:
            response = web.get("/readyz")
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
            body = response.json()
            assert body["status"] == "unavailable"
            assert body["failing"] == ["database"]
            assert body["checks"]["database"].startswith("OperationalError")
            assert body["checks"]["signing_keys"] == "ok"
            # The liveness probe does not care.
            assert web.get("/healthz").status_code == 200
    finally:
        runtime.session_factory.kw["bind"].dispose()


def test_readyz_names_the_schema_one_migration_behind(web: TestClient, database_url: str) -> None:
    command.downgrade(alembic_config(database_url), "-1")
    response = web.get("/readyz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["schema"]
    assert "code expects" in body["checks"]["schema"]
    command.upgrade(alembic_config(database_url), "head")
    assert web.get("/readyz").status_code == 200


def test_readyz_tells_others_which_part_fails_but_not_why(
    web: TestClient, database_url: str
) -> None:
    command.downgrade(alembic_config(database_url), "-1")
    try:
        response = web.get("/readyz")  # from "testclient": neither loopback nor the token
        assert response.status_code == 503
        assert response.json()["failing"] == ["schema"]
        assert response.json()["checks"]["schema"] == "failing"
        assert response.json()["checks"]["database"] == "ok"
        operator = web.get("/readyz", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert "code expects" in operator.json()["checks"]["schema"]
    finally:
        command.upgrade(alembic_config(database_url), "head")


def test_metrics_refused_without_token_from_a_non_loopback_client(
    app: Starlette, settings: Settings
) -> None:
    # TestClient's client address is "testclient": not loopback.
    with TestClient(app, base_url=ISSUER) as web:
        assert web.get("/metrics").status_code == 401
        wrong = web.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
        assert "commune_sso" not in wrong.text
        assert scrape(web).count("commune_sso_http_requests_total") > 0
    no_token = create_app(
        settings.model_copy(update={"metrics_token": None}), runtime=app.state.idp
    )
    with TestClient(no_token, base_url=ISSUER) as web:
        assert web.get("/metrics").status_code == 403
    with TestClient(no_token, base_url=ISSUER, client=("127.0.0.1", 40000)) as web:
        assert web.get("/metrics").status_code == 200
    with TestClient(no_token, base_url=ISSUER, client=("::1", 40000)) as web:
        assert web.get("/metrics").status_code == 200


def test_counters_move_after_logins_and_token_requests(
    web: TestClient, official, rp, service
) -> None:
    client, _secret = rp
    before = scrape(web)
    login_page = open_login_form(web, authorize_params(client.client_id, pkce_pair()[1]))
    assert submit_login(web, login_page, official.username, "wrong").status_code == 401
    log_in(web, authorize_params(client.client_id, pkce_pair()[1]), official.username,
           OFFICIAL_PASSWORD)  # fmt: skip
    service_id, service_secret = service
    for _ in range(2):
        token = web.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(service_id, service_secret),
        )
        assert token.status_code == 200, token.text
    after = scrape(web)

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("commune_sso_logins_total", outcome="failure") == 1
    assert moved("commune_sso_logins_total", outcome="success") == 1
    assert moved("commune_sso_tokens_issued_total", grant_type="client_credentials") == 2
    route = {"method": "POST", "route": "/oauth2/token", "status": "2xx"}
    assert moved("commune_sso_http_requests_total", **route) == 2
    assert moved("commune_sso_http_request_duration_seconds_count", method="POST",
                 route="/oauth2/token") == 2  # fmt: skip
    assert moved("commune_sso_http_requests_total", method="POST", route="/login",
                 status="4xx") == 1  # fmt: skip
    # Unmatched paths share one series: a scanner cannot grow the label set.
    web.get("/no/such/path/1")
    web.get("/no/such/path/2")
    last = scrape(web)
    assert sample(last, "commune_sso_http_requests_total", method="GET", route="other",
                  status="4xx") - sample(after, "commune_sso_http_requests_total",
                  method="GET", route="other", status="4xx") == 2  # fmt: skip
    assert "/no/such/path" not in last


@pytest.fixture
def hsm_app(
    settings: Settings, runtime: IdpRuntime, softhsm_token: SoftHsmToken
) -> Iterator[tuple[TestClient, Path, str]]:
    """An app whose issuing CA and OCSP signer keys live on a SoftHSM2 token of their own."""
    run = f"obs-{os.getpid()}-{next(_labels)}"
    token_dir = softhsm_token.add_token(run)
    app = create_app(settings, runtime=runtime)
    with transaction(app.state.ca.session_factory) as session:
        _root, issuing = init_hierarchy(
            session=session,
            runtime=app.state.ca,
            actor="test",
            setup=CaSetup(
                organisation="Sở Khoa học và Công nghệ tỉnh Lào Cai",
                root_algorithm="ec-p256",
                issuing_algorithm="ec-p256",
                ocsp_algorithm="ec-p256",
                issuing_key_uri=softhsm_token.uri("issuing-ca", token=run),
                ocsp_key_uri=softhsm_token.uri("ocsp-signer", token=run),
            ),
        )
    app.state.ca.forget_authorities()
    with TestClient(app, base_url=ISSUER, client=("127.0.0.1", 50000)) as web:
        yield web, token_dir, issuing.name


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_readyz_names_the_hsm_when_its_token_is_absent(
    hsm_app: tuple[TestClient, Path, str], tmp_path: Path
) -> None:
    web, token_dir, issuing_name = hsm_app
    ready = web.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["hsm"] == "ok"
    metrics = scrape(web)
    assert sample(metrics, "commune_sso_hsm_available", authority=issuing_name, key="ocsp") == 1
    # A CRL was published with the CA: its age and time to nextUpdate are gauges.
    assert 0 <= sample(metrics, "commune_sso_crl_age_seconds", authority=issuing_name) < 60
    assert sample(metrics, "commune_sso_crl_next_update_seconds", authority=issuing_name) > 3600

    web.app.state.readiness.key_check_seconds = 0  # type: ignore[attr-defined]
    parked = tmp_path / "unplugged"
    shutil.move(token_dir, parked)
    try:
        response = web.get("/readyz")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["failing"] == ["hsm"]
        assert "token not present" in body["checks"]["hsm"]
        assert body["checks"]["ca_keys"] == "ok"  # no file key to check: the root's is offline
        metrics = scrape(web)
        assert sample(metrics, "commune_sso_hsm_available", authority=issuing_name,
                      key="issuing") == 0  # fmt: skip
    finally:
        shutil.move(parked, token_dir)
    assert web.get("/readyz").status_code == 200


@pytest.mark.parametrize("path", ["/oauth2/jwks", "/.well-known/openid-configuration"])
def test_the_fast_lane_answers_as_the_route_does_and_is_counted(web: TestClient, path: str) -> None:
    """Discovery and the JWKS skip the router when the request is plain (observability.py's
    fast lane); a query string takes the router. Both answers must be the same, and both
    counted under the route's template."""
    before = scrape(web)
    fast = web.get(path)
    routed = web.get(path, params={"anything": "1"})
    head = web.head(path)
    hostile = web.get(path, headers={"X-Anything": "a\x00b"})
    after = scrape(web)
    assert fast.status_code == routed.status_code == head.status_code == 200
    assert fast.content == routed.content and fast.json()
    assert head.content == b""
    for name in ("content-type", "content-length", "cache-control", "access-control-allow-origin"):
        assert fast.headers[name] == routed.headers[name] == head.headers[name], name
    assert fast.headers["x-request-id"] != routed.headers["x-request-id"]
    assert hostile.status_code == 400  # the hostile-input guard still sees it
    counted = sample(
        after, "commune_sso_http_requests_total", method="GET", route=path, status="2xx"
    )
    assert (
        counted
        - sample(before, "commune_sso_http_requests_total", method="GET", route=path, status="2xx")
        == 2
    )
