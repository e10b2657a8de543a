"""The IdP's admin pages under ``/admin`` (issue 5, "Admin pages"): one module per area.

Every route is wrapped by :mod:`idp.web.admin_pages.guard`, which checks the IdP browser session
and the delegated scope (:func:`idp.admin_scope.scope_of`) on every request; GETs only read,
every change is a POST with a CSRF token, audited in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import func, select
from starlette.responses import Response
from starlette.routing import Route

from idp.admin_api.imports import ImportsApi
from idp.models import Client, LogoutDelivery, Unit
from idp.request_scope import RequestScope
from idp.setup_checklist import setup_checklist
from idp.web.admin_pages import (
    audit,
    cas_services,
    clients,
    deliveries,
    imports,
    login_throttles,
    officials,
    saml_sps,
    units,
    upstreams,
)
from idp.web.admin_pages.guard import Admin, admin_action, admin_page, render


def home(scope: RequestScope, admin: Admin) -> Response:
    session = scope.session
    count_officials = officials.officials_query(admin, text="", unit_code="", status="")
    context: dict[str, object] = {
        "officials": session.scalar(select(func.count()).select_from(count_officials.subquery())),
        "units": session.scalar(
            select(func.count()).select_from(Unit).where(admin.reach.units_clause())
        ),
        "scope_units": []
        if admin.is_system
        else list(
            session.scalars(
                select(Unit)
                .where(admin.reach.units_clause(), Unit.level == "province")
                .order_by(Unit.code)
            )
        )
        + list(
            session.scalars(
                select(Unit).where(Unit.id.in_(sorted(admin.reach.unit_ids))).order_by(Unit.code)
            )
        ),
    }
    if admin.is_system:
        # Registering apps, the CA and the mail server are a system admin's: so is the list.
        context["checklist"] = setup_checklist(
            session, settings=scope.runtime.settings, outside=scope.runtime.setup_state
        )
        context["clients"] = session.scalar(
            select(func.count()).select_from(Client).where(Client.removed_at.is_(None))
        )
        context["failed_deliveries"] = session.scalar(
            select(func.count())
            .select_from(LogoutDelivery)
            .where(LogoutDelivery.status == "failed")
        )
    return render(scope, admin, "admin/home.html", context)


def admin_page_routes(import_api: ImportsApi) -> list[Route]:
    """The routes of one app; the import pages run jobs on the admin API's runner."""
    import_pages = imports.ImportPages(import_api)
    system = {"system_only": True}
    return [
        Route("/admin", admin_page(home), methods=["GET"]),
        Route("/admin/officials", admin_page(officials.list_officials), methods=["GET"]),
        Route("/admin/officials/{username}", admin_page(officials.show_official), methods=["GET"]),
        Route(
            "/admin/officials/{username}/{action}",
            admin_page(officials.confirm_action),
            methods=["GET"],
        ),
        Route(
            "/admin/officials/{username}/{action}",
            admin_action(officials.perform_action),
            methods=["POST"],
        ),
        Route(
            "/admin/officials/{username}/passkeys/{passkey_id}/remove",
            admin_page(officials.confirm_remove_passkey),
            methods=["GET"],
        ),
        Route(
            "/admin/officials/{username}/passkeys/{passkey_id}/remove",
            admin_action(officials.remove_passkey),
            methods=["POST"],
        ),
        Route("/admin/units", admin_page(units.list_units), methods=["GET"]),
        Route("/admin/units/{code}", admin_page(units.show_unit), methods=["GET"]),
        Route(
            "/admin/units/{code}/passkeys",
            admin_action(units.change_passkey_requirement),
            methods=["POST"],
        ),
        Route("/admin/clients", admin_page(clients.list_clients, **system), methods=["GET"]),
        Route("/admin/clients/new", admin_page(clients.new_client, **system), methods=["GET"]),
        Route(
            "/admin/clients/new", admin_action(clients.create_client, **system), methods=["POST"]
        ),
        # Last of the /admin/clients routes: the whole rest of the path is the client_id.
        Route(
            "/admin/clients/{client_id:path}",
            admin_page(clients.show_client, **system),
            methods=["GET"],
        ),
        Route(
            "/admin/clients/{client_id:path}",
            admin_action(clients.change_client, **system),
            methods=["POST"],
        ),
        Route(saml_sps.PATH, admin_page(saml_sps.list_sps, **system), methods=["GET"]),
        Route(
            saml_sps.PATH,
            admin_action(
                saml_sps.register_sp, max_field_length=saml_sps.MAX_METADATA_FIELD, **system
            ),
            methods=["POST"],
        ),
        Route(
            f"{saml_sps.PATH}/remove", admin_action(saml_sps.remove_sp, **system), methods=["POST"]
        ),
        Route(
            cas_services.LIST_PATH,
            admin_page(cas_services.list_services, **system),
            methods=["GET"],
        ),
        Route(
            cas_services.NEW_PATH, admin_page(cas_services.new_service, **system), methods=["GET"]
        ),
        Route(
            cas_services.NEW_PATH,
            admin_action(cas_services.create_service, **system),
            methods=["POST"],
        ),
        Route(
            f"{cas_services.LIST_PATH}/{{service_id}}",
            admin_page(cas_services.show_service, **system),
            methods=["GET"],
        ),
        Route(
            f"{cas_services.LIST_PATH}/{{service_id}}",
            admin_action(cas_services.remove_service, **system),
            methods=["POST"],
        ),
        Route(upstreams.LIST_PATH, admin_page(upstreams.list_providers, **system), methods=["GET"]),
        Route(upstreams.NEW_PATH, admin_page(upstreams.new_provider, **system), methods=["GET"]),
        Route(upstreams.NEW_PATH, admin_action(upstreams.add_provider, **system), methods=["POST"]),
        Route(
            f"{upstreams.LIST_PATH}/{{upstream_id}}",
            admin_page(upstreams.show_provider, **system),
            methods=["GET"],
        ),
        Route(
            f"{upstreams.LIST_PATH}/{{upstream_id}}",
            admin_action(upstreams.change_provider, **system),
            methods=["POST"],
        ),
        Route("/admin/audit", admin_page(audit.show_log, **system), methods=["GET"]),
        Route("/admin/audit/verify", admin_action(audit.run_verify, **system), methods=["POST"]),
        Route(
            "/admin/logout-deliveries",
            admin_page(deliveries.list_deliveries, **system),
            methods=["GET"],
        ),
        Route(
            login_throttles.PATH,
            admin_page(login_throttles.list_throttles, **system),
            methods=["GET"],
        ),
        Route(
            f"{login_throttles.PATH}/clear",
            admin_action(login_throttles.clear_throttle, **system),
            methods=["POST"],
        ),
        *import_pages.routes(),
    ]
