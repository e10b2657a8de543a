"""SCIM 2.0 HTTP endpoints (RFC 7644): discovery (§4), search (§3.4.2), retrieval (§3.4.1),
creation (§3.3), replacement (§3.5.1), modification (§3.5.2) and deletion (§3.6) of Users.
Every body is ``application/scim+json``; errors are rendered by :func:`scim_view`, which also
rolls back whatever a refused request had written.

/.search and /Bulk are not implemented and answer 501 with an Error body (§3.12), as the
ServiceProviderConfig says.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from scim2_models import Context, ResponseParameters
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.request_scope import RequestScope, run_in_request_scope
from idp.scim import patching, users, writes
from idp.scim.auth import Provisioner, authenticate
from idp.scim.errors import (
    SCIM_MEDIA_TYPE,
    InvalidSyntax,
    InvalidValue,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ScimError,
    error_response,
)
from idp.scim.schemas import (
    UserListResponse,
    schema_documents,
    service_provider_config,
    user_resource_type,
)

PREFIX = "/scim/v2"
# Officials' personal data: shared caches must not keep it; the client revalidates by ETag.
PRIVATE = {"Cache-Control": "private, no-cache"}
MAX_BODY_BYTES = 1_000_000


class NotImplementedYet(ScimError):
    status = 501


def scim_response(
    body: str | dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    content = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return Response(
        content,
        status_code=status,
        media_type=SCIM_MEDIA_TYPE,
        headers={**PRIVATE, **(headers or {})},
    )


def base_url(scope: RequestScope) -> str:
    return scope.runtime.settings.issuer.rstrip("/") + PREFIX


def scim_view(handler: Callable[[RequestScope], Response]) -> Callable[[Request], Any]:
    """Run ``handler`` in the request scope; a :class:`ScimError` becomes an Error body."""

    def guarded(scope: RequestScope) -> Response:
        try:
            return handler(scope)
        except ScimError as error:
            # Nothing a refused request wrote may stay (audit entries included).
            scope.session.rollback()
            return error_response(error)

    async def endpoint(request: Request) -> Response:
        if request.method in ("POST", "PUT", "PATCH"):
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                return error_response(PayloadTooLarge("The request body is too large."))
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                return error_response(PayloadTooLarge("The request body is too large."))
            request.state.scim_body = body
        return await run_in_request_scope(request, guarded)

    return endpoint


def _json_body(scope: RequestScope) -> Any:
    """The body :func:`scim_view` read before entering the worker thread."""
    raw: bytes = getattr(scope.request.state, "scim_body", b"")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidSyntax("The request body is not valid JSON.") from None


def _query(scope: RequestScope, name: str) -> str | None:
    """Query parameter names are case-insensitive in practice (clients send startindex)."""
    for key, value in scope.http.query:
        if key.lower() == name.lower():
            return value
    return None


def _response_parameters(scope: RequestScope) -> ResponseParameters | None:
    """``attributes`` / ``excludedAttributes`` (RFC 7644 §3.9)."""
    raw = {
        key: value
        for key, value in (
            ("attributes", _query(scope, "attributes")),
            ("excludedAttributes", _query(scope, "excludedAttributes")),
        )
        if value
    }
    if not raw:
        return None
    try:
        return ResponseParameters.model_validate(raw)
    except ValidationError:
        raise InvalidValue("'attributes' or 'excludedAttributes' is not a list of paths.") from None


def _with_meta(document: dict[str, Any], resource_type: str, location: str) -> dict[str, Any]:
    return {**document, "meta": {"resourceType": resource_type, "location": location}}


def _list(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(resources),
        "startIndex": 1,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


# --- Discovery (RFC 7644 §4); no personal data, so no authentication -------------------------


def _service_provider_config(scope: RequestScope) -> Response:
    document = service_provider_config().model_dump()
    location = f"{base_url(scope)}/ServiceProviderConfig"
    return scim_response(_with_meta(document, "ServiceProviderConfig", location))


def _resource_type_documents(scope: RequestScope) -> list[dict[str, Any]]:
    document = user_resource_type().model_dump()
    return [_with_meta(document, "ResourceType", f"{base_url(scope)}/ResourceTypes/User")]


def _resource_types(scope: RequestScope) -> Response:
    return scim_response(_list(_resource_type_documents(scope)))


def _resource_type(scope: RequestScope) -> Response:
    wanted = scope.request.path_params["id"]
    for document in _resource_type_documents(scope):
        if document["id"] == wanted:
            return scim_response(document)
    raise NotFound("No such resource type.")


def _schema_documents(scope: RequestScope) -> list[dict[str, Any]]:
    return [
        _with_meta(document, "Schema", f"{base_url(scope)}/Schemas/{document['id']}")
        for document in schema_documents()
    ]


def _schemas(scope: RequestScope) -> Response:
    return scim_response(_list(_schema_documents(scope)))


def _schema(scope: RequestScope) -> Response:
    wanted = scope.request.path_params["id"]
    for document in _schema_documents(scope):
        if document["id"] == wanted:
            return scim_response(document)
    raise NotFound("No such schema.")


# --- Users ---------------------------------------------------------------------------------


def _users(scope: RequestScope) -> Response:
    """RFC 7644 §3.4.2: filter, sortBy/sortOrder, startIndex/count, in the caller's reach."""
    caller = authenticate(scope)
    parameters = _response_parameters(scope)
    page = users.search(
        scope.session,
        reach=caller.reach,
        filter_text=_query(scope, "filter"),
        sort_by=_query(scope, "sortBy"),
        sort_order=_query(scope, "sortOrder"),
        start_index=_query(scope, "startIndex"),
        count=_query(scope, "count"),
    )
    resources = [users.to_resource(row, base_url=base_url(scope)) for row in page.rows]
    listing = UserListResponse(
        total_results=page.total,
        start_index=page.start_index,
        items_per_page=len(resources),
        resources=resources or None,
    )
    body = listing.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=parameters)
    body.setdefault("Resources", [])
    return scim_response(body)


