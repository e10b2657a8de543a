"""Fixtures of the FAPI 2.0 tests."""

from __future__ import annotations

import pytest

from idp.runtime import IdpRuntime
from tests.conftest import register_client
from tests.idp.test_admin_pages import world  # noqa: F401 (the admin pages' people and units)


@pytest.fixture
def shared_app(runtime: IdpRuntime) -> tuple[str, str]:
    """A confidential app (client_secret_basic): its client_id and secret."""
    client, secret = register_client(runtime)
    assert secret is not None
    return client.client_id, secret
