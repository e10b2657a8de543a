"""The third-party SCIM 2.0 tester ``scim2-tester`` against the real app under uvicorn, on
SQLite and PostgreSQL (PITFALLS, "SCIM 2.0": test with a tester written from someone else's
reading of RFC 7643/7644, not only with our own tests).

Every check it runs must pass (SUCCESS, COMPLIANT or ACCEPTABLE). The client is a provisioning
client with a real client_credentials bearer token, scoped to one ward; the tester discovers
the schemas and resource types from the server and fills every attribute it finds.
"""

from __future__ import annotations

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

from tests.idp import test_scim as read_side
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
)

directory = read_side.directory
ward_token = read_side.ward_token

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


def _key(result: CheckResult) -> tuple[str | None, str]:
    return (result.resource_type, result.title or "")


def _describe(result: CheckResult) -> str:
    return (
        f"{result.resource_type or '-'} | {result.title} | {result.status.name} | {result.reason}"
    )


@pytest.fixture
def results(live_server, ward_token) -> list[CheckResult]:
    with httpx2.Client(
        base_url=live_server.url("/scim/v2"),
        headers={"Authorization": f"Bearer {ward_token}"},
        timeout=30,
    ) as http:
        return check_server(SyncSCIMClient(http))


def test_scim2_tester_passes_every_check(results):
    assert len(results) > 30  # the tester discovered both resource types and ran its checks
    assert not [r for r in results if r.status is Status.SKIPPED and r.resource_type is None]
    failed = [_describe(r) for r in results if r.status not in PASSING]
    assert not failed, "\n".join(failed)
