"""Admin pages: the audit log viewer, and the chain's integrity — system administrators only.

The log (:mod:`core.audit`) records every admin and CA action of every unit and of the CA, so
it is shown to system administrators only; a province or unit admin sees an official's recent
history on that official's page instead.

Entries are listed newest first and paged by ``seq`` (keyset, not OFFSET: the log grows to
millions of rows). Verifying the hash chain reads the whole log, so it runs on demand (a POST
with a button) and its result is itself an audit entry (``audit.verify``): the page shows the
last run's result, who ran it and when, without re-reading the log on every view. The newest
signed checkpoint (:mod:`core.audit_checkpoints`) is one cheap query and is shown too.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select
from starlette.responses import RedirectResponse, Response

from core import audit, audit_checkpoints
from core.web.i18n import N_
from idp.request_scope import RequestScope
from idp.web.admin_pages.guard import DISPLAY_TIMEZONE, Admin, query_of, render

PAGE_SIZE = 50
VERIFY_ACTION = "audit.verify"
MAX_FILTER = 200
MAX_LISTED_PROBLEMS = 20
BAD_DATE = N_("Choose a valid date in the date picker.")
DATES_REVERSED = N_("The start date is after the end date.")


def _day(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw.strip()) if raw.strip() else None
    except ValueError:
        return None


def _pretty(entry: audit.AuditEntry) -> str:
    details = audit.entry_as_dict(entry)["details"]
    if not details:
        return ""
    if isinstance(details, str):
        return details
    return json.dumps(details, ensure_ascii=False, indent=2, sort_keys=True)


def last_verification(session: Any) -> tuple[audit.AuditEntry, dict[str, Any]] | None:
    entry = session.scalar(
        select(audit.AuditEntry)
        .where(audit.AuditEntry.action == VERIFY_ACTION)
        .order_by(audit.AuditEntry.seq.desc())
        .limit(1)
    )
    if entry is None:
        return None
    details = audit.entry_as_dict(entry)["details"]
    return entry, details if isinstance(details, dict) else {}


def show_log(scope: RequestScope, admin: Admin) -> Response:
    query = query_of(scope)
    filters = {
        name: query.get(name, "").strip()[:MAX_FILTER]
        for name in ("action", "actor", "target", "from", "to")
    }
    errors: dict[str, str] = {}
    start, end = _day(filters["from"]), _day(filters["to"])
    if filters["from"] and start is None:
        errors["from"] = BAD_DATE
    if filters["to"] and end is None:
        errors["to"] = BAD_DATE
    if start and end and start > end:
        errors["to"] = DATES_REVERSED
    statement = select(audit.AuditEntry).order_by(audit.AuditEntry.seq.desc()).limit(PAGE_SIZE)
    if filters["action"]:
        statement = statement.where(
            audit.AuditEntry.action.startswith(filters["action"], autoescape=True)
        )
    if filters["actor"]:
        statement = statement.where(
            audit.AuditEntry.actor.contains(filters["actor"], autoescape=True)
        )
    if filters["target"]:
        statement = statement.where(
            audit.AuditEntry.target.contains(filters["target"], autoescape=True)
        )
    # The dates are days in Vietnam, as every time on these pages is shown.
    if start and "from" not in errors:
        statement = statement.where(
            audit.AuditEntry.at >= datetime.combine(start, time(), DISPLAY_TIMEZONE)
        )
    if end and "to" not in errors:
        statement = statement.where(
            audit.AuditEntry.at
            < datetime.combine(end + timedelta(days=1), time(), DISPLAY_TIMEZONE)
        )
    before = query.get("before", "")
    if before.isdigit():
        statement = statement.where(audit.AuditEntry.seq < int(before))
    entries = [] if errors else list(scope.session.scalars(statement))
    kept = [(k, v) for k, v in filters.items() if v]
    older = None
    if len(entries) == PAGE_SIZE:
        older = "/admin/audit?" + urlencode([*kept, ("before", str(entries[-1].seq))])
    head = scope.session.scalar(select(func.max(audit.AuditEntry.seq)))
    checkpoint = audit_checkpoints.latest_checkpoint(scope.session)
    return render(
        scope,
        admin,
        "admin/audit.html",
        {
            "entries": [(entry, _pretty(entry)) for entry in entries],
            "filters": filters,
            "errors": errors,
            "older": older,
            "paged": before.isdigit(),
            "verification": last_verification(scope.session),
            "checkpoint": checkpoint,
            "head_seq": head,
        },
        status_code=400 if errors else 200,
    )


def run_verify(scope: RequestScope, admin: Admin) -> Response:
    """Check the whole chain now (:func:`core.audit.verify`) and record the result."""
    result = audit.verify(scope.session)
    audit.record(
        scope.session,
        clock=scope.runtime.clock,
        actor=admin.actor,
        action=VERIFY_ACTION,
        target="audit:chain",
        details={
            "ok": result.ok,
            "checked": result.checked,
            "problem_count": len(result.problems),
            "problems": [
                {"seq": p.seq, "kind": p.kind, "message": p.message}
                for p in result.problems[:MAX_LISTED_PROBLEMS]
            ],
        },
        client_address=scope.http.client_address,
    )
    return RedirectResponse("/admin/audit?verified=1", status_code=303)
