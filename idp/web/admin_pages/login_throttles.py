"""Admin pages: the sign-in throttles that currently slow down or stop someone
(:mod:`idp.login_throttle`) — system administrators only, since a counter may name an account
that does not exist or an address outside any unit. Clearing one is audited."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from core import audit
from idp import login_throttle
from idp.request_scope import RequestScope
from idp.web.admin_pages.guard import Admin, form_of, query_of, render

PATH = "/admin/login-throttles"
CLEAR_ACTION = "login_throttle.cleared"


def list_throttles(scope: RequestScope, admin: Admin) -> Response:
    account_name = query_of(scope).get("account", "").strip()[: login_throttle.MAX_NAME_LENGTH]
    runtime = scope.runtime
    rows = login_throttle.current(
        session=scope.session,
        clock=runtime.clock,
        settings=runtime.settings,
        account_name=account_name,
    )
    now = runtime.clock.now()
    return render(
        scope,
        admin,
        "admin/login_throttles.html",
        {
            "throttles": rows,
            "account": account_name,
            "now": now,
            "cleared": query_of(scope).get("cleared") == "1",
        },
    )


def clear_throttle(scope: RequestScope, admin: Admin) -> Response:
    key = form_of(scope).get("key", "")[:200]
    row = login_throttle.clear(session=scope.session, key=key)
    if row is not None:
        audit.record(
            scope.session,
            clock=scope.runtime.clock,
            actor=admin.actor,
            action=CLEAR_ACTION,
            target=f"account:{row.account_name}" if row.account_name else "login_throttle",
            client_address=scope.http.client_address,
            details={
                "kind": row.kind,
                "client_address": row.client_address,
                "failures": row.failures,
                "locked_until": row.locked_until.isoformat() if row.locked_until else None,
            },
        )
    return RedirectResponse(f"{PATH}?cleared=1", status_code=303)
