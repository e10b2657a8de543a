"""Admin pages: officials — search, filter, detail and the actions on one official.

Search ignores diacritics and case (``AccountProfile.search_name`` holds the folded name,
:func:`idp.official_data.fold_for_search`); the list only ever holds officials of units in the
admin's scope (:meth:`AdminScope.units_clause` in the query itself), and the detail page and
every action check the official's unit again (:meth:`AdminScope.covers`).

Actions are POST forms with a CSRF token, preceded by a confirmation page, each audited in the
transaction that makes the change: disable / enable (:mod:`idp.accounts`), a new activation code
(shown once to the admin, since nobody else can hand it over yet), reset MFA
(:func:`idp.mfa.disable`: the TOTP credential and recovery codes, and every passkey) and sign
out everywhere (:func:`idp.logout.sign_out.sign_out_everywhere`). The official's passkeys are
listed on the detail page, each with its own confirmed "remove" (:func:`idp.passkeys.remove`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from core.web.i18n import N_
from idp import account_history, accounts, labels, mfa, official_directory, passkeys
from idp.logout.sign_out import sign_out_everywhere
from idp.models import (
    Account,
    AccountProfile,
    ActivationCode,
    Agency,
    BrowserSession,
    Passkey,
    Unit,
)
from idp.official_directory import STATUSES, status_of
from idp.request_scope import RequestScope
from idp.web.admin_pages.guard import Admin, not_found, pager, query_of, render

STATUS_LABELS = labels.ACCOUNT_STATUSES
ACTIONS = ("disable", "enable", "activation", "reset-mfa", "sign-out")
ACTION_TITLES = {
    "disable": N_("Disable the account"),
    "enable": N_("Enable the account"),
    "activation": N_("Issue a new activation code"),
    "reset-mfa": N_("Reset two-step verification"),
    "sign-out": N_("Sign out everywhere"),
}
ACTION_EXPLANATIONS = {
    "disable": N_(
        "The official can no longer sign in; every session ends and every app is told to sign "
        "them out."
    ),
    "enable": N_("The official can sign in again. Sessions ended earlier stay ended."),
    "activation": N_(
        "A new one-time activation code replaces any earlier unused one. It is shown to you "
        "once: hand it to the official."
    ),
    "reset-mfa": N_(
        "The official's authenticator app, recovery codes and passkeys stop working; they sign "
        "in with the password alone and can enrol again."
    ),
    "sign-out": N_(
        "Every session of the official ends and every app they use is told to sign them out."
    ),
}
ACTION_DONE = {
    "disable": N_("The account is disabled."),
    "enable": N_("The account is enabled."),
    "reset-mfa": N_("Two-step verification is reset."),
    "sign-out": N_("The official is signed out everywhere (%(count)s sessions ended)."),
    "passkey-removed": N_("The passkey is removed."),
}
NOT_ACTIVATED_ONLY = N_(
    "This official has already activated the account: an activation code is only for accounts "
    "that have never had a password."
)
ACCOUNT_DISABLED_FIRST = N_("The account is disabled: enable it first.")
DELETED_ACCOUNT = N_("This account is deleted; nothing can be done with it here.")
NOT_YOURSELF = N_("You cannot disable your own account.")
SYSTEM_ADMIN_ACCOUNT = N_(
    "Only a system administrator can act on a system administrator's account."
)
MFA_NOT_ENROLLED = N_("This official has not set up two-step verification.")
REMOVE_PASSKEY_TITLE = N_("Remove a passkey")
REMOVE_PASSKEY_EXPLANATION = N_(
    "The official can no longer sign in with the passkey “%(name)s”. Their other passkeys, "
    "password and authenticator app keep working."
)
MAX_QUERY_LENGTH = 100


# --------------------------------------------------------------------------------------------
# The list


def officials_query(
    admin: Admin, *, text: str, unit_code: str, status: str
) -> Select[Account, AccountProfile, Unit]:
    """Officials the admin may see, filtered; the scope is part of the query itself."""
    return official_directory.officials_query(
        admin.reach, text=text, unit_code=unit_code, status=status
    )


def units_in_scope(session: Session, admin: Admin, *, limit: int = 300) -> list[Unit]:
    """The units for the filter's suggestions (none for a system admin: 3,355 is too many)."""
    if admin.reach.system:
        return []
    return list(
        session.scalars(
            select(Unit).where(admin.reach.units_clause()).order_by(Unit.code).limit(limit)
        )
    )


