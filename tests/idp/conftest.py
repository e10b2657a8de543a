"""Fixtures shared by the IdP tests."""

from __future__ import annotations

from typing import Any

import pytest

from idp import request_scope
from tests.conftest import OFFICIAL_PASSWORD, register_client
from tests.idp.oidc_flow import authorize_params, exchange_code, log_in, pkce_pair, query_of


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


@pytest.fixture
def user_tokens(web, rp, official) -> dict[str, str]:
    """The token response of a code flow for the official, through the real login."""
    client, secret = rp
    verifier, challenge = pkce_pair()
    back = log_in(
        web, authorize_params(client.client_id, challenge), "nguyen.van.an", OFFICIAL_PASSWORD
    )
    code = query_of(back.headers["location"])["code"]
    response = exchange_code(web, client.client_id, secret, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
