"""Fixtures shared by the IdP tests."""

from __future__ import annotations

import pytest

from tests.conftest import register_client


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
