"""Two commune-sso instances on loopback ports: ours (the live server of tests/idp/live_server.py,
on the test's database) and an upstream one on a SQLite file of its own, with a client
registered for us, where officials sign in with a password and whose ID tokens carry the
``citizen_id`` claim.

The upstream is named ``localhost`` and ours ``127.0.0.1``: cookies do not tell ports apart,
so two hosts on one name would share (and overwrite) each other's session cookie, as two real
providers on two host names never do."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from commune_sso.app import build_runtime, create_app
from core.clock import FixedClock
from core.db import transaction
from core.settings import Settings
from core.text_search import fold_for_search
from idp import accounts, clients
from idp.federation import discovery, providers
from idp.federation.upstream_logout import RETURN_PATH
from idp.models import Account, AccountProfile, UpstreamProvider
from idp.runtime import IdpRuntime
from tests.conftest import OFFICIAL_PASSWORD, settings_for
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    LiveServer,
    bind_loopback,
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
    serve,
)

CITIZEN_ID = "001085012345"
UPSTREAM_USERNAME = "an.nguyen"
UPSTREAM_ID = "vneid"
UPSTREAM_SCOPE = "openid profile citizen_id"


class RequestLog:
    """The paths of the requests the upstream answered, in order (an ASGI wrapper): what the
    caching of its documents is tested by."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)

    def count(self, path: str) -> int:
        return self.paths.count(path)


@dataclass
class Upstream:
    issuer: str
    runtime: IdpRuntime
    clock: FixedClock
    client_id: str
    client_secret: str
    requests: RequestLog

    def url(self, path: str) -> str:
        return f"{self.issuer}{path}"


def add_profile(runtime: IdpRuntime, account: Account, citizen_id: str) -> None:
    with transaction(runtime.session_factory) as session:
        session.add(
            AccountProfile(
                account_id=account.id,
                citizen_id=citizen_id,
                search_name=fold_for_search(account.full_name),
            )
        )


def create_official(
    runtime: IdpRuntime, *, username: str, citizen_id: str | None, password: str | None = None
) -> Account:
    with transaction(runtime.session_factory) as session:
        account = accounts.create(
            session=session,
            clock=runtime.clock,
            passwords=runtime.passwords,
            actor="test",
            username=username,
            full_name="Nguyễn Văn An",
            email="an.nv@laocai.gov.vn",
            password=password,
        )
    if citizen_id is not None:
        add_profile(runtime, account, citizen_id)
    return account


@pytest.fixture(scope="session")
def upstream_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("upstream-keys") / "ring"


@pytest.fixture
def upstream(
    tmp_path: Path, sqlite_template: Path, upstream_key_dir: Path, live_server: LiveServer
) -> Iterator[Upstream]:
    """The upstream commune-sso, serving; its official (citizen ID ``CITIZEN_ID``) signs in
    with ``OFFICIAL_PASSWORD``; our client there may use our callback and logout return."""
    database = tmp_path / "upstream.db"
    shutil.copyfile(sqlite_template, database)
    sock = bind_loopback()
    port = sock.getsockname()[1]
    settings = Settings(
        **{
            **settings_for(
                tmp_path=tmp_path / "upstream",
                database_url=f"sqlite:///{database}",
                key_dir=upstream_key_dir,
            ).model_dump(),
            "issuer": f"http://localhost:{port}",
        }
    )
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    runtime = build_runtime(settings, clock)
    app: Starlette = create_app(settings, runtime=runtime)
    with transaction(runtime.session_factory) as session:
        client, secret = clients.create(
            session=session,
            clock=clock,
            actor="test",
            name="Cổng SSO tỉnh Lào Cai",
            redirect_uris=[live_server.url(f"/login/upstream/{UPSTREAM_ID}/callback")],
            post_logout_redirect_uris=[live_server.url(RETURN_PATH)],
            scope=UPSTREAM_SCOPE,
            first_party=True,
        )
    assert secret is not None
    create_official(
        runtime, username=UPSTREAM_USERNAME, citizen_id=CITIZEN_ID, password=OFFICIAL_PASSWORD
    )
    requests = RequestLog(app)
    try:
        with serve(requests, sock):  # type: ignore[arg-type]
            yield Upstream(
                issuer=settings.issuer,
                runtime=runtime,
                clock=clock,
                client_id=client.client_id,
                client_secret=secret,
                requests=requests,
            )
    finally:
        sock.close()
        runtime.session_factory.kw["bind"].dispose()


def register_upstream(
    runtime: IdpRuntime, upstream: Upstream, *, link_claim: str = "citizen_id"
) -> UpstreamProvider:
    metadata = discovery.discover(upstream.issuer)
    with transaction(runtime.session_factory) as session:
        return providers.register(
            session=session,
            clock=runtime.clock,
            actor="test",
            upstream_id=UPSTREAM_ID,
            metadata=metadata,
            client_id=upstream.client_id,
            client_secret=upstream.client_secret,
            server_secret=runtime.server_secret,
            link_claim=link_claim,
            name_vi="VNeID thử nghiệm",
            name_en="Test VNeID",
            scope=UPSTREAM_SCOPE,
        )


@pytest.fixture
def registered(runtime: IdpRuntime, upstream: Upstream) -> UpstreamProvider:
    return register_upstream(runtime, upstream)