def list_officials(scope: RequestScope, admin: Admin) -> Response:
    query = query_of(scope)
    text = query.get("q", "")[:MAX_QUERY_LENGTH]
    unit_code = query.get("unit", "").strip()[:8]
    status = query.get("status", "")
    if status not in STATUSES:
        status = ""
    statement = officials_query(admin, text=text, unit_code=unit_code, status=status)
    total = scope.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    pages = pager(scope, total)
    rows = scope.session.execute(
        statement.order_by(Account.username).offset(pages.offset).limit(pages.size)
    ).all()
    return render(
        scope,
        admin,
        "admin/officials.html",
        {
            "rows": [
                {
                    "account": account,
                    "profile": profile,
                    "unit": unit,
                    "status": status_of(account, profile),
                }
                for account, profile, unit in rows
            ],
            "q": text,
            "unit": unit_code,
            "status": status,
            "statuses": STATUSES,
            "status_labels": STATUS_LABELS,
            "units": units_in_scope(scope.session, admin),
            "pager": pages,
        },
    )


# --------------------------------------------------------------------------------------------
# One official


@dataclass(frozen=True)
class Official:
    account: Account
    profile: AccountProfile | None
    unit: Unit | None

    @property
    def status(self) -> str:
        return status_of(self.account, self.profile)


def find_official(scope: RequestScope, admin: Admin, username: str) -> Official:
    """The official, if the admin covers their unit; otherwise exactly like a missing one."""
    account = accounts.find_by_username(scope.session, username[: accounts.MAX_USERNAME_LENGTH])
    if account is None:
        raise not_found()
    profile = scope.session.get(AccountProfile, account.id)
    unit = scope.session.get(Unit, profile.unit_id) if profile and profile.unit_id else None
    if not admin.reach.system and (unit is None or not admin.reach.covers(unit)):
        raise not_found()
    return Official(account=account, profile=profile, unit=unit)


def _live_sessions(session: Session, scope: RequestScope, account: Account) -> int:
    now = scope.runtime.clock.now()
    return (
        session.scalar(
            select(func.count())
            .select_from(BrowserSession)
            .where(
                BrowserSession.account_id == account.id,
                BrowserSession.ended_at.is_(None),
                BrowserSession.expires_at > now,
            )
        )
        or 0
    )


def _pending_code(session: Session, scope: RequestScope, account: Account) -> ActivationCode | None:
    return session.scalar(
        select(ActivationCode)
        .where(
            ActivationCode.account_id == account.id,
            ActivationCode.used_at.is_(None),
            ActivationCode.expires_at > scope.runtime.clock.now(),
        )
        .order_by(ActivationCode.id.desc())
        .limit(1)
    )


def show_official(scope: RequestScope, admin: Admin) -> Response:
    official = find_official(scope, admin, scope.request.path_params["username"])
    session = scope.session
    agency = (
        session.get(Agency, official.profile.agency_id)
        if official.profile and official.profile.agency_id
        else None
    )
    history = account_history.history(session, official.account)
    done = query_of(scope).get("done", "")
    return render(
        scope,
        admin,
        "admin/official.html",
        {
            "official": official,
            "agency": agency,
            "status_labels": STATUS_LABELS,
            "live_sessions": _live_sessions(session, scope, official.account),
            "pending_code": _pending_code(session, scope, official.account),
            "mfa_enrolled": mfa.has_totp(session, official.account),
            "passkeys": [passkeys.summary(p) for p in passkeys.list_for(session, official.account)],
            "history": history,
            "done": ACTION_DONE.get(done) if done in ACTION_DONE else None,
            "done_count": count if (count := query_of(scope).get("count", "")).isdigit() else "",
            "actions": ACTION_TITLES,
        },
    )


def _refusal(official: Official, admin: Admin, action: str, session: Session) -> str | None:
    """Why ``action`` cannot be done to this official now (a msgid), or None."""
    account = official.account
    if official.status == "deleted":
        return DELETED_ACCOUNT
    if account.is_system_admin and not admin.reach.system:
        return SYSTEM_ADMIN_ACCOUNT
    if action == "disable" and account.id == admin.account.id:
        return NOT_YOURSELF
    if action == "activation":
        if account.status == "disabled":
            return ACCOUNT_DISABLED_FIRST
        if account.password_hash is not None:
            return NOT_ACTIVATED_ONLY
    if (
        action == "reset-mfa"
        and not mfa.has_totp(session, account)
        and not passkeys.has_passkey(session, account)
    ):
        return MFA_NOT_ENROLLED
    return None


def _action_of(scope: RequestScope) -> str:
    action = str(scope.request.path_params["action"])
    if action not in ACTIONS:
        raise not_found()
    return action


def confirm_action(scope: RequestScope, admin: Admin) -> Response:
    official = find_official(scope, admin, scope.request.path_params["username"])
    action = _action_of(scope)
    return render(
        scope,
        admin,
        "admin/official_confirm.html",
        {
            "official": official,
            "action": action,
            "title": ACTION_TITLES[action],
            "explanation": ACTION_EXPLANATIONS[action],
            "refusal": _refusal(official, admin, action, scope.session),
        },
    )


