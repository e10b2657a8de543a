"""Admin pages: units — the communes, wards and provinces in the admin's scope, and one unit's
officials and history (renames, mergers, dissolutions: ``UnitEvent``)."""

from __future__ import annotations

from sqlalchemy import func, select
from starlette.responses import RedirectResponse, Response

from core.web.i18n import N_
from idp import authentication_levels, units
from idp.models import Account, AccountProfile, Unit
from idp.official_data import fold_for_search
from idp.official_directory import status_column
from idp.request_scope import RequestScope
from idp.web.admin_pages.guard import Admin, form_of, not_found, pager, query_of, render
from idp.web.admin_pages.officials import STATUS_LABELS

LEVELS = {"province": N_("Province"), "ward": N_("Commune / ward")}
MAX_QUERY_LENGTH = 100
# The officials of a unit by what they can do: sign in, not yet (no activation), not at all.
COUNTED_STATUSES = ("active", "pending", "disabled")


def list_units(scope: RequestScope, admin: Admin) -> Response:
    """Units ordered by code; the name search ignores case and diacritics. It runs in Python
    over at most 3,355 short names, as :func:`idp.units.list_units` does."""
    query = query_of(scope)
    text = query.get("q", "")[:MAX_QUERY_LENGTH].strip()
    level = query.get("level", "")
    statement = select(Unit).where(admin.reach.units_clause()).order_by(Unit.code)
    if level in LEVELS:
        statement = statement.where(Unit.level == level)
    else:
        level = ""
    found = list(scope.session.scalars(statement))
    if text:
        folded = fold_for_search(text)
        found = [u for u in found if folded in fold_for_search(u.name) or u.code == text]
    pages = pager(scope, len(found))
    shown = found[pages.offset : pages.offset + pages.size]
    counts = dict(
        scope.session.execute(
            select(AccountProfile.unit_id, func.count())
            .where(
                AccountProfile.unit_id.in_([u.id for u in shown]),
                AccountProfile.deleted_at.is_(None),
            )
            .group_by(AccountProfile.unit_id)
        ).all()
    )
    return render(
        scope,
        admin,
        "admin/units.html",
        {
            "units": shown,
            "counts": counts,
            "q": text,
            "level": level,
            "levels": LEVELS,
            "pager": pages,
        },
    )


NOTICES = {
    "passkeys-required": N_("The officials of this unit now sign in to the apps with a passkey."),
    "passkeys-not-required": N_("Passkeys are no longer required in this unit."),
}


def _unit_in_reach(scope: RequestScope, admin: Admin) -> Unit:
    unit = units.find_by_code(scope.session, str(scope.request.path_params["code"])[:8])
    # Out of scope answers like a unit that does not exist.
    if unit is None or not admin.reach.covers(unit):
        raise not_found()
    return unit


def change_passkey_requirement(scope: RequestScope, admin: Admin) -> Response:
    """Require passkeys (phishing-resistant sign-in) of every official of the unit, or stop."""
    unit = _unit_in_reach(scope, admin)
    required = form_of(scope).get("required") == "on"
    authentication_levels.set_unit_requirement(
        session=scope.session,
        clock=scope.runtime.clock,
        actor=admin.actor,
        unit=unit,
        required=required,
        client_address=scope.http.client_address,
    )
    done = "passkeys-required" if required else "passkeys-not-required"
    return RedirectResponse(f"/admin/units/{unit.code}?done={done}", status_code=303)


def show_unit(scope: RequestScope, admin: Admin) -> Response:
    unit = _unit_in_reach(scope, admin)
    shown_status = status_column()
    by_status = dict(
        scope.session.execute(
            select(shown_status, func.count())
            .join(AccountProfile, AccountProfile.account_id == Account.id)
            .where(AccountProfile.unit_id == unit.id, AccountProfile.deleted_at.is_(None))
            .group_by(shown_status)
        ).all()
    )
    merged_into = scope.session.get(Unit, unit.merged_into_id) if unit.merged_into_id else None
    merged_from = list(
        scope.session.scalars(
            select(Unit).where(Unit.merged_into_id == unit.id).order_by(Unit.code)
        )
    )
    return render(
        scope,
        admin,
        "admin/unit.html",
        {
            "unit": unit,
            "levels": LEVELS,
            "officials": units.attached_account_count(scope.session, unit),
            "by_status": by_status,
            "counted_statuses": COUNTED_STATUSES,
            "status_labels": STATUS_LABELS,
            "events": units.events_of(scope.session, unit),
            "merged_into": merged_into if merged_into and admin.reach.covers(merged_into) else None,
            "merged_from": [u for u in merged_from if admin.reach.covers(u)],
            "notice": NOTICES.get(query_of(scope).get("done", "")),
        },
    )
