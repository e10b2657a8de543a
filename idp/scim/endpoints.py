"""SCIM 2.0 HTTP endpoints (RFC 7644): discovery (§4), search (§3.4.2) and retrieval (§3.4.1)
of Users. Every body is ``application/scim+json``; errors are rendered by :func:`scim_view`.

Writes (POST, PUT, PATCH, DELETE, /.search, /Bulk) are not implemented in this slice and
answer 501 with an Error body (§3.12), as the ServiceProviderConfig says.
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
from idp.scim import users
from idp.scim.auth import authenticate
from idp.scim.errors import (
    SCIM_MEDIA_TYPE,
    InvalidValue,
    NotFound,
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
            return error_response(error)

    async def endpoint(request: Request) -> Response:
        return await run_in_request_scope(request, guarded)

    return endpoint


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


def _not_implemented(scope: RequestScope) -> Response:
    authenticate(scope)
    raise NotImplementedYet(f"{scope.http.method} is not supported by this server yet.")


def scim_routes() -> list[Route]:
    writes = ["PUT", "PATCH", "DELETE"]
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
        Route(f"{PREFIX}/Users", scim_view(_not_implemented), methods=["POST"]),
        Route(f"{PREFIX}/Users/{{id}}", scim_view(_not_implemented), methods=writes),
        Route(f"{PREFIX}/Users/.search", scim_view(_not_implemented), methods=["POST"]),
        Route(f"{PREFIX}/Bulk", scim_view(_not_implemented), methods=["POST"]),
    ]