def reset_mfa(*, scope: RequestScope, actor: str, account: Account) -> bool:
    """Remove the official's authenticator and recovery codes (:func:`idp.mfa.disable`, which
    records ``account.totp_disabled`` with the admin as actor) and every passkey (each
    recorded as ``account.passkey_removed``); True if anything was removed."""
    session, clock = scope.session, scope.runtime.clock
    totp_removed = mfa.disable(session=session, clock=clock, actor=actor, account=account)
    removed_passkeys = passkeys.remove_all(
        session=session,
        clock=clock,
        account=account,
        actor=actor,
        client_address=scope.http.client_address,
    )
    return totp_removed or removed_passkeys > 0


def perform_action(scope: RequestScope, admin: Admin) -> Response:
    official = find_official(scope, admin, scope.request.path_params["username"])
    action = _action_of(scope)
    refusal = _refusal(official, admin, action, scope.session)
    if refusal is not None:
        return render(
            scope,
            admin,
            "admin/official_confirm.html",
            {
                "official": official,
                "action": action,
                "title": ACTION_TITLES[action],
                "explanation": ACTION_EXPLANATIONS[action],
                "refusal": refusal,
            },
            status_code=409,
        )
    session, clock, account = scope.session, scope.runtime.clock, official.account
    detail_url = f"/admin/officials/{account.username}"
    if action == "disable":
        accounts.disable(session=session, clock=clock, actor=admin.actor, account=account)
    elif action == "enable":
        accounts.enable(session=session, clock=clock, actor=admin.actor, account=account)
    elif action == "reset-mfa":
        reset_mfa(scope=scope, actor=admin.actor, account=account)
    elif action == "sign-out":
        ended = sign_out_everywhere(
            session=session, clock=clock, actor=admin.actor, account=account
        )
        return RedirectResponse(f"{detail_url}?done=sign-out&count={ended}", status_code=303)
    else:
        code, expires_at = accounts.issue_activation_code(
            session=session,
            clock=clock,
            actor=admin.actor,
            account=account,
            client_address=scope.http.client_address,
        )
        # Shown in this response only (no-store, not in any URL); a reload asks to resubmit.
        return render(
            scope,
            admin,
            "admin/activation_code.html",
            {"official": official, "code": code, "expires_at": expires_at},
        )
    return RedirectResponse(f"{detail_url}?done={action}", status_code=303)


# --------------------------------------------------------------------------------------------
# One passkey of an official


def _official_passkey(scope: RequestScope, admin: Admin) -> tuple[Official, Passkey]:
    """The official (in the admin's reach, :func:`find_official`) and one of their passkeys;
    anything else is not found."""
    official = find_official(scope, admin, scope.request.path_params["username"])
    raw_id = str(scope.request.path_params["passkey_id"])
    passkey = (
        passkeys.find_for(scope.session, official.account, int(raw_id))
        if raw_id.isdigit() and len(raw_id) < 12
        else None
    )
    if passkey is None:
        raise not_found()
    return official, passkey


def _render_remove_passkey(
    scope: RequestScope,
    admin: Admin,
    official: Official,
    passkey: Passkey,
    *,
    refusal: str | None,
    status_code: int = 200,
) -> Response:
    return render(
        scope,
        admin,
        "admin/official_confirm.html",
        {
            "official": official,
            "action": "remove-passkey",
            "passkey": passkeys.summary(passkey),
            "title": REMOVE_PASSKEY_TITLE,
            "explanation": REMOVE_PASSKEY_EXPLANATION,
            "refusal": refusal,
        },
        status_code=status_code,
    )


def confirm_remove_passkey(scope: RequestScope, admin: Admin) -> Response:
    official, passkey = _official_passkey(scope, admin)
    refusal = _refusal(official, admin, "remove-passkey", scope.session)
    return _render_remove_passkey(scope, admin, official, passkey, refusal=refusal)


def remove_passkey(scope: RequestScope, admin: Admin) -> Response:
    official, passkey = _official_passkey(scope, admin)
    refusal = _refusal(official, admin, "remove-passkey", scope.session)
    if refusal is not None:
        return _render_remove_passkey(
            scope, admin, official, passkey, refusal=refusal, status_code=409
        )
    passkeys.remove(
        session=scope.session,
        clock=scope.runtime.clock,
        account=official.account,
        passkey_id=passkey.id,
        actor=admin.actor,
        client_address=scope.http.client_address,
    )
    return RedirectResponse(
        f"/admin/officials/{official.account.username}?done=passkey-removed", status_code=303
    )
