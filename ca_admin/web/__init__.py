"""HTTP surface of the CA: public status publication, the admin/shared-app REST API, and the
CA pages (officials' certificates and renewal, admin pages)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def ca_routes() -> list[BaseRoute]:
    # Imported here: ca_admin.runtime refers to ca_admin.web.bearer, and these modules import
    # ca_admin.runtime.
    from ca_admin.web.api import api_routes
    from ca_admin.web.pages import page_routes
    from ca_admin.web.status_routes import status_routes
    from ca_admin.web.tsa_route import tsa_routes

    return [*status_routes(), *tsa_routes(), *api_routes(), *page_routes()]
