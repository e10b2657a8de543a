"""The areas of the service that the shared page header and the home page link to
(core.web.site_header). Here because only the composition root knows where each package
mounts its pages."""

from __future__ import annotations

from ca_admin.web.pages.page_scope import PREFIX as CA_PAGES_PREFIX
from core.web.i18n import N_
from core.web.site_header import SiteArea

SITE_AREAS: tuple[SiteArea, ...] = (
    SiteArea(
        href="/account",
        label=N_("My account"),
        summary=N_("Your profile, password, two-step sign-in and signed-in devices."),
    ),
    SiteArea(
        href=f"{CA_PAGES_PREFIX}/",
        label=N_("My certificates"),
        summary=N_("Request, renew and download your signing certificates."),
    ),
    SiteArea(
        href="/admin",
        label=N_("Administration"),
        summary=N_("Officials, units, imports and apps of what you administer."),
        admins_only=True,
    ),
)
