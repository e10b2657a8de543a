"""Admin pages: the back-channel logout delivery log (OpenID Back-Channel Logout 1.0 §2.5) —
system administrators only, like the apps the deliveries go to.

Every delivery with its status and, folded under it, each attempt's time, HTTP status or error,
read through :func:`idp.logout.backchannel.list_deliveries`, newest first.
"""

from __future__ import annotations

from starlette.responses import Response

from idp import accounts, clients, labels
from idp.logout import backchannel
from idp.request_scope import RequestScope
from idp.web.admin_pages.guard import Admin, query_of, render

STATUS_LABELS = labels.LOGOUT_DELIVERY_STATUSES
LIMITS = (100, 500, 1000)


def list_deliveries(scope: RequestScope, admin: Admin) -> Response:
    query = query_of(scope)
    status = query.get("status", "")
    if status not in backchannel.STATUSES:
        status = ""
    client_id = query.get("client", "").strip()[:64]
    raw_limit = query.get("limit", "")
    limit = int(raw_limit) if raw_limit.isdigit() and int(raw_limit) in LIMITS else LIMITS[0]
    views = backchannel.list_deliveries(
        scope.session, client_id=client_id or None, status=status or None, limit=limit
    )
    return render(
        scope,
        admin,
        "admin/deliveries.html",
        {
            "deliveries": views,
            "officials": accounts.names_by_subject(scope.session, {v.subject for v in views}),
            "status": status,
            "client": client_id,
            "clients": clients.list_active(scope.session),
            "status_labels": STATUS_LABELS,
            "limit": limit,
            "more": limit < LIMITS[-1] and len(views) == limit,
            "next_limit": next((n for n in LIMITS if n > limit), limit),
        },
    )
