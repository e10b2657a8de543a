"""Conditional writes under real concurrency (RFC 7644 §3.14): of several PATCH, PUT or DELETE
requests sent at once with the same If-Match, exactly one wins and the others get 412, on
SQLite (BEGIN IMMEDIATE before the check) and PostgreSQL (row lock). The requests go to a real
uvicorn from several threads, so they really overlap in the server's worker threads."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from tests.idp import test_scim as read_side
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
)
from tests.idp.test_scim import ERROR, SCIM

directory = read_side.directory
ward_token = read_side.ward_token

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ROUNDS = 10
WRITERS = 4


def _at_once(requests: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run every request in its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(requests))
    results: list[httpx.Response | BaseException | None] = [None] * len(requests)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = requests[index]()
        except BaseException as error:  # reported below, in the test's thread
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    answered = [r for r in results if isinstance(r, httpx.Response)]
    assert len(answered) == len(requests), results
    return answered


def _one_winner(responses: list[httpx.Response], success: int) -> None:
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {success: 1, 412: len(responses) - 1}, [r.text for r in responses]
    for response in responses:
        if response.status_code == 412:
            body = response.json()
            assert response.headers["content-type"].startswith(SCIM)
            assert body["schemas"] == [ERROR] and body["status"] == "412"


@pytest.fixture
def scim(live_server, ward_token):
    with httpx.Client(
        base_url=live_server.url("/scim/v2"),
        headers={"Authorization": f"Bearer {ward_token}"},
        timeout=30,
    ) as client:
        yield client


def _version(scim, path):
    response = scim.get(path)
    assert response.status_code == 200, response.text
    return response.headers["etag"], response.json()


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_concurrent_writes_with_one_if_match_have_one_winner(scim, directory, method):
    path = f"/Users/{directory['subjects']['nguyen.van.an']}"
    for round_number in range(ROUNDS):
        etag, user = _version(scim, path)
        values = [f"hr-{round_number}-{writer}" for writer in range(WRITERS)]

        def write(value: str, etag: str = etag, user: dict = user) -> httpx.Response:
            headers = {"If-Match": etag}
            if method == "PATCH":
                body = {
                    "schemas": [PATCH],
                    "Operations": [{"op": "replace", "path": "externalId", "value": value}],
                }
                return scim.patch(path, json=body, headers=headers)
            body = {key: v for key, v in user.items() if key not in ("id", "meta")}
            return scim.put(path, json={**body, "externalId": value}, headers=headers)

        responses = _at_once([lambda v=v: write(v) for v in values])
        _one_winner(responses, 200)
        (winner,) = [r for r in responses if r.status_code == 200]
        # The stored version is the winner's, one step after the one every writer saw.
        new_etag, stored = _version(scim, path)
        assert stored["externalId"] == winner.json()["externalId"]
        assert new_etag == winner.headers["etag"] != etag


def test_concurrent_deletes_with_one_if_match_have_one_winner(scim, directory):
    path = f"/Users/{directory['subjects']['tran.thi.binh']}"
    etag, _ = _version(scim, path)
    responses = _at_once([lambda: scim.delete(path, headers={"If-Match": etag})] * WRITERS)
    # The losers find the user gone (404) or changed (412); never a second 204.
    statuses = Counter(r.status_code for r in responses)
    assert statuses[204] == 1 and set(statuses) <= {204, 404, 412}, statuses
    assert scim.get(path).status_code == 404
