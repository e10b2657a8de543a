"""Admin pages: SAML 2.0 service providers — system administrators only, like the apps.

The list of registered SPs, registration from the metadata document the app publishes (pasted
into the form; the CLI also fetches it from a URL) and removal, each audited through
:mod:`idp.saml.service_providers` in the request's transaction.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response

from core.errors import DomainError
from idp import authentication_levels, labels
from idp.released_attributes import RELEASABLE
from idp.request_scope import RequestScope
from idp.saml import service_providers
from idp.saml.xml_parsing import MAX_DOCUMENT_BYTES
from idp.web.admin_pages.guard import Admin, form_list, form_of, render

PATH = "/admin/saml"
# Base64 is not involved: the metadata is pasted as text, at most the parser's limit.
MAX_METADATA_FIELD = MAX_DOCUMENT_BYTES


def _render(
    scope: RequestScope,
    admin: Admin,
    *,
    values: dict[str, Any] | None = None,
    error: DomainError | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        scope,
        admin,
        "admin/saml_sps.html",
        {
            "sps": [
                service_providers.as_dict(sp)
                for sp in service_providers.REGISTRY.list_active(scope.session)
            ],
            "groups": {group: labels.ATTRIBUTE_GROUPS[group] for group in RELEASABLE},
            "acr_levels": authentication_levels.LEVEL_LABELS,
            "values": values or {"attributes": []},
            "error": error,
        },
        status_code=status_code,
    )


def list_sps(scope: RequestScope, admin: Admin) -> Response:
    return _render(scope, admin)


def register_sp(scope: RequestScope, admin: Admin) -> Response:
    form = form_of(scope)
    values: dict[str, Any] = {
        "metadata": form.get("metadata", ""),
        "name": form.get("name", "").strip(),
        "attributes": form_list(scope, "attributes"),
        "encrypt_assertions": form.get("encrypt_assertions") == "on",
        "minimum_acr": form.get("minimum_acr", ""),
    }
    try:
        service_providers.register(
            session=scope.session,
            clock=scope.runtime.clock,
            actor=admin.actor,
            metadata_xml=values["metadata"].encode("utf-8"),
            name=values["name"] or None,
            attributes=values["attributes"],
            encrypt_assertions=values["encrypt_assertions"],
            minimum_acr=values["minimum_acr"],
        )
    except DomainError as error:
        return _render(scope, admin, values=values, error=error, status_code=400)
    return RedirectResponse(f"{PATH}?registered=1", status_code=303)


def remove_sp(scope: RequestScope, admin: Admin) -> Response:
    service_providers.REGISTRY.remove(
        session=scope.session,
        clock=scope.runtime.clock,
        actor=admin.actor,
        entry=service_providers.REGISTRY.get_active(
            scope.session, form_of(scope).get("entity_id", "")
        ),
    )
    return RedirectResponse(f"{PATH}?removed=1", status_code=303)
