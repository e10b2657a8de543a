"""Admin pages: the shared apps (OAuth clients) — system administrators only.

Register (:func:`idp.clients.create`), change the redirect and logout URIs, rotate the secret
(:func:`idp.clients.rotate_secret`) and remove (:func:`idp.clients.remove`). A secret is shown
once, in the response to the POST that made it, and is stored only as its digest.

The form is checked here field by field first, so every error is shown next to its field in the
page's language (RFC 6749 §3.1.2 redirect URIs; Back-Channel Logout 1.0 §2.2 and Front-Channel
Logout 1.0 §2 logout URIs); :mod:`idp.clients` checks again.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from core import audit
from core.errors import DomainError
from core.web.i18n import N_
from idp import clients
from idp.models import Client
from idp.request_scope import RequestScope
from idp.web.admin_pages.guard import Admin, form_list, form_of, not_found, render

DEFAULT_SCOPE = "openid profile email offline_access"
FORM_ID = re.compile(r"[A-Za-z0-9_-]{22}")
MAX_URIS = 20
MAX_NAME = 200
GRANT_LABELS = {
    "authorization_code": N_("Sign-in of officials (authorization code)"),
    "refresh_token": N_("Stay signed in (refresh tokens)"),
    "client_credentials": N_("Service-to-service (client credentials)"),
}
ACTIONS = {"rotate": N_("Rotate the secret"), "remove": N_("Remove the app")}
ACTION_EXPLANATIONS = {
    "rotate": N_(
        "A new secret replaces the current one at once: the app stops working until its "
        "settings hold the new secret. The new secret is shown to you once."
    ),
    "remove": N_(
        "The app can no longer sign officials in; every token it holds is revoked. Its history "
        "is kept."
    ),
}
NAME_REQUIRED = N_("Enter the app's name (at most 200 characters).")
GRANT_REQUIRED = N_("Choose at least one way the app signs in.")
REDIRECT_REQUIRED = N_("Signing officials in needs at least one redirect URI.")
BAD_REDIRECT = N_(
    "Line %(line)s: a redirect URI is an absolute https URL without a fragment (plain http only "
    "on 127.0.0.1 or localhost)."
)
BAD_LOGOUT = N_(
    "A logout URI is an absolute https URL without a fragment (plain http only on 127.0.0.1 or "
    "localhost)."
)
FRONTCHANNEL_ORIGIN = N_(
    "The front-channel logout URI must have the scheme, host and port of a redirect URI."
)
PUBLIC_NO_SERVICE = N_("An app without a secret cannot use service-to-service sign-in.")
TOO_MANY_URIS = N_("At most 20 URIs.")
SAVED = N_("The app's addresses are saved.")
PUBLIC_NO_SECRET = N_("This app has no secret to rotate (it is a public app).")


@dataclass
class ClientForm:
    """What the admin typed, kept to refill the form, and the errors by field (msgids)."""

    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    error_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fail(self, name: str, message: str, **params: Any) -> None:
        self.errors.setdefault(name, message)
        if params:
            self.error_params.setdefault(name, params)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]


def _check_uris(form: ClientForm, name: str) -> list[str]:
    uris = _lines(form.values.get(name, ""))
    if len(uris) > MAX_URIS:
        form.fail(name, TOO_MANY_URIS)
        return uris
    for number, uri in enumerate(uris, start=1):
        try:
            clients.validate_redirect_uri(uri)
        except DomainError:
            form.fail(name, BAD_REDIRECT, line=number)
            break
    return uris


def _check_logout(form: ClientForm, redirect_uris: list[str]) -> tuple[str | None, str | None]:
    back = form.values.get("backchannel_logout_uri", "").strip() or None
    front = form.values.get("frontchannel_logout_uri", "").strip() or None
    if back:
        try:
            clients.validate_logout_uri(back, field="backchannel_logout_uri")
        except DomainError:
            form.fail("backchannel_logout_uri", BAD_LOGOUT)
    if front:
        try:
            clients.validate_logout_uri(front, field="frontchannel_logout_uri")
        except DomainError:
            form.fail("frontchannel_logout_uri", BAD_LOGOUT)
        else:
            try:
                clients.validate_logout_uri(
                    front, field="frontchannel_logout_uri", redirect_uris=redirect_uris or ["-"]
                )
            except DomainError:
                form.fail("frontchannel_logout_uri", FRONTCHANNEL_ORIGIN)
    return back, front


def _client(scope: RequestScope) -> Client:
    client = scope.session.get(Client, int(scope.request.path_params["pk"]))
    if client is None or client.removed_at is not None:
        raise not_found()
    return client


def list_clients(scope: RequestScope, admin: Admin) -> Response:
    return render(
        scope,
        admin,
        "admin/clients.html",
        {"clients": clients.list_active(scope.session), "grant_labels": GRANT_LABELS},
    )


def _render_form(
    scope: RequestScope, admin: Admin, form: ClientForm, *, status_code: int = 200
) -> Response:
    return render(
        scope,
        admin,
        "admin/client_form.html",
        {
            "values": form.values,
            "errors": form.errors,
            "error_params": form.error_params,
            "grant_labels": GRANT_LABELS,
        },
        status_code=status_code,
    )


def new_client(scope: RequestScope, admin: Admin) -> Response:
    values: dict[str, Any] = {
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": DEFAULT_SCOPE,
        "form_id": secrets.token_urlsafe(16),
    }
    return _render_form(scope, admin, ClientForm(values=values))


def create_client(scope: RequestScope, admin: Admin) -> Response:
    values: dict[str, Any] = dict(form_of(scope))
    values["grant_types"] = [g for g in form_list(scope, "grant_types") if g in GRANT_LABELS]
    form = ClientForm(values=values)
    name = values.get("name", "").strip()
    if not name or len(name) > MAX_NAME:
        form.fail("name", NAME_REQUIRED)
    grants: list[str] = values["grant_types"]
    public = values.get("public") == "on"
    if not grants:
        form.fail("grant_types", GRANT_REQUIRED)
    if public and "client_credentials" in grants:
        form.fail("grant_types", PUBLIC_NO_SERVICE)
    redirect_uris = _check_uris(form, "redirect_uris")
    if "authorization_code" in grants and not redirect_uris:
        form.fail("redirect_uris", REDIRECT_REQUIRED)
    post_logout = _check_uris(form, "post_logout_redirect_uris")
    back, front = _check_logout(form, redirect_uris)
    scope_text = " ".join(values.get("scope", "").split()) or DEFAULT_SCOPE
    if form.errors:
        return _render_form(scope, admin, form, status_code=400)
    earlier = _registered_by_form(scope, admin, values.get("form_id", ""))
    if earlier is not None:
        # The same form sent twice (a double click): one app, and its secret is not shown again.
        return RedirectResponse(f"/admin/clients/{earlier.id}", status_code=303)
    try:
        client, secret = clients.create(
            session=scope.session,
            clock=scope.runtime.clock,
            actor=admin.actor,
            name=name,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout,
            grant_types=grants,
            scope=scope_text[:1000],
            public=public,
            first_party=values.get("first_party") == "on",
            backchannel_logout_uri=back,
            frontchannel_logout_uri=front,
        )
    except DomainError as error:
        # Everything above passed, so this is a rule only the service knows: shown as it says.
        form.fail(error.field if error.field in values else "name", error.message)
        return _render_form(scope, admin, form, status_code=400)
    audit.record(
        scope.session,
        clock=scope.runtime.clock,
        actor=admin.actor,
        action="client.registered_from_page",
        target=f"client:{client.client_id}",
        details={"form_id": values.get("form_id", "")},
        client_address=scope.http.client_address,
    )
    return render(
        scope, admin, "admin/client_secret.html", {"client": client, "secret": secret, "new": True}
    )


def _registered_by_form(scope: RequestScope, admin: Admin, form_id: str) -> Client | None:
    """The app an earlier submit of this very form registered, if any."""
    if not FORM_ID.fullmatch(form_id):
        return None
    entry = scope.session.scalar(
        select(audit.AuditEntry)
        .where(
            audit.AuditEntry.action == "client.registered_from_page",
            audit.AuditEntry.actor == admin.actor,
            audit.AuditEntry.details == json.dumps({"form_id": form_id}, separators=(",", ":")),
        )
        .limit(1)
    )
    if entry is None or not entry.target:
        return None
    return clients.find_active(scope.session, entry.target.removeprefix("client:"))


def show_client(scope: RequestScope, admin: Admin, form: ClientForm | None = None) -> Response:
    client = _client(scope)
    if form is None:
        form = ClientForm(
            values={
                "redirect_uris": "\n".join(client.redirect_uris),
                "post_logout_redirect_uris": "\n".join(client.post_logout_redirect_uris),
                "backchannel_logout_uri": client.backchannel_logout_uri or "",
                "frontchannel_logout_uri": client.frontchannel_logout_uri or "",
            }
        )
    return render(
        scope,
        admin,
        "admin/client.html",
        {
            "client": client,
            "values": form.values,
            "errors": form.errors,
            "error_params": form.error_params,
            "grant_labels": GRANT_LABELS,
            "saved": SAVED if "saved" in dict(scope.http.query) else None,
        },
        status_code=400 if form.errors else 200,
    )


def update_uris(
    *,
    scope: RequestScope,
    actor: str,
    client: Client,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str],
    backchannel_logout_uri: str | None,
    frontchannel_logout_uri: str | None,
) -> None:
    """Replace a client's redirect and logout URIs (already validated), audited with the old
    and new values; every worker's cache sees the change within its few seconds."""
    before = {
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "frontchannel_logout_uri": client.frontchannel_logout_uri,
    }
    after = {
        "redirect_uris": redirect_uris,
        "post_logout_redirect_uris": post_logout_redirect_uris,
        "backchannel_logout_uri": backchannel_logout_uri,
        "frontchannel_logout_uri": frontchannel_logout_uri,
    }
    if before == after:
        return
    client.redirect_uris = redirect_uris
    client.post_logout_redirect_uris = post_logout_redirect_uris
    client.backchannel_logout_uri = backchannel_logout_uri
    client.frontchannel_logout_uri = frontchannel_logout_uri
    audit.record(
        scope.session,
        clock=scope.runtime.clock,
        actor=actor,
        action="client.update_uris",
        target=f"client:{client.client_id}",
        details={"before": before, "after": after},
        client_address=scope.http.client_address,
    )
    scope.runtime.client_cache.forget(client.client_id)


