"""SCIM 2.0 HTTP endpoints (RFC 7644): discovery (§4), search by GET (§3.4.2) and POST
/.search (§3.4.3), retrieval (§3.4.1), creation (§3.3), replacement (§3.5.1), modification
(§3.5.2) and deletion (§3.6) of Users and Groups, and /Bulk (§3.7, in :mod:`idp.scim.bulk`).
Every body is ``application/scim+json``; errors are rendered by :func:`scim_view`, which also
rolls back whatever a refused request had written.

Each write is an *operation* (:func:`perform`): the HTTP routes and the bulk operations run the
same code and produce the same :class:`Outcome`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json
from scim2_models import Context, ResponseParameters
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.web.json_body import JsonBodyError, parse_json_body
from idp.agencies import AGENCY_KINDS
from idp.models import Agency, Unit
from idp.request_scope import RequestScope, run_in_request_scope
from idp.runtime import IdpRuntime
from idp.scim import group_writes, groups, patching, users, writes
from idp.scim.auth import Provisioner, authenticate
from idp.scim.errors import (
    SCIM_MEDIA_TYPE,
    InvalidFilter,
    InvalidSyntax,
    InvalidValue,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ScimError,
    error_response,
)
from idp.scim.schemas import (
    BULK_MAX_PAYLOAD_BYTES,
    MAX_UNIT_CHOICES,
    ScimGroup,
    ScimUser,
    group_resource_type,
    schema_documents,
    service_provider_config,
    user_resource_type,
    with_agency_choices,
    with_unit_choices,
)

PREFIX = "/scim/v2"
# Officials' personal data: shared caches must not keep it; the client revalidates by ETag.
PRIVATE = {"Cache-Control": "private, no-cache"}
MAX_BODY_BYTES = BULK_MAX_PAYLOAD_BYTES
SEARCH_REQUEST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
LIST_RESPONSE_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def scim_response(
    body: str | dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    # pydantic-core's encoder: UTF-8 like ensure_ascii=False, 3× faster than json.dumps on a
    # page of 100 Users.
    content = body if isinstance(body, str) else to_json(body)
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
        return parse_json_body(raw, max_bytes=MAX_BODY_BYTES)
    except JsonBodyError as error:
        if error.reason == JsonBodyError.TOO_LARGE:
            raise PayloadTooLarge(str(error)) from None
        if error.reason == JsonBodyError.UNSTORABLE_TEXT:
            # RFC 7644 §3.12: a value incompatible with the attribute's type (string).
            raise InvalidValue(str(error)) from None
        raise InvalidSyntax(str(error)) from None


def _query(scope: RequestScope, name: str) -> str | None:
    """Query parameter names are case-insensitive in practice (clients send startindex)."""
    for key, value in scope.http.query:
        if key.lower() == name.lower():
            return value
    return None


def _response_parameters(scope: RequestScope) -> ResponseParameters | None:
    """``attributes`` / ``excludedAttributes`` (RFC 7644 §3.9)."""
    return _parameters_of(
        {
            "attributes": _query(scope, "attributes"),
            "excludedAttributes": _query(scope, "excludedAttributes"),
        }
    )


def _parameters_of(given: dict[str, Any]) -> ResponseParameters | None:
    raw = {key: value for key, value in given.items() if value}
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
    return [
        _with_meta(
            resource_type.model_dump(),
            "ResourceType",
            f"{base_url(scope)}/ResourceTypes/{resource_type.id}",
        )
        for resource_type in (user_resource_type(), group_resource_type())
    ]


def _resource_types(scope: RequestScope) -> Response:
    return scim_response(_list(_resource_type_documents(scope)))


def _resource_type(scope: RequestScope) -> Response:
    wanted = scope.request.path_params["id"]
    for document in _resource_type_documents(scope):
        if document["id"] == wanted:
            return scim_response(document)
    raise NotFound("No such resource type.")


def _schema_documents(scope: RequestScope) -> list[dict[str, Any]]:
    documents = [
        _with_meta(document, "Schema", f"{base_url(scope)}/Schemas/{document['id']}")
        for document in schema_documents()
    ]
    units = _unit_choices(scope)
    if not units:
        return documents
    documents = with_unit_choices(documents, [unit.code for unit in units])
    if len(units) == 1:
        documents = with_agency_choices(documents, _agency_choices(scope, units[0]))
    return documents


def _unit_choices(scope: RequestScope) -> list[Unit]:
    """The units the calling provisioning client may use, if it authenticates and they
    are few; the schema endpoints themselves answer without a token too."""
    try:
        caller = authenticate(scope)
    except ScimError:
        return []
    found = scope.session.scalars(
        select(Unit)
        .where(caller.reach.units_clause(), Unit.status == "active")
        .order_by(Unit.code)
        .limit(MAX_UNIT_CHOICES + 1)
    ).all()
    return list(found) if len(found) <= MAX_UNIT_CHOICES else []


def _agency_choices(scope: RequestScope, unit: Unit) -> list[str]:
    """The names of the unit's agencies, then the standard name of each kind it has none of
    yet: each one, sent as ``agency``, is shown back as sent (a kind's standard name would
    name the unit's agency of that kind, which may be called otherwise)."""
    present = scope.session.execute(
        select(Agency.name, Agency.kind).where(Agency.unit_id == unit.id).order_by(Agency.id)
    ).all()
    kinds = {kind for _, kind in present}
    return [name for name, _ in present] + [
        name for kind, name in AGENCY_KINDS.items() if kind not in kinds
    ]


def _schemas(scope: RequestScope) -> Response:
    return scim_response(_list(_schema_documents(scope)))


def _schema(scope: RequestScope) -> Response:
    wanted = scope.request.path_params["id"]
    for document in _schema_documents(scope):
        if document["id"] == wanted:
            return scim_response(document)
    raise NotFound("No such schema.")


# --- Representations -------------------------------------------------------------------------


def _project(document: dict[str, Any], kind: str, parameters: ResponseParameters | None) -> Any:
    """``attributes``/``excludedAttributes`` (RFC 7644 §3.9) are applied by scim2-models;
    without them the plain document is the answer (the fast path of paging)."""
    if parameters is None:
        return document
    model: Any = ScimUser if kind == "User" else ScimGroup
    return model.model_validate(document).model_dump(
        scim_ctx=Context.SEARCH_RESPONSE, response_parameters=parameters
    )


def _document(
    row: users.Row | users.UserView | groups.GroupRow,
    base: str,
    parameters: ResponseParameters | None = None,
) -> tuple[str, dict[str, Any]]:
    """The resource as JSON; with ``attributes``/``excludedAttributes``, also the attributes
    returned on request only, for :func:`_project` to keep or drop."""
    requested = parameters is not None
    if isinstance(row, groups.GroupRow):
        return "Group", groups.to_document(row, base_url=base, requested=requested)
    view = row.view if isinstance(row, users.Row) else row
    return "User", users.to_document(view, base_url=base, requested=requested)


def _listing(
    total: int, start: int, resources: list[Any], parameters: ResponseParameters | None
) -> dict[str, Any]:
    return {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


# --- Search (RFC 7644 §3.4.2 by GET, §3.4.3 by POST /.search) --------------------------------


@dataclass(frozen=True)
class SearchParameters:
    filter: str | None
    sort_by: str | None
    sort_order: str | None
    start_index: str | int | None
    count: str | int | None
    response: ResponseParameters | None


def _query_parameters(scope: RequestScope) -> SearchParameters:
    return SearchParameters(
        filter=_query(scope, "filter"),
        sort_by=_query(scope, "sortBy"),
        sort_order=_query(scope, "sortOrder"),
        start_index=_query(scope, "startIndex"),
        count=_query(scope, "count"),
        response=_response_parameters(scope),
    )


def _search_request(scope: RequestScope) -> SearchParameters:
    """A SearchRequest body (§3.4.3): the query parameters of §3.4.2 as JSON."""
    body = _json_body(scope)
    if not isinstance(body, dict):
        raise InvalidSyntax("The request body must be a SearchRequest message.")

    def get(name: str) -> Any:
        return next((v for k, v in body.items() if k.lower() == name.lower()), None)

    schemas = get("schemas")
    if not isinstance(schemas, list) or SEARCH_REQUEST_SCHEMA not in schemas:
        raise InvalidSyntax(f"schemas: must list {SEARCH_REQUEST_SCHEMA}.")
    for name in ("filter", "sortBy", "sortOrder"):
        if get(name) is not None and not isinstance(get(name), str):
            raise InvalidValue(f"'{name}' must be a string.")
    for name in ("startIndex", "count"):
        value = get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidValue(f"'{name}' must be an integer.")
    for name in ("attributes", "excludedAttributes"):
        value = get(name)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise InvalidValue(f"'{name}' must be a list of attribute paths.")
    return SearchParameters(
        filter=get("filter"),
        sort_by=get("sortBy"),
        sort_order=get("sortOrder"),
        start_index=get("startIndex"),
        count=get("count"),
        response=_parameters_of(
            {
                "attributes": ",".join(get("attributes") or []),
                "excludedAttributes": ",".join(get("excludedAttributes") or []),
            }
        ),
    )


def _search(scope: RequestScope, kind: str, parameters: SearchParameters) -> Response:
    caller = authenticate(scope)
    base = base_url(scope)
    criteria: dict[str, Any] = {
        "reach": caller.reach,
        "filter_text": parameters.filter,
        "sort_by": parameters.sort_by,
        "sort_order": parameters.sort_order,
        "start_index": parameters.start_index,
        "count": parameters.count,
    }
    page: users.Page | groups.Page = (
        users.search(scope.session, unit_ids=caller.unit_ids, **criteria)
        if kind == "User"
        else groups.search(scope.session, **criteria)
    )
    resources = [
        _project(_document(row, base, parameters.response)[1], kind, parameters.response)
        for row in page.rows
    ]
    return scim_response(_listing(page.total, page.start_index, resources, parameters.response))


def _root_search(scope: RequestScope) -> Response:
    """POST /.search (§3.4.3) over Users and Groups: an attribute one type lacks makes its
    comparisons false there (§3.4.2.1); one neither has is 400 invalidFilter. Results are the
    matching Users, then the matching Groups, each in the order ``sortBy`` gives (sorting
    attributes must exist on both types)."""
    caller = authenticate(scope)
    parameters = _search_request(scope)
    base = base_url(scope)
    start, size = users.page_window(parameters.start_index, parameters.count)
    if parameters.filter:
        errors: list[InvalidFilter] = []
        for check in (users.check_filter, groups.check_filter):
            try:
                check(scope.session, parameters.filter)
            except InvalidFilter as error:
                errors.append(error)
        if len(errors) == 2:
            raise errors[0]
    # Users first: how many precede the page decides where the Groups part starts.
    user_page = users.search(
        scope.session,
        reach=caller.reach,
        filter_text=parameters.filter,
        sort_by=parameters.sort_by,
        sort_order=parameters.sort_order,
        start_index=start,
        count=size,
        unknown_is_false=True,
        unit_ids=caller.unit_ids,
    )
    taken = len(user_page.rows)
    group_page = groups.search(
        scope.session,
        reach=caller.reach,
        filter_text=parameters.filter,
        sort_by=parameters.sort_by,
        sort_order=parameters.sort_order,
        start_index=max(start - user_page.total, 1),
        count=size - taken,
        unknown_is_false=True,
    )
    rows: list[Any] = [*user_page.rows, *group_page.rows]
    resources = []
    for row in rows:
        kind, document = _document(row, base, parameters.response)
        resources.append(_project(document, kind, parameters.response))
    total = user_page.total + group_page.total
    return scim_response(_listing(total, start, resources, parameters.response))


def _users(scope: RequestScope) -> Response:
    """RFC 7644 §3.4.2: filter, sortBy/sortOrder, startIndex/count, in the caller's reach."""
    return _search(scope, "User", _query_parameters(scope))


def _users_search(scope: RequestScope) -> Response:
    return _search(scope, "User", _search_request(scope))


def _groups(scope: RequestScope) -> Response:
    return _search(scope, "Group", _query_parameters(scope))


def _groups_search(scope: RequestScope) -> Response:
    return _search(scope, "Group", _search_request(scope))


# --- Retrieval -------------------------------------------------------------------------------


def _none_match(header: str | None, current: str) -> bool:
    """If-None-Match (RFC 9110 §13.1.2) uses the weak comparison."""
    if header is None:
        return False
    tags = [tag.strip() for tag in header.split(",")]
    bare = current.removeprefix("W/")
    return "*" in tags or any(tag.removeprefix("W/") == bare for tag in tags)


def _retrieve(scope: RequestScope, kind: str) -> Response:
    """RFC 7644 §3.4.1. Missing, deleted and out-of-reach resources are the same 404."""
    caller = authenticate(scope)
    parameters = _response_parameters(scope)
    resource_id = scope.request.path_params["id"]
    row: users.UserView | groups.GroupRow
    if kind == "User":
        # Read with one Core statement: no rows to lock or change, no ORM entities.
        found = users.view_of(
            scope.session, reach=caller.reach, subject=resource_id, unit_ids=caller.unit_ids
        )
        if found is None:
            raise NotFound("No such user.")
        row = found
    else:
        row = _find(scope.session, caller, kind, resource_id, for_update=False)
    etag = _etag(row)
    if _none_match(scope.http.header("if-none-match"), etag):
        return Response(status_code=304, headers={**PRIVATE, "ETag": etag})
    _, document = _document(row, base_url(scope), parameters)
    body = _project(document, kind, parameters)
    location = document["meta"]["location"]
    return scim_response(body, headers={"ETag": etag, "Content-Location": location})


def _user(scope: RequestScope) -> Response:
    return _retrieve(scope, "User")


def _group(scope: RequestScope) -> Response:
    return _retrieve(scope, "Group")


# --- Operations: one write, from an HTTP request or a bulk operation --------------------------


@dataclass(frozen=True)
class Call:
    runtime: IdpRuntime
    session: Any
    caller: Provisioner
    base: str
    if_match: str | None = None

    @property
    def actor(self) -> str:
        return f"client:{self.caller.client_id}"


@dataclass(frozen=True)
class Outcome:
    status: int
    document: dict[str, Any] | None
    location: str | None
    etag: str | None


def _etag(row: users.Row | users.UserView | groups.GroupRow) -> str:
    if isinstance(row, groups.GroupRow):
        return groups.etag(row)
    return users.etag(row.view if isinstance(row, users.Row) else row)


def _find(
    session: Any, caller: Provisioner, kind: str, resource_id: str, *, for_update: bool
) -> Any:
    """``for_update`` locks the rows (PostgreSQL) so that an If-Match check and the write
    that follows it see the same version."""
    row: users.Row | groups.GroupRow | None
    if kind == "User":
        row = users.find(session, reach=caller.reach, subject=resource_id, for_update=for_update)
    else:
        row = groups.find(session, reach=caller.reach, scim_id=resource_id, for_update=for_update)
    if row is None:
        raise NotFound(f"No such {kind.lower()}.")
    return row


def _check_if_match(call: Call, row: users.Row | groups.GroupRow) -> None:
    """If-Match (RFC 7644 §3.14, weak comparison as its examples use W/ tags)."""
    if call.if_match is None:
        return
    current = _etag(row)
    tags = [tag.strip().removeprefix("W/") for tag in call.if_match.split(",")]
    if "*" in tags or current.removeprefix("W/") in tags:
        return
    kind = "user" if isinstance(row, users.Row) else "group"
    raise PreconditionFailed(
        f"The {kind} has changed: its current version is {current} (If-Match failed)."
    )


def _outcome(call: Call, row: users.Row | groups.GroupRow, status: int) -> Outcome:
    _, document = _document(row, call.base)
    return Outcome(status, document, document["meta"]["location"], _etag(row))


def _write_user(call: Call, method: str, resource_id: str | None, body: Any) -> Outcome:
    common = {"session": call.session, "clock": call.runtime.clock, "actor": call.actor}
    if method == "POST":
        row = writes.create(
            passwords=call.runtime.passwords, reach=call.caller.reach, body=body, **common
        )
        return _outcome(call, row, 201)
    assert resource_id is not None
    row = _find(call.session, call.caller, "User", resource_id, for_update=True)
    _check_if_match(call, row)
    if method == "DELETE":
        writes.delete(row=row, **common)
        return Outcome(204, None, None, None)
    if method == "PUT":
        row = writes.replace(reach=call.caller.reach, row=row, body=body, **common)
        return _outcome(call, row, 200)
    document = users.to_document(row.view, base_url=call.base)
    patched = patching.apply_operations(document, body)
    patching.keep_agency_kind_on_move(document, patched, row.agency.kind if row.agency else None)
    desired = writes.parse(
        call.session, patched, reach=call.caller.reach, today=call.runtime.clock.now().date()
    )
    row = writes.apply(row=row, desired=desired, operation="patch", **common)
    row = users.with_groups(call.session, call.caller.reach, [row])[0]
    return _outcome(call, row, 200)


def _write_group(call: Call, method: str, resource_id: str | None, body: Any) -> Outcome:
    common = {"session": call.session, "clock": call.runtime.clock, "actor": call.actor}
    reach = call.caller.reach
    if method == "POST":
        return _outcome(call, group_writes.create(reach=reach, body=body, **common), 201)
    assert resource_id is not None
    row = _find(call.session, call.caller, "Group", resource_id, for_update=True)
    _check_if_match(call, row)
    if method == "DELETE":
        group_writes.delete(row=row, **common)
        return Outcome(204, None, None, None)
    if method == "PUT":
        row = group_writes.replace(reach=reach, row=row, body=body, **common)
        return _outcome(call, row, 200)
    patched = patching.apply_group_operations(groups.to_document(row, base_url=call.base), body)
    desired = group_writes.parse(call.session, patched, reach=reach, current=row)
    row = group_writes.apply(reach=reach, row=row, desired=desired, operation="patch", **common)
    return _outcome(call, row, 200)


def perform(call: Call, method: str, kind: str, resource_id: str | None, body: Any) -> Outcome:
    """One write on a User or a Group (§3.3, §3.5.1, §3.5.2, §3.6)."""
    if kind == "User":
        return _write_user(call, method, resource_id, body)
    return _write_group(call, method, resource_id, body)


def _call(scope: RequestScope) -> Call:
    return Call(
        runtime=scope.runtime,
        session=scope.session,
        caller=authenticate(scope),
        base=base_url(scope),
        if_match=scope.http.header("if-match"),
    )


def _writer(kind: str, method: str) -> Callable[[RequestScope], Response]:
    def handler(scope: RequestScope) -> Response:
        call = _call(scope)
        body = _json_body(scope) if method in ("POST", "PUT", "PATCH") else None
        outcome = perform(call, method, kind, scope.request.path_params.get("id"), body)
        if outcome.document is None:
            return Response(status_code=outcome.status, headers=PRIVATE)
        assert outcome.location is not None and outcome.etag is not None
        where = "Location" if outcome.status == 201 else "Content-Location"
        headers = {"ETag": outcome.etag, where: outcome.location}
        return scim_response(outcome.document, status=outcome.status, headers=headers)

    return handler


def _bulk(scope: RequestScope) -> Response:
    from idp.scim import bulk  # bulk runs the operations of this module

    call = _call(scope)
    raw: bytes = getattr(scope.request.state, "scim_body", b"")
    return scim_response(bulk.process(call, _json_body(scope), size=len(raw)))


def scim_routes() -> list[Route]:
    routes = [
        Route(
            f"{PREFIX}/ServiceProviderConfig", scim_view(_service_provider_config), methods=["GET"]
        ),
        Route(f"{PREFIX}/ResourceTypes", scim_view(_resource_types), methods=["GET"]),
        Route(f"{PREFIX}/ResourceTypes/{{id}}", scim_view(_resource_type), methods=["GET"]),
        Route(f"{PREFIX}/Schemas", scim_view(_schemas), methods=["GET"]),
        Route(f"{PREFIX}/Schemas/{{id}}", scim_view(_schema), methods=["GET"]),
        Route(f"{PREFIX}/.search", scim_view(_root_search), methods=["POST"]),
        Route(f"{PREFIX}/Bulk", scim_view(_bulk), methods=["POST"]),
        Route(f"{PREFIX}/Users", scim_view(_users), methods=["GET"]),
        Route(f"{PREFIX}/Users/.search", scim_view(_users_search), methods=["POST"]),
        Route(f"{PREFIX}/Groups", scim_view(_groups), methods=["GET"]),
        Route(f"{PREFIX}/Groups/.search", scim_view(_groups_search), methods=["POST"]),
        Route(f"{PREFIX}/Users/{{id}}", scim_view(_user), methods=["GET"]),
        Route(f"{PREFIX}/Groups/{{id}}", scim_view(_group), methods=["GET"]),
    ]
    for kind, plural in (("User", "Users"), ("Group", "Groups")):
        routes.append(
            Route(f"{PREFIX}/{plural}", scim_view(_writer(kind, "POST")), methods=["POST"])
        )
        for method in ("PUT", "PATCH", "DELETE"):
            routes.append(
                Route(
                    f"{PREFIX}/{plural}/{{id}}",
                    scim_view(_writer(kind, method)),
                    methods=[method],
                )
            )
    known = list(routes)

    async def unknown(request: Request) -> Response:
        """RFC 7644 §3.12: whatever is not a SCIM endpoint answers a SCIM Error, not the
        OAuth-style body of the rest of the server; a known path with another method is 405."""
        path = request.url.path
        if any(route.path_regex.match(path) for route in known):
            allowed = sorted(
                {m for route in known if route.path_regex.match(path) for m in route.methods or ()}
            )
            error = MethodNotAllowed(
                f"{request.method} is not supported here.", headers={"Allow": ", ".join(allowed)}
            )
            return error_response(error)
        return error_response(NotFound(f"No SCIM endpoint at {path}."))

    every_method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    routes.append(Route(PREFIX, unknown, methods=every_method))
    routes.append(Route(f"{PREFIX}/{{rest:path}}", unknown, methods=every_method))
    return routes
