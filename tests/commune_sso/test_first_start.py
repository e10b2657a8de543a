"""A first start that needs nothing else (issue 19): units loaded from the packaged list when
the app starts, refreshed when the package changes, loaded once when instances start together;
the CA made on the SQLite quick start and named by /readyz while missing elsewhere."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import tsp as asn1_tsp
from sqlalchemy import func, select, update
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ca_admin.hierarchy import CaSetup, init_hierarchy
from ca_admin.models import Authority, TimeStampingUnit
from commune_sso import bootstrap
from commune_sso.app import build_runtime, create_app
from core.audit import AuditEntry
from core.clock import FixedClock
from core.db import transaction
from core.settings import Settings
from idp import units
from idp.models import Unit, UnitSource
from idp.runtime import IdpRuntime
from tests.conftest import ISSUER

PROVINCES = 34
WARDS = 3321


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"units_load_on_start": True})


def start(app: Starlette) -> None:
    """One start and stop of the app: its lifespan, as uvicorn runs it."""
    with TestClient(app, base_url=ISSUER):
        pass


def unit_counts(runtime: IdpRuntime) -> dict[str, int]:
    with transaction(runtime.session_factory) as session:
        return dict(session.execute(select(Unit.level, func.count()).group_by(Unit.level)).all())


def sync_audits(runtime: IdpRuntime) -> list[AuditEntry]:
    with transaction(runtime.session_factory) as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.action == "unit.sync").order_by(AuditEntry.seq)
            )
        )


def test_units_are_loaded_when_the_app_starts_on_a_fresh_database(
    app: Starlette, runtime: IdpRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    assert unit_counts(runtime) == {}
    with caplog.at_level(logging.INFO, logger="commune_sso"):
        start(app)
    assert unit_counts(runtime) == {"province": PROVINCES, "ward": WARDS}
    with transaction(runtime.session_factory) as session:
        assert units.loaded_version(session) == units.package_version()
    [entry] = sync_audits(runtime)
    assert entry.actor == "system"
    assert json.loads(entry.details) == {"created": 3355, "renamed": 0, "unchanged": 0}
    assert any("units loaded from vietnam-provinces" in r.getMessage() for r in caplog.records)

    # The next start finds the version recorded: nothing loaded, nothing audited.
    start(app)
    assert len(sync_audits(runtime)) == 1


def test_a_changed_package_version_refreshes_the_units(app: Starlette, runtime: IdpRuntime) -> None:
    start(app)
    with transaction(runtime.session_factory) as session:
        # As if the units had been loaded from an earlier release that spelled a name otherwise.
        session.execute(update(UnitSource).values(version="2025.7.1"))
        session.execute(update(Unit).where(Unit.code == "01").values(name="Thủ đô Hà Nội"))
    start(app)
    with transaction(runtime.session_factory) as session:
        assert units.get_by_code(session, "01").name == "Thành phố Hà Nội"
        assert units.loaded_version(session) == units.package_version()
    _first_load, refresh = sync_audits(runtime)
    assert json.loads(refresh.details)["renamed"] == 1
    assert unit_counts(runtime) == {"province": PROVINCES, "ward": WARDS}


def test_units_stay_as_they_are_when_loading_at_start_is_off(
    settings: Settings, runtime: IdpRuntime
) -> None:
    start(create_app(settings.model_copy(update={"units_load_on_start": False}), runtime=runtime))
    assert unit_counts(runtime) == {}


def test_unit_sync_records_the_version_so_the_next_start_loads_nothing(
    app: Starlette, runtime: IdpRuntime
) -> None:
    with transaction(runtime.session_factory) as session:
        units.sync_from_package(session=session, clock=runtime.clock, actor="cli")
    start(app)
    assert [entry.actor for entry in sync_audits(runtime)] == ["cli"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_instances_starting_together_on_postgresql_load_the_units_once(
    settings: Settings, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    runtimes = [build_runtime(settings, clock) for _ in range(3)]
    apps = [create_app(settings, runtime=runtime) for runtime in runtimes]
    together = threading.Barrier(len(apps))
    errors: list[BaseException] = []

    def start_when_all_are_ready(app: Starlette) -> None:
        together.wait()
        try:
            start(app)
        except BaseException as error:  # reported below, with the thread's own error
            errors.append(error)

    threads = [threading.Thread(target=start_when_all_are_ready, args=(app,)) for app in apps]
    try:
        with caplog.at_level(logging.INFO, logger="commune_sso"):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
        assert errors == []
        problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert problems == []
        assert unit_counts(runtimes[0]) == {"province": PROVINCES, "ward": WARDS}
        assert len(sync_audits(runtimes[0])) == 1
    finally:
        for runtime in runtimes:
            runtime.session_factory.kw["bind"].dispose()


# ---------------------------------------------------------------------------------------------
# The certificate authority


@pytest.fixture
def quick_start(
    tmp_path: Path, key_dir: Path, sqlite_template: Path, clock: FixedClock
) -> Iterator[tuple[Starlette, IdpRuntime]]:
    """The embedded default: no database URL (SQLite under var/), development."""
    settings = Settings(
        issuer=ISSUER,
        var_dir=tmp_path / "var",
        key_dir=key_dir,
        key_passphrase="test-key-passphrase-0123456789",
        secret_key="test-server-secret-0123456789abcdef",
        units_load_on_start=False,
    )
    assert bootstrap.is_quick_start(settings)
    settings.var_dir.mkdir(parents=True)
    # `serve` upgrades the database first; the template is a database at head.
    shutil.copyfile(sqlite_template, settings.var_dir / "commune-sso.db")
    runtime = build_runtime(settings, clock)
    yield create_app(settings, runtime=runtime), runtime
    runtime.session_factory.kw["bind"].dispose()


def authorities(runtime: IdpRuntime) -> list[tuple[str, str]]:
    with transaction(runtime.session_factory) as session:
        return [
            (role, subject)
            for role, subject in session.execute(
                select(Authority.role, Authority.subject).order_by(Authority.id)
            )
        ]


def test_the_quick_start_creates_its_ca_on_the_first_start(
    quick_start: tuple[Starlette, IdpRuntime],
) -> None:
    app, runtime = quick_start
    assert authorities(runtime) == []
    with TestClient(app, base_url=ISSUER, client=("127.0.0.1", 50000)) as web:
        ready = web.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["ca"] == "ok"
        assert ready.json()["checks"]["ca_keys"] == "ok"
        assert "warnings" not in ready.json()
        # The CRL of the new issuing CA is served at once.
        assert web.get("/ca/crl/issuing-ca-1.crl").status_code == 200
        # So is the time-stamping authority: a token for a SHA-256 imprint is granted.
        query = asn1_tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": bytes(32),
                },
                "cert_req": True,
            }
        ).dump()
        stamped = web.post(
            "/tsa", content=query, headers={"Content-Type": "application/timestamp-query"}
        )
        assert stamped.status_code == 200
        assert asn1_tsp.TimeStampResp.load(stamped.content)["status"]["status"].native == "granted"
    made = authorities(runtime)
    assert [role for role, _ in made] == ["root", "issuing"]
    assert all(f"O={bootstrap.DEFAULT_ORGANISATION}" in subject for _, subject in made)
    start(app)  # a second start makes nothing more
    assert authorities(runtime) == made
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(TimeStampingUnit)) == 1


def test_production_keeps_the_explicit_ca_init_and_readyz_names_it(
    app: Starlette, runtime: IdpRuntime
) -> None:
    with TestClient(app, base_url=ISSUER, client=("127.0.0.1", 50000)) as web:
        assert authorities(runtime) == []
        missing = web.get("/readyz")
        assert missing.status_code == 200, missing.text  # the IdP works without a CA
        assert missing.json()["checks"]["ca"] == "not initialised: run commune-sso ca init"
        assert missing.json()["warnings"] == ["ca"]
        # Someone else than the operator learns only that something is to be done.
        outside = TestClient(app, base_url=ISSUER, client=("203.0.113.9", 50000))
        assert outside.get("/readyz").json()["checks"]["ca"] == "warning"

        with transaction(runtime.session_factory) as session:
            init_hierarchy(
                session=session,
                runtime=app.state.ca,
                actor="test",
                setup=CaSetup(organisation="Sở Khoa học và Công nghệ tỉnh Lào Cai"),
            )
        app.state.ca.forget_authorities()
        app.state.readiness.key_check_seconds = 0
        ready = web.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["ca"] == "ok"
        assert "warnings" not in ready.json()