def _none_match(header: str | None, current: str) -> bool:
    """If-None-Match (RFC 9110 §13.1.2) uses the weak comparison."""
    if header is None:
        return False
    tags = [tag.strip() for tag in header.split(",")]
    bare = current.removeprefix("W/")
    return "*" in tags or any(tag.removeprefix("W/") == bare for tag in tags)


def _user(scope: RequestScope) -> Response:
    """RFC 7644 §3.4.1. Missing, deleted and out-of-reach officials are the same 404."""
    caller = authenticate(scope)
    parameters = _response_parameters(scope)
    row = users.find(scope.session, reach=caller.reach, subject=scope.request.path_params["id"])
    if row is None:
        raise NotFound("No such user.")
    etag = users.etag(row)
    if _none_match(scope.http.header("if-none-match"), etag):
        return Response(status_code=304, headers={**PRIVATE, "ETag": etag})
    resource = users.to_resource(row, base_url=base_url(scope))
    body = resource.model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters
    )
    location = f"{base_url(scope)}/Users/{row.account.subject}"
    return scim_response(body, headers={"ETag": etag, "Content-Location": location})


def _actor(caller: Provisioner) -> str:
    return f"client:{caller.client.client_id}"


def _user_response(
    scope: RequestScope, row: users.Row, *, status: int = 200, created: bool = False
) -> Response:
    resource = users.to_resource(row, base_url=base_url(scope))
    body = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    location = f"{base_url(scope)}/Users/{row.account.subject}"
    headers = {"ETag": users.etag(row), ("Location" if created else "Content-Location"): location}
    return scim_response(body, status=status, headers=headers)


def _check_if_match(scope: RequestScope, row: users.Row) -> None:
    """If-Match (RFC 7644 §3.14, weak comparison as its examples use W/ tags)."""
    header = scope.http.header("if-match")
    if header is None:
        return
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    if "*" in tags or users.etag(row).removeprefix("W/") in tags:
        return
    raise PreconditionFailed(
        f"The user has changed: its current version is {users.etag(row)} (If-Match failed)."
    )


