"""The officials an administrator may see, as the admin pages and ``commune-sso user list|show``
show them: the filtered query, an official's status, and what is known of one official.

The status is derived, not stored: an account the import or SCIM created has no password until
the official activates it with the one-time code (:func:`idp.accounts.activate`), so it is
"pending" until then; a soft-deleted one (SCIM DELETE, RFC 7644 §3.6) is "deleted" whatever
its account row says.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from idp import admin_scope, mfa, sessions
from idp.admin_scope import AdminScope
from idp.models import Account, AccountProfile, Agency, Unit
from idp.official_data import fold_for_search

STATUSES = ("active", "disabled", "pending", "deleted")


def _status_clause(status: str) -> ColumnElement[bool] | None:
    live = or_(AccountProfile.account_id.is_(None), AccountProfile.deleted_at.is_(None))
    if status == "active":
        return and_(live, Account.status == "active", Account.password_hash.is_not(None))
    if status == "disabled":
        return and_(live, Account.status == "disabled")
    if status == "pending":
        return and_(live, Account.status == "active", Account.password_hash.is_(None))
    if status == "deleted":
        return AccountProfile.deleted_at.is_not(None)
    return live


def officials_query(
    reach: AdminScope, *, text: str, unit_code: str, status: str
) -> Select[Account, AccountProfile, Unit]:
    """Officials within ``reach``, filtered; the scope is part of the query itself. No status:
    every official but the deleted ones."""
    statement = (
        select(Account, AccountProfile, Unit)
        .outerjoin(AccountProfile, AccountProfile.account_id == Account.id)
        .outerjoin(Unit, Unit.id == AccountProfile.unit_id)
    )
    if not reach.system:
        # On the outer-joined unit: an official with no unit is never in a delegated scope.
        statement = statement.where(reach.units_clause())
    clause = _status_clause(status)
    if clause is not None:
        statement = statement.where(clause)
    if unit_code:
        statement = statement.where(Unit.code == unit_code)
    text = text.strip()
    if text:
        folded = fold_for_search(text)
        matches: list[ColumnElement[bool]] = [
            AccountProfile.search_name.contains(folded, autoescape=True),
            Account.username.contains(text.lower(), autoescape=True),
            # Accounts without a profile (administrators made by the CLI) have no folded name.
            and_(
                AccountProfile.account_id.is_(None),
                func.lower(Account.full_name).contains(text.lower(), autoescape=True),
            ),
        ]
        if text.isdigit():
            matches.append(AccountProfile.citizen_id == text)
        statement = statement.where(or_(*matches))
    return statement


def status_of(account: Account, profile: AccountProfile | None) -> str:
    if profile is not None and profile.deleted_at is not None:
        return "deleted"
    if account.status == "disabled":
        return "disabled"
    return "active" if account.password_hash else "pending"


def status_column() -> ColumnElement[str]:
    """:func:`status_of` in SQL, for counts by status (deleted profiles are the caller's to
    leave out): an account nobody activated yet has no password and is not "active"."""
    return case(
        (Account.status == "disabled", "disabled"),
        (Account.password_hash.is_(None), "pending"),
        else_="active",
    )


def current_status(session: Session, account: Account) -> str:
    return status_of(account, session.get(AccountProfile, account.id))


def official_row(
    account: Account, profile: AccountProfile | None, unit: Unit | None
) -> dict[str, Any]:
    """One line of a listing."""
    return {
        "username": account.username,
        "full_name": account.full_name,
        "email": account.email,
        "unit_code": unit.code if unit is not None else None,
        "unit_name": unit.name if unit is not None else None,
        "status": status_of(account, profile),
        "system_admin": account.is_system_admin,
    }


def details_of(session: Session, account: Account) -> dict[str, Any]:
    """Everything about one official that an administrator reads: profile, unit, roles,
    status, two-step verification, last sign-in (the newest session's, None if none is left)."""
    profile = session.get(AccountProfile, account.id)
    unit = session.get(Unit, profile.unit_id) if profile and profile.unit_id else None
    agency = session.get(Agency, profile.agency_id) if profile and profile.agency_id else None
    return {
        **official_row(account, profile, unit),
        "subject": account.subject,
        "citizen_id": profile.citizen_id if profile else None,
        "position": profile.position if profile else None,
        "agency": agency.name if agency else None,
        "roles": [
            {"role": role, "unit": unit_code}
            for role, unit_code in admin_scope.roles_of(session, account)
        ],
        "mfa_enrolled": mfa.has_totp(session, account),
        "last_sign_in": sessions.last_sign_in(session, account),
        "created_at": account.created_at,
        "password_changed_at": account.password_changed_at,
    }