def edit_client(scope: RequestScope, admin: Admin) -> Response:
    client = _client(scope)
    form = ClientForm(values=dict(form_of(scope)))
    redirect_uris = _check_uris(form, "redirect_uris")
    if "authorization_code" in client.grant_types and not redirect_uris:
        form.fail("redirect_uris", REDIRECT_REQUIRED)
    post_logout = _check_uris(form, "post_logout_redirect_uris")
    back, front = _check_logout(form, redirect_uris)
    if form.errors:
        return show_client(scope, admin, form)
    update_uris(
        scope=scope,
        actor=admin.actor,
        client=client,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout,
        backchannel_logout_uri=back,
        frontchannel_logout_uri=front,
    )
    return RedirectResponse(f"/admin/clients/{client.id}?saved=1", status_code=303)


def _action(scope: RequestScope) -> str:
    action = str(scope.request.path_params["action"])
    if action not in ACTIONS:
        raise not_found()
    return action


def confirm_action(scope: RequestScope, admin: Admin) -> Response:
    client = _client(scope)
    action = _action(scope)
    refusal = PUBLIC_NO_SECRET if action == "rotate" and client.is_public else None
    return render(
        scope,
        admin,
        "admin/client_confirm.html",
        {
            "client": client,
            "action": action,
            "title": ACTIONS[action],
            "explanation": ACTION_EXPLANATIONS[action],
            "refusal": refusal,
        },
    )


def perform_action(scope: RequestScope, admin: Admin) -> Response:
    client = _client(scope)
    action = _action(scope)
    session, clock = scope.session, scope.runtime.clock
    if action == "remove":
        clients.remove(session=session, clock=clock, actor=admin.actor, client=client)
        scope.runtime.client_cache.forget(client.client_id)
        return RedirectResponse("/admin/clients?removed=1", status_code=303)
    if client.is_public:
        return confirm_action(scope, admin)
    secret = clients.rotate_secret(session=session, clock=clock, actor=admin.actor, client=client)
    scope.runtime.client_cache.forget(client.client_id)
    return render(
        scope, admin, "admin/client_secret.html", {"client": client, "secret": secret, "new": False}
    )
