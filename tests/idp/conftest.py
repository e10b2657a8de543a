"""Fixtures shared by the IdP tests."""

from __future__ import annotations

from typing import Any

import pytest

from idp import request_scope
from tests.conftest import register_client


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request that went to a worker thread (the general path) records itself here."""
    calls: list[str] = []
    original = request_scope.run_in_threadpool

    async def recorded(func: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(func, "__qualname__", repr(func)))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(request_scope, "run_in_threadpool", recorded)
    return calls


@pytest.fixture
def service(runtime) -> tuple[str, str]:
    """A confidential service client (client_credentials only, no redirect URIs)."""
    client, secret = register_client(
        runtime,
        name="Dịch vụ đồng bộ",
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="profile email",
        first_party=False,
    )
    assert secret is not None
    return client.client_id, secret
