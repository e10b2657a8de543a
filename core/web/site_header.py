"""The header every page shares: who is signed in, the areas of the service they may enter
(their account, their certificates, administration) and a way to sign out.

The areas are given by the composition root (``commune_sso``), which knows every package: the
identity provider does not know where the CA mounts its pages, and the CA does not know where
the account pages are. Each area's own code says who is signed in, with :func:`show_visitor`,
because each area finds that out its own way (the SSO session, the CA pages' cookie).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

_STATE_KEY = "site_visitor"


@dataclass(frozen=True)
class SiteArea:
    """One area of the service. ``label`` and ``summary`` are msgids (translated in the page's
    language); ``summary`` is the one line under the area's link on the home page."""

    href: str
    label: str
    summary: str
    admins_only: bool = False

    def is_current(self, path: str) -> bool:
        return path == self.href or path.startswith(self.href.rstrip("/") + "/")


@dataclass(frozen=True)
class Visitor:
    """The signed-in person as the header shows them."""

    name: str
    is_admin: bool  # an admin of some scope (a unit, a province, or the whole system)

    def areas(self, areas: tuple[SiteArea, ...]) -> list[SiteArea]:
        """The areas this person may enter, in the order given."""
        return [area for area in areas if self.is_admin or not area.admins_only]


def show_visitor(request: Request, visitor: Visitor | None) -> None:
    """Name who is signed in for the header of the page this request renders."""
    setattr(request.state, _STATE_KEY, visitor)


def visitor_of(request: Request) -> Visitor | None:
    visitor = getattr(request.state, _STATE_KEY, None)
    return visitor if isinstance(visitor, Visitor) else None
