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

# (resource type, check title) -> why it fails today; remove a line when the check passes (the
# test fails on an expected failure that no longer fails). All of them start by creating a User
# with only what /Schemas marks required (userName) or with every published attribute filled
# with random strings, so they wait for the User side of issue 13 (items 1-4: partial records,
# every published attribute stored).
_NAME = "POST /Users without name or displayName is refused (issue 13 item 3)"
_STORED = "the User attributes /Schemas publishes are not all stored (issue 13 item 2)"
_GROUP = (
    "fills every Group attribute, members are new Users: " + _NAME + "; then the random "
    "unitCode (a real unit code in the client's reach is needed) and members.display"
)
EXPECTED_FAILURES: dict[tuple[str | None, str], str] = {
    ("User", "object_creation"): _NAME,
    ("User", "object_query"): _NAME,
    ("User", "object_query_without_id"): _NAME,
    ("User", "object_query_with_attributes"): f"{_NAME}; {_STORED}",
    ("User", "object_list_with_attributes"): f"{_NAME}; {_STORED}",
    ("User", "search_with_attributes"): f"{_NAME}; {_STORED}",
    ("User", "object_replacement"): f"{_NAME}; {_STORED}",
    ("User", "object_deletion"): _NAME,
    ("User", "check_add_attribute"): f"{_NAME}; {_STORED}",
    ("User", "check_remove_attribute"): f"{_NAME}; {_STORED}",
    ("User", "check_replace_attribute"): f"{_NAME}; {_STORED}",
    ("Group", "object_query_with_attributes"): _GROUP,
    ("Group", "object_list_with_attributes"): _GROUP,
    ("Group", "search_with_attributes"): _GROUP,
    ("Group", "object_replacement"): _GROUP,
    ("Group", "check_add_attribute"): _GROUP,
    ("Group", "check_remove_attribute"): _GROUP,
    ("Group", "check_replace_attribute"): _GROUP,
}


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
    failed = {_key(r): r for r in results if r.status not in PASSING}
    unexpected = [_describe(r) for k, r in failed.items() if k not in EXPECTED_FAILURES]
    assert not unexpected, "\n".join(unexpected)
    # An expected failure that now passes: take it off the list.
    fixed = [f"{k}: {why}" for k, why in EXPECTED_FAILURES.items() if k not in failed]
    assert not fixed, "\n".join(fixed)
