"""Who the shared page header names (core.web.site_header), as the identity provider knows
them: the official of the SSO session, an admin when :func:`idp.admin_scope.scope_of` says they
administer anything."""

from __future__ import annotations

from core.web.site_header import Visitor, show_visitor
from idp.admin_scope import AdminScope, scope_of
from idp.models import Account
from idp.request_scope import RequestScope


def show_signed_in(scope: RequestScope, account: Account, reach: AdminScope | None = None) -> None:
    """Name ``account`` in the header of the page this request renders; ``reach`` when the
    caller has already asked :func:`scope_of`."""
    if reach is None:
        reach = scope_of(scope.session, account)
    visitor = Visitor(name=account.full_name or account.username, is_admin=reach.is_admin)
    show_visitor(scope.request, visitor)