def _existing(scope: RequestScope, caller: Provisioner) -> users.Row:
    row = users.find(
        scope.session,
        reach=caller.reach,
        subject=scope.request.path_params["id"],
        for_update=True,
    )
    if row is None:
        raise NotFound("No such user.")
    return row


def _create_user(scope: RequestScope) -> Response:
    caller = authenticate(scope)
    row = writes.create(
        session=scope.session,
        clock=scope.runtime.clock,
        passwords=scope.runtime.passwords,
        actor=_actor(caller),
        reach=caller.reach,
        body=_json_body(scope),
    )
    return _user_response(scope, row, status=201, created=True)


def _replace_user(scope: RequestScope) -> Response:
    caller = authenticate(scope)
    row = _existing(scope, caller)
    _check_if_match(scope, row)
    row = writes.replace(
        session=scope.session,
        clock=scope.runtime.clock,
        actor=_actor(caller),
        reach=caller.reach,
        row=row,
        body=_json_body(scope),
    )
    return _user_response(scope, row)


def _patch_user(scope: RequestScope) -> Response:
    caller = authenticate(scope)
    row = _existing(scope, caller)
    _check_if_match(scope, row)
    body = _json_body(scope)
    document = users.to_resource(row, base_url=base_url(scope)).model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE
    )
    patched = patching.apply_operations(document, body)
    patching.keep_agency_kind_on_move(document, patched, row.agency.kind if row.agency else None)
    desired = writes.parse(
        scope.session, patched, reach=caller.reach, today=scope.runtime.clock.now().date()
    )
    row = writes.apply(
        session=scope.session,
        clock=scope.runtime.clock,
        actor=_actor(caller),
        row=row,
        desired=desired,
        operation="patch",
    )
    return _user_response(scope, row)


def _delete_user(scope: RequestScope) -> Response:
    caller = authenticate(scope)
    row = _existing(scope, caller)
    _check_if_match(scope, row)
    writes.delete(session=scope.session, clock=scope.runtime.clock, actor=_actor(caller), row=row)
    return Response(status_code=204, headers=PRIVATE)


def _not_implemented(scope: RequestScope) -> Response:
    authenticate(scope)
    raise NotImplementedYet(f"{scope.http.method} is not supported by this server yet.")


def scim_routes() -> list[Route]:
    return [
        Route(
            f"{PREFIX}/ServiceProviderConfig", scim_view(_service_provider_config), methods=["GET"]
        ),
        Route(f"{PREFIX}/ResourceTypes", scim_view(_resource_types), methods=["GET"]),
        Route(f"{PREFIX}/ResourceTypes/{{id}}", scim_view(_resource_type), methods=["GET"]),
        Route(f"{PREFIX}/Schemas", scim_view(_schemas), methods=["GET"]),
        Route(f"{PREFIX}/Schemas/{{id}}", scim_view(_schema), methods=["GET"]),
        Route(f"{PREFIX}/Users", scim_view(_users), methods=["GET"]),
        Route(f"{PREFIX}/Users/{{id}}", scim_view(_user), methods=["GET"]),
        Route(f"{PREFIX}/Users", scim_view(_create_user), methods=["POST"]),
        Route(f"{PREFIX}/Users/.search", scim_view(_not_implemented), methods=["POST"]),
        Route(f"{PREFIX}/Users/{{id}}", scim_view(_replace_user), methods=["PUT"]),
        Route(f"{PREFIX}/Users/{{id}}", scim_view(_patch_user), methods=["PATCH"]),
        Route(f"{PREFIX}/Users/{{id}}", scim_view(_delete_user), methods=["DELETE"]),
        Route(f"{PREFIX}/Bulk", scim_view(_not_implemented), methods=["POST"]),
    ]
