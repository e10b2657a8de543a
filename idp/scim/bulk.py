"""Bulk operations (RFC 7644 §3.7): POST, PUT, PATCH and DELETE on /Users and /Groups.

Atomicity: the whole request is one transaction (the request scope's), and each operation runs
in a SAVEPOINT of its own. A failed operation is rolled back to its savepoint, audit entries
included, so it leaves nothing half-written, and the others go on (§3.7.3 lets each operation
succeed or fail alone). The transaction commits once at the end: one audit-chain lock for the
whole request instead of one per operation, and a request cut short (crash, lost connection)
leaves nothing, so the client can simply send it again. The cost is that the rows written stay
locked until the request ends; ``maxOperations`` bounds that.

``bulkId`` (§3.7.2): ``bulkId:<id>`` anywhere in a path or in ``data`` (e.g. a Group's
``members[].value``) is replaced by the id of the resource the POST with that bulkId created.
An operation that refers to a bulkId created further down waits until it is; one that refers
to a bulkId no operation created, or whose POST failed, fails with 409 (circular references
end the same way).

Limits (§3.7.4): more than ``maxOperations`` operations, or a body larger than
``maxPayloadSize``, is 413 with an Error body. ``failOnErrors`` stops after that many errors;
the response lists the operations processed so far.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from idp.scim.endpoints import Call, perform
from idp.scim.errors import InvalidSyntax, InvalidValue, PayloadTooLarge, ScimError
from idp.scim.schemas import BULK_MAX_OPERATIONS, BULK_MAX_PAYLOAD_BYTES

BULK_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
_PATH = re.compile(r"^/(?P<kind>Users|Groups)(?:/(?P<id>[^/]+))?$")
_REFERENCE = re.compile(r"bulkId:([A-Za-z0-9._~-]+)")
_STATUS = {"POST": 201, "PUT": 200, "PATCH": 200, "DELETE": 204}


class Conflict(ScimError):
    status = 409


@dataclass
class Operation:
    index: int
    method: str
    bulk_id: str | None
    version: str | None
    path: str
    data: Any


def _get(mapping: dict[str, Any], name: str) -> Any:
    return next((v for k, v in mapping.items() if k.lower() == name.lower()), None)


def _references(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(_REFERENCE.findall(value))
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value)) if value else set()
    if isinstance(value, dict):
        found: set[str] = set()
        for key, item in value.items():
            found |= _references(key) | _references(item)
        return found
    return set()


def _substitute(value: Any, created: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _REFERENCE.sub(lambda m: created[m.group(1)], value)
    if isinstance(value, list):
        return [_substitute(v, created) for v in value]
    if isinstance(value, dict):
        return {_substitute(k, created): _substitute(v, created) for k, v in value.items()}
    return value


def _error_body(error: ScimError) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(error.status)}
    if error.scim_type:
        body["scimType"] = error.scim_type
    body["detail"] = error.detail
    return body


def _parse(body: Any) -> tuple[list[Operation | ScimError], int | None]:
    if not isinstance(body, dict):
        raise InvalidSyntax("The request body must be a BulkRequest message.")
    schemas = _get(body, "schemas")
    if not isinstance(schemas, list) or BULK_REQUEST_SCHEMA not in schemas:
        raise InvalidSyntax(f"schemas: must list {BULK_REQUEST_SCHEMA}.")
    raw = _get(body, "Operations")
    if not isinstance(raw, list):
        raise InvalidSyntax("Operations: a list of operations is required.")
    if len(raw) > BULK_MAX_OPERATIONS:
        raise PayloadTooLarge(
            f"The request has {len(raw)} operations; maxOperations is {BULK_MAX_OPERATIONS}."
        )
    fail_on_errors = _get(body, "failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool)
        or not isinstance(fail_on_errors, int)
        or fail_on_errors < 1
    ):
        raise InvalidValue("failOnErrors: must be a positive integer.")
    operations: list[Operation | ScimError] = []
    for index, item in enumerate(raw):
        operations.append(_operation(index, item))
    return operations, fail_on_errors


def _operation(index: int, item: Any) -> Operation | ScimError:
    if not isinstance(item, dict):
        return InvalidSyntax(f"Operations[{index}]: must be an object.")
    method = _get(item, "method")
    path = _get(item, "path")
    bulk_id = _get(item, "bulkId")
    version = _get(item, "version")
    if not isinstance(method, str) or method.upper() not in _STATUS:
        return InvalidSyntax("method: must be POST, PUT, PATCH or DELETE.")
    method = method.upper()
    if not isinstance(path, str) or _PATH.match(path) is None:
        return InvalidValue("path: /Users, /Groups, /Users/<id> or /Groups/<id>.")
    if bulk_id is not None and not isinstance(bulk_id, str):
        return InvalidValue("bulkId: must be a string.")
    if method == "POST" and not bulk_id:
        return InvalidValue("bulkId: required for POST.")
    if version is not None and not isinstance(version, str):
        return InvalidValue("version: must be a string.")
    has_id = _PATH.match(path)["id"] is not None  # type: ignore[index]
    if has_id == (method == "POST"):
        return InvalidValue(f"path: {method} takes {'no' if method == 'POST' else 'a'} id.")
    data = _get(item, "data")
    if method != "DELETE" and not isinstance(data, dict):
        return InvalidSyntax("data: required for POST, PUT and PATCH.")
    return Operation(index, method, bulk_id, version, path, data)


def process(call: Call, body: Any, *, size: int) -> dict[str, Any]:
    """Run a BulkRequest; return the BulkResponse (each result in request order)."""
    if size > BULK_MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"The request is {size} bytes; maxPayloadSize is {BULK_MAX_PAYLOAD_BYTES}."
        )
    parsed, fail_on_errors = _parse(body)
    results: dict[int, dict[str, Any]] = {}
    created: dict[str, str] = {}  # bulkId -> id
    failed_ids: set[str] = set()
    errors = 0
    raw_operations = _get(body, "Operations")
    pending: list[Operation] = []
    for index, item in enumerate(parsed):
        if isinstance(item, ScimError):
            method = (
                _get(raw_operations[index], "method")
                if isinstance(raw_operations[index], dict)
                else None
            )
            results[index] = _failed(
                method if isinstance(method, str) else None,
                _get(raw_operations[index], "bulkId")
                if isinstance(raw_operations[index], dict)
                else None,
                item,
            )
            errors += 1
        else:
            pending.append(item)
    declared = {op.bulk_id for op in pending if op.method == "POST" and op.bulk_id}
    while pending and (fail_on_errors is None or errors < fail_on_errors):
        ready = next(
            (op for op in pending if _references([op.path, op.data]) <= set(created)), None
        )
        if ready is None:
            # What is left waits for a bulkId that will never be created: fail the first.
            blocked = pending[0]
            missing = sorted(_references([blocked.path, blocked.data]) - set(created))
            pending.remove(blocked)
            results[blocked.index] = _failed(
                blocked.method,
                blocked.bulk_id,
                Conflict(
                    f"bulkId {', '.join(missing)}: no resource was created under "
                    + (
                        "that bulkId (failed or circular reference)."
                        if set(missing) & (declared | failed_ids)
                        else "that bulkId."
                    )
                ),
            )
            if blocked.bulk_id:
                failed_ids.add(blocked.bulk_id)
            errors += 1
            continue
        pending.remove(ready)
        result = _run(call, ready, created)
        results[ready.index] = result
        if not str(result["status"]).startswith("2"):
            errors += 1
            if ready.bulk_id:
                failed_ids.add(ready.bulk_id)
                declared.discard(ready.bulk_id)
    return {
        "schemas": [BULK_RESPONSE_SCHEMA],
        "Operations": [results[index] for index in sorted(results)],
    }


def _failed(method: str | None, bulk_id: Any, error: ScimError) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if method:
        result["method"] = method.upper()
    if isinstance(bulk_id, str):
        result["bulkId"] = bulk_id
    result["status"] = str(error.status)
    result["response"] = _error_body(error)
    return result


def _run(call: Call, operation: Operation, created: dict[str, str]) -> dict[str, Any]:
    path = _substitute(operation.path, created)
    data = _substitute(operation.data, created)
    match = _PATH.match(path)
    assert match is not None
    kind = "User" if match["kind"] == "Users" else "Group"
    step = Call(
        runtime=call.runtime,
        session=call.session,
        caller=call.caller,
        base=call.base,
        if_match=operation.version,
    )
    savepoint = call.session.begin_nested()
    try:
        outcome = perform(step, operation.method, kind, match["id"], data)
        savepoint.commit()
    except ScimError as error:
        savepoint.rollback()
        return _failed(operation.method, operation.bulk_id, error)
    result: dict[str, Any] = {"method": operation.method}
    if operation.bulk_id:
        result["bulkId"] = operation.bulk_id
    if outcome.etag:
        result["version"] = outcome.etag
    result["location"] = outcome.location or f"{call.base}{path}"
    result["status"] = str(outcome.status)
    if operation.method == "POST" and operation.bulk_id and outcome.document:
        created[operation.bulk_id] = outcome.document["id"]
    return result
