"""Fixtures of the FAPI 2.0 tests."""

from __future__ import annotations

from tests.idp.test_admin_pages import world  # noqa: F401 (the admin pages' people and units)
