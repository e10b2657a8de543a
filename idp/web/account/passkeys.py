"""The official's passkeys (``/account/passkeys``): list, add, remove (idp.passkeys).

Adding runs the WebAuthn registration ceremony: the page's script asks
``POST /account/passkeys/options`` for the creation options, the browser makes the credential
and the form posts it with the name the official chose. Removing asks for a confirmation
first. Every change is audited (in idp.passkeys).

Who may add one: an official without a passkey, from any session (the bootstrap: the session
passed every factor the account had); an official who already has one, only from a session
signed in with a passkey, so a stolen password (and TOTP code) cannot add the thief's own.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse, Response

from core import audit
from core.web.i18n import N_
from idp import authentication_levels as levels
from idp import passkeys
from idp.models import Passkey
from idp.web.account import display
from idp.web.account.access import AccountScope, account_endpoint, form_field, redirect, render
from idp.web.account.pages import notice_of

NAME_MISSING = N_("Give the passkey a name, for example “Office laptop” or “Blue security key”.")
NAME_INVALID = N_("The name must not contain control characters.")
REGISTRATION_REFUSED = N_(
    "The passkey could not be added. Please try again; if it keeps failing, try another "
    "authenticator."
)
NEEDS_PASSKEY_SESSION = N_(
    "To add another passkey, sign in with one of your passkeys first (sign out, then use "
    "“Sign in with a passkey”)."
)
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _may_add(account_scope: AccountScope, existing: list[Passkey]) -> bool:
    session_level = levels.acr_of(account_scope.browser_session.amr)
    return not existing or session_level == levels.PHISHING_RESISTANT


def _rows(existing: list[Passkey]) -> list[dict[str, object]]:
    return [
        {
            **passkeys.summary(passkey),
            "created_at": display.local_time(passkey.created_at),
            "last_used_at": display.local_time(passkey.last_used_at),
        }
        for passkey in existing
    ]


def _render(
    account_scope: AccountScope,
    *,
    errors: dict[str, str] | None = None,
    name: str = "",
    status_code: int = 200,
) -> Response:
    scope, account = account_scope.scope, account_scope.account
    existing = passkeys.list_for(scope.session, account)
    return render(
        scope,
        "account/passkeys.html",
        {
            "active": "passkeys",
            "account": account,
            "notice": notice_of(account_scope),
            "errors": errors or {},
            "name": name,
            "passkeys": _rows(existing),
            "available": passkeys.available(scope.runtime.settings),
            "may_add": _may_add(account_scope, existing),
            "limit_reached": len(existing) >= passkeys.MAX_PASSKEYS,
        },
        status_code=status_code,
    )


def show_passkeys(account_scope: AccountScope) -> Response:
    return _render(account_scope)


def _refusal_json(account_scope: AccountScope, message: str, status_code: int) -> Response:
    scope = account_scope.scope
    text = scope.runtime.pages.gettext(scope.locale(), message)
    return JSONResponse({"error": text}, status_code=status_code)


def submit_options(account_scope: AccountScope) -> Response:
    scope, account = account_scope.scope, account_scope.account
    if not passkeys.available(scope.runtime.settings):
        return _refusal_json(account_scope, REGISTRATION_REFUSED, 404)
    existing = passkeys.list_for(scope.session, account)
    if not _may_add(account_scope, existing):
        return _refusal_json(account_scope, NEEDS_PASSKEY_SESSION, 403)
    if len(existing) >= passkeys.MAX_PASSKEYS:
        return _refusal_json(account_scope, REGISTRATION_REFUSED, 400)
    body = passkeys.registration_options(
        session=scope.session,
        clock=scope.runtime.clock,
        settings=scope.runtime.settings,
        account=account,
    )
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


def submit_add(account_scope: AccountScope) -> Response:
    scope, account = account_scope.scope, account_scope.account
    name = form_field(scope, "name", limit=200).strip()
    if not name or len(name) > passkeys.MAX_NAME:
        return _render(account_scope, errors={"name": NAME_MISSING}, name=name, status_code=400)
    if CONTROL_CHARACTERS.search(name):
        return _render(account_scope, errors={"name": NAME_INVALID}, name="", status_code=400)
    if not _may_add(account_scope, passkeys.list_for(scope.session, account)):
        return _render(account_scope, errors={"passkey": NEEDS_PASSKEY_SESSION}, status_code=403)
    try:
        passkeys.register(
            session=scope.session,
            clock=scope.runtime.clock,
            settings=scope.runtime.settings,
            account=account,
            credential_json=form_field(scope, "credential", limit=8192),
            name=name,
            client_address=scope.http.client_address,
        )
    except passkeys.CeremonyFailed as refused:
        audit.record(
            scope.session,
            clock=scope.runtime.clock,
            actor=f"user:{account.username}",
            action="account.passkey_refused",
            target=f"account:{account.username}",
            details={"reason": refused.reason},
            client_address=scope.http.client_address,
        )
        return _render(
            account_scope, errors={"passkey": REGISTRATION_REFUSED}, name=name, status_code=400
        )
    return redirect("/account/passkeys?done=passkey-added")


def _selected(account_scope: AccountScope, raw: str) -> Passkey | None:
    if not raw.isdigit() or len(raw) > 12:
        return None
    return passkeys.find_for(account_scope.scope.session, account_scope.account, int(raw))


def show_remove(account_scope: AccountScope) -> Response:
    scope = account_scope.scope
    passkey = _selected(account_scope, scope.request.query_params.get("id", ""))
    if passkey is None:
        return redirect("/account/passkeys")
    return render(
        scope,
        "account/passkey_remove.html",
        {
            "active": "passkeys",
            "account": account_scope.account,
            "passkey": passkey,
            "last_one": len(passkeys.list_for(scope.session, account_scope.account)) == 1,
        },
    )


def submit_remove(account_scope: AccountScope) -> Response:
    scope, account = account_scope.scope, account_scope.account
    passkey = _selected(account_scope, form_field(scope, "id", limit=20))
    if passkey is None:
        return redirect("/account/passkeys")
    passkeys.remove(
        session=scope.session,
        clock=scope.runtime.clock,
        account=account,
        passkey_id=passkey.id,
        actor=f"user:{account.username}",
        client_address=scope.http.client_address,
    )
    return redirect("/account/passkeys?done=passkey-removed")


passkeys_page_endpoint = account_endpoint(show_passkeys)
options_endpoint = account_endpoint(submit_options)
add_endpoint = account_endpoint(submit_add)
remove_page_endpoint = account_endpoint(show_remove)
remove_endpoint = account_endpoint(submit_remove)
