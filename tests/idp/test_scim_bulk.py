"""SCIM 2.0 /Bulk (RFC 7644 §3.7): bulkId references, per-operation savepoints, failOnErrors,
maxOperations and maxPayloadSize (413), versions, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from core.audit import AuditEntry
from core.db import transaction
from idp.models import Account
from tests.idp import test_scim as read_side
from tests.idp.test_scim import get
from tests.idp.test_scim_writes import error_of, new_user, send

directory = read_side.directory
province_token = read_side.province_token
ward_token = read_side.ward_token

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def bulk(web, token, *operations, **extra):
    return send(
        web, "POST", "/Bulk", token, {"schemas": [BULK], "Operations": list(operations), **extra}
    )


def test_bulk_ids_resolve_across_operations_in_any_order(web, runtime, ward_token, directory):
    response = bulk(
        web,
        ward_token,
        # The group refers to a user created further down: it waits for it.
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g",
            "data": {
                "schemas": [GROUP],
                "displayName": "Nhóm mới",
                "members": [
                    {"value": "bulkId:u"},
                    {"value": directory["subjects"]["nguyen.van.an"]},
                ],
            },
        },
        {"method": "POST", "path": "/Users", "bulkId": "u", "data": new_user()},
        {
            "method": "PATCH",
            "path": "/Users/bulkId:u",
            "data": {
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "path": "active", "value": False}],
            },
        },
        {"method": "DELETE", "path": "/Users/nope"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]
    group, user, patched, missing = body["Operations"]
    assert user["status"] == "201" and user["bulkId"] == "u" and user["version"] == 'W/"1"'
    assert group["status"] == "201" and "/Groups/" in group["location"]
    assert patched["status"] == "200" and patched["version"] == 'W/"2"'
    assert missing["status"] == "404" and missing["response"]["status"] == "404"
    user_id = user["location"].rsplit("/", 1)[1]
    fetched = get(web, f"/Users/{user_id}", ward_token).json()
    assert fetched["active"] is False
    assert fetched["groups"][0]["display"] == "Nhóm mới"
    members = get(web, "/Groups/" + group["location"].rsplit("/", 1)[1], ward_token).json()[
        "members"
    ]
    assert {m["value"] for m in members} == {user_id, directory["subjects"]["nguyen.van.an"]}


def test_failed_operation_leaves_nothing_and_fail_on_errors_stops(
    web, runtime, ward_token, directory
):
    an = directory["subjects"]["nguyen.van.an"]
    response = bulk(
        web,
        ward_token,
        # Valid first operation, invalid second: the PATCH as a whole fails, nothing stays.
        {
            "method": "PATCH",
            "path": f"/Users/{an}",
            "data": {
                "schemas": [PATCH],
                "Operations": [
                    {"op": "replace", "path": "externalId", "value": "hr-new"},
                    {"op": "replace", "path": "userName", "value": " "},
                ],
            },
        },
        {"method": "PUT", "path": f"/Users/{an}", "version": 'W/"1"', "data": new_user()},
        {"method": "POST", "path": "/Users", "bulkId": "late", "data": new_user()},
        failOnErrors=2,
    )
    assert response.status_code == 200, response.text
    results = response.json()["Operations"]
    assert [r["status"] for r in results] == ["400", "412"]  # stopped before the third
    assert results[0]["response"]["scimType"] == "invalidValue"
    assert get(web, f"/Users/{an}", ward_token).json()["externalId"] == "hr-1"
    with transaction(runtime.session_factory) as session:
        assert session.scalar(select(Account).where(Account.username == "vu.van.moi")) is None
        assert not session.scalars(select(AuditEntry).where(AuditEntry.action.like("scim.%"))).all()


def test_unresolvable_bulk_id_is_409(web, ward_token):
    response = bulk(
        web,
        ward_token,
        {"method": "POST", "path": "/Users", "bulkId": "bad", "data": new_user(userName=" ")},
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g",
            "data": {"schemas": [GROUP], "displayName": "G", "members": [{"value": "bulkId:bad"}]},
        },
    )
    first, second = response.json()["Operations"]
    assert first["status"] == "400" and second["status"] == "409"


def test_limits_are_413_and_malformed_operations_fail_alone(web, ward_token):
    too_many = [{"method": "DELETE", "path": f"/Users/x{i}"} for i in range(1001)]
    assert "maxOperations" in error_of(bulk(web, ward_token, *too_many), 413)
    huge = new_user(externalId="x" * 1_100_000)
    too_big = bulk(
        web, ward_token, {"method": "POST", "path": "/Users", "bulkId": "a", "data": huge}
    )
    error_of(too_big, 413)
    mixed = bulk(
        web,
        ward_token,
        {"method": "POST", "path": "/Users", "data": new_user()},  # no bulkId
        {"method": "GET", "path": "/Users"},
        {"method": "DELETE", "path": "/Elsewhere/1"},
    ).json()["Operations"]
    assert [r["status"] for r in mixed] == ["400", "400", "400"]
