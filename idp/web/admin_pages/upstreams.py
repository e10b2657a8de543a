"""Admin pages: the upstream OpenID providers officials may sign in through (identity
brokering, issue 17) — system administrators only, like the apps.

A provider is addressed by its upstream id (``/admin/upstreams/<upstream_id>``): its page shows
what was discovered and holds the form that changes the linking claim, the scopes and the
button's label; removing it is confirmed first, at the same address with ``?action=remove``.

Adding, changing and removing go through :mod:`idp.federation.providers`, the functions the
``commune-sso upstream`` commands call: the same rules (a problem is shown next to its field
in the page's language and nothing is saved) and the same audit entries, in the request's
transaction. The issuer's discovery document is fetched while no transaction is open.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response

from core.errors import Conflict, DomainError
from core.web.i18n import N_
from idp.clients import FieldProblem
from idp.federation import discovery, providers
from idp.federation.linking import LINK_CLAIMS
from idp.federation.upstream_logout import RETURN_PATH
from idp.models import UpstreamProvider
from idp.request_scope import RequestScope
from idp.web.admin_pages.guard import Admin, form_of, not_found, query_of, render

LIST_PATH = "/admin/upstreams"
NEW_PATH = f"{LIST_PATH}/new"
REMOVE = "remove"
AUTH_LABELS = {
    providers.CLIENT_SECRET_BASIC: N_("Client secret (client_secret_basic)"),
    providers.PRIVATE_KEY_JWT: N_("A JWT signed by our keys (private_key_jwt)"),
}
LINK_CLAIM_LABELS = {
    "citizen_id": N_("Citizen ID number (CCCD)"),
    "preferred_username": N_("Username (preferred_username)"),
}
# The providers' rules name these fields; the forms name them so.
FORM_FIELDS = {
    "name": "name_vi",
    "id": "upstream_id",
    "token_endpoint_auth_method": "auth_method",
}
NOTICES = {
    "added": N_("The provider is added. Register the two addresses below at the provider."),
    "changed": N_("The changes are saved."),
    "unchanged": N_("Nothing was changed."),
}
MISSING_ISSUER = N_("Enter the provider's issuer, e.g. https://sso.example.gov.vn.")
MISSING_SECRET = N_("Enter our client secret at the provider, or choose private_key_jwt.")


def provider_path(upstream_id: str) -> str:
    return f"{LIST_PATH}/{upstream_id}"


def _page_context(scope: RequestScope) -> dict[str, Any]:
    issuer = scope.runtime.settings.issuer
    return {
        "provider_path": provider_path,
        "auth_labels": AUTH_LABELS,
        "link_claim_labels": LINK_CLAIM_LABELS,
        "callback_uri": lambda upstream_id: f"{issuer}/login/upstream/{upstream_id}/callback",
        "logout_return_uri": f"{issuer}{RETURN_PATH}",
    }


def _provider(scope: RequestScope) -> UpstreamProvider:
    try:
        return providers.REGISTRY.get_active(
            scope.session, str(scope.request.path_params["upstream_id"])
        )
    except DomainError:
        raise not_found() from None


def _problems(error: DomainError, default: str) -> dict[str, FieldProblem]:
    field = FORM_FIELDS.get(error.field or "", error.field or default)
    return {field: FieldProblem(field, error.message, error.params)}


def list_providers(scope: RequestScope, admin: Admin) -> Response:
    return render(
        scope,
        admin,
        "admin/upstreams.html",
        {"providers": providers.REGISTRY.list_active(scope.session), **_page_context(scope)},
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
        "admin/upstream_form.html",
        {"values": values, "errors": errors, **_page_context(scope)},
        status_code=status_code,
    )


def new_provider(scope: RequestScope, admin: Admin) -> Response:
    values = {
        "auth_method": providers.CLIENT_SECRET_BASIC,
        "link_claim": LINK_CLAIMS[0],
        "scope": providers.DEFAULT_SCOPE,
    }
    return _render_form(scope, admin, values, {})


def _form_values(scope: RequestScope) -> dict[str, Any]:
    values: dict[str, Any] = {k: v.strip() for k, v in form_of(scope).items()}
    if values.get("auth_method") not in AUTH_LABELS:
        values["auth_method"] = providers.CLIENT_SECRET_BASIC
    return values


def add_provider(scope: RequestScope, admin: Admin) -> Response:
    """Fetch and check the issuer's discovery document, then register (both the CLI's rules)."""
    values = _form_values(scope)
    # Never echoed back into the page.
    secret = values.pop("client_secret", "") or None
    issuer = values.get("issuer", "")
    if not issuer:
        return _render_form(
            scope,
            admin,
            values,
            {"issuer": FieldProblem("issuer", MISSING_ISSUER, {})},
            status_code=400,
        )
    private_key_jwt = values["auth_method"] == providers.PRIVATE_KEY_JWT
    if not private_key_jwt and secret is None:
        return _render_form(
            scope,
            admin,
            values,
            {"client_secret": FieldProblem("client_secret", MISSING_SECRET, {})},
            status_code=400,
        )
    upstream_id = values.get("upstream_id") or providers.default_upstream_id(issuer)
    # The administrator is checked and nothing is written yet: end the reading transaction,
    # so the fetch (up to its timeout) keeps no pooled connection idle in a transaction.
    scope.session.commit()
    try:
        metadata = discovery.discover(issuer, cache=scope.runtime.upstream_documents)
        provider = providers.register(
            session=scope.session,
            clock=scope.runtime.clock,
            actor=admin.actor,
            upstream_id=upstream_id,
            metadata=metadata,
            client_id=values.get("client_id", ""),
            client_secret=None if private_key_jwt else secret,
            server_secret=scope.runtime.server_secret,
            link_claim=values.get("link_claim", ""),
            name_vi=values.get("name_vi", ""),
            name_en=values.get("name_en") or None,
            scope=values.get("scope") or providers.DEFAULT_SCOPE,
            client_address=scope.http.client_address,
        )
    except Conflict as conflict:
        return _render_form(
            scope, admin, values, _problems(conflict, "upstream_id"), status_code=400
        )
    except DomainError as error:
        return _render_form(scope, admin, values, _problems(error, "issuer"), status_code=400)
    return RedirectResponse(f"{provider_path(provider.upstream_id)}?done=added", status_code=303)


def _render_provider(
    scope: RequestScope,
    admin: Admin,
    provider: UpstreamProvider,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, FieldProblem] | None = None,
    status_code: int = 200,
) -> Response:
    notice = NOTICES.get(query_of(scope).get("done", ""))
    if values is None:
        values = {
            "link_claim": provider.link_claim,
            "scope": provider.scope,
            "name_vi": provider.name_vi,
            "name_en": provider.name_en or "",
        }
    return render(
        scope,
        admin,
        "admin/upstream.html",
        {
            "provider": provider,
            "notice": notice,
            "values": values,
            "errors": errors or {},
            **_page_context(scope),
        },
        status_code=status_code,
    )


def show_provider(scope: RequestScope, admin: Admin) -> Response:
    """The provider's page (with the form that changes it), or with ``?action=remove`` the
    confirmation of its removal."""
    provider = _provider(scope)
    action = query_of(scope).get("action")
    if action is None:
        return _render_provider(scope, admin, provider)
    if action != REMOVE:
        raise not_found()
    return render(
        scope, admin, "admin/upstream_confirm.html", {"provider": provider, **_page_context(scope)}
    )


def change_provider(scope: RequestScope, admin: Admin) -> Response:
    """A POST to the provider's page: the changed form, or with ``?action=remove`` the
    confirmed removal."""
    provider = _provider(scope)
    action = query_of(scope).get("action")
    if action == REMOVE:
        providers.REGISTRY.remove(
            session=scope.session,
            clock=scope.runtime.clock,
            actor=admin.actor,
            entry=provider,
            client_address=scope.http.client_address,
        )
        return RedirectResponse(f"{LIST_PATH}?removed=1", status_code=303)
    if action is not None:
        raise not_found()
    values = _form_values(scope)
    try:
        changed = providers.change(
            session=scope.session,
            clock=scope.runtime.clock,
            actor=admin.actor,
            provider=provider,
            link_claim=values.get("link_claim", ""),
            scope=values.get("scope", ""),
            name_vi=values.get("name_vi", ""),
            name_en=values.get("name_en") or None,
            client_address=scope.http.client_address,
        )
    except DomainError as error:
        # The transaction rolls back when the handler raises only: nothing was set yet,
        # the checks run before the first change.
        return _render_provider(
            scope,
            admin,
            provider,
            values=values,
            errors=_problems(error, "name_vi"),
            status_code=400,
        )
    done = "changed" if changed else "unchanged"
    return RedirectResponse(f"{provider_path(provider.upstream_id)}?done={done}", status_code=303)
