"""Admin pages: the services that sign in through CAS 3.0 — system administrators only.

A service is addressed by its service id (``/admin/cas-services/<service_id>``); removing it
is confirmed first, at the same address with ``?action=remove``, whose form posts there.

Registering and removing go through :mod:`idp.cas.services`, the functions
``commune-sso cas add-service`` and ``remove-service`` call: the same rules (a problem is shown
next to its field in the page's language and nothing is saved) and the same audit entries, in
the same transaction. Proxy tickets are not offered: the CAS server does not issue them.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response

from core.errors import Conflict, DomainError
from core.web.i18n import N_
from idp import authentication_levels, labels
from idp.cas import service_urls, services
from idp.clients import FieldProblem
from idp.models import CasService
from idp.request_scope import RequestScope
from idp.web.admin_pages.guard import Admin, form_list, form_of, not_found, query_of, render

LIST_PATH = "/admin/cas-services"
NEW_PATH = f"{LIST_PATH}/new"
REMOVE = "remove"
# What each attribute group releases, as the form names it (shared with the SAML page).
ATTRIBUTE_LABELS = labels.ATTRIBUTE_GROUPS
MATCH_LABELS = {
    services.EXACT: N_("Exact URL"),
    services.REGEX: N_("Pattern (regular expression)"),
}
# The service's rules name these fields; the form has one address field for both.
FORM_FIELDS = {"url": "address", "pattern": "address"}
REGISTERED = N_("The service is registered.")


def service_path(service_id: str) -> str:
    return f"{LIST_PATH}/{service_id}"


def _page_context() -> dict[str, Any]:
    return {
        "service_path": service_path,
        "attribute_labels": ATTRIBUTE_LABELS,
        "match_labels": MATCH_LABELS,
        "acr_levels": authentication_levels.LEVEL_LABELS,
    }


def _service(scope: RequestScope) -> CasService:
    try:
        return services.REGISTRY.get_active(
            scope.session, str(scope.request.path_params["service_id"])
        )
    except DomainError:
        raise not_found() from None


def list_services(scope: RequestScope, admin: Admin) -> Response:
    return render(
        scope,
        admin,
        "admin/cas_services.html",
        {"services": services.REGISTRY.list_active(scope.session), **_page_context()},
    )


def _render_form(
    scope: RequestScope,
    admin: Admin,
    values: dict[str, Any],
    errors: dict[str, FieldProblem],
    *,
    status_code: int = 200,
) -> Response:
    return render(
        scope,
        admin,
        "admin/cas_service_form.html",
        {"values": values, "errors": errors, **_page_context()},
        status_code=status_code,
    )


def new_service(scope: RequestScope, admin: Admin) -> Response:
    values = {"match": services.EXACT, "attributes": ["name", "email"], "single_logout": "on"}
    return _render_form(scope, admin, values, {})


def _form_values(scope: RequestScope) -> dict[str, Any]:
    values: dict[str, Any] = dict(form_of(scope))
    values["attributes"] = form_list(scope, "attributes")
    values["match"] = values.get("match") if values.get("match") in MATCH_LABELS else ""
    return values


def create_service(scope: RequestScope, admin: Admin) -> Response:
    values = _form_values(scope)
    address = values.get("address", "").strip()
    exact = values["match"] == services.EXACT
    # Without a choice (a hand-made request) the address is given as neither: the rule's own
    # message ("either an exact URL or a pattern") is shown.
    service_id = values.get("service_id", "").strip()
    try:
        service = services.register(
            session=scope.session,
            clock=scope.runtime.clock,
            actor=admin.actor,
            service_id=service_id,
            name=values.get("name", ""),
            url=address if exact else None,
            pattern=address if values["match"] == services.REGEX else None,
            attributes=values["attributes"],
            single_logout=values.get("single_logout") == "on",
            minimum_acr=values.get("minimum_acr"),
            client_address=scope.http.client_address,
        )
    except Conflict as conflict:
        # The same form sent twice (a double click): the service it registered, once.
        if _submitted_again(scope, service_id, values, address):
            return RedirectResponse(service_path(service_id), status_code=303)
        return _render_form(scope, admin, values, _problems(conflict), status_code=400)
    except DomainError as error:
        return _render_form(scope, admin, values, _problems(error), status_code=400)
    return RedirectResponse(f"{service_path(service.service_id)}?done=registered", status_code=303)


def _submitted_again(
    scope: RequestScope, service_id: str, values: dict[str, Any], address: str
) -> bool:
    """Whether the service registered under ``service_id`` is exactly what the form asks."""
    try:
        service = services.REGISTRY.get_active(scope.session, service_id)
        stored = (
            service_urls.registrable_url(address) if values["match"] == services.EXACT else address
        )
    except DomainError:
        return False
    return (
        service.name == values.get("name", "").strip()
        and (service.match_kind, service.url_pattern) == (values["match"], stored)
        and list(service.attributes) == list(dict.fromkeys(values["attributes"]))
        and service.single_logout == (values.get("single_logout") == "on")
    )


def _problems(error: DomainError) -> dict[str, FieldProblem]:
    field = FORM_FIELDS.get(error.field or "", error.field or "service_id")
    return {field: FieldProblem(field, error.message, error.params)}


def show_service(scope: RequestScope, admin: Admin) -> Response:
    """The service's page, or with ``?action=remove`` the confirmation of its removal."""
    service = _service(scope)
    action = query_of(scope).get("action")
    if action is not None and action != REMOVE:
        raise not_found()
    template = "admin/cas_service_confirm.html" if action else "admin/cas_service.html"
    notice = REGISTERED if query_of(scope).get("done") == "registered" else None
    return render(scope, admin, template, {"service": service, "notice": notice, **_page_context()})


def remove_service(scope: RequestScope, admin: Admin) -> Response:
    """The confirmed removal: its tickets stop validating, its history stays."""
    service = _service(scope)
    if query_of(scope).get("action") != REMOVE:
        raise not_found()
    services.REGISTRY.remove(
        session=scope.session,
        clock=scope.runtime.clock,
        actor=admin.actor,
        entry=service,
        client_address=scope.http.client_address,
    )
    return RedirectResponse(f"{LIST_PATH}?removed=1", status_code=303)
