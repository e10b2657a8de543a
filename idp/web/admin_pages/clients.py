"""Admin pages: the shared apps (OAuth clients) — system administrators only.

An app is addressed by its client_id (``/admin/clients/<client_id>``, percent-encoded: a
client_id may hold ``/`` and ``:``); a confirmation step is the same address with
``?action=<action>``, and its form posts there.

Register (:func:`idp.clients.create`), change what may change after registration
(:func:`idp.clients.update_settings`), rotate the secret with an overlap
(:func:`idp.clients.rotate_secret`), end that overlap early
(:func:`idp.clients.revoke_old_secret`) and remove (:func:`idp.clients.remove`). A secret is
shown once, in the response to the POST that made it, and is stored only as its digest.

The rules are :func:`idp.clients.settings_problems`, the ones ``commune-sso client add`` applies:
every problem is shown next to its field in the page's language and nothing is saved.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from core import audit
from core.errors import Conflict, DomainError
from core.web.i18n import N_
from idp import authentication_levels, client_keys, clients
from idp.client_keys import jwks_text
from idp.clients import ClientSettings, FieldProblem, InvalidClientSettings
from idp.models import Client
from idp.request_scope import RequestScope
from idp.web.admin_pages.guard import Admin, form_list, form_of, not_found, query_of, render
from keys.keyring import SUPPORTED_ALGORITHMS

FORM_ID = re.compile(r"[A-Za-z0-9_-]{22}")
GRANT_LABELS = {
    "authorization_code": N_("Sign-in of officials (authorization code)"),
    "refresh_token": N_("Stay signed in (refresh tokens)"),
    "client_credentials": N_("Service-to-service (client credentials)"),
}
ROTATE, REVOKE_OLD_SECRET, REMOVE = "rotate", "revoke-old-secret", "remove"
ACTIONS = {
    ROTATE: N_("Rotate the secret"),
    REVOKE_OLD_SECRET: N_("Revoke the old secret now"),
    REMOVE: N_("Remove the app"),
}
ACTION_EXPLANATIONS = {
    ROTATE: N_(
        "A new secret replaces the current one. The old secret keeps working for the time you "
        "choose, so the app's servers can be given the new secret one by one. The new secret is "
        "shown to you once."
    ),
    REVOKE_OLD_SECRET: N_(
        "The old secret stops working now: only the new secret is accepted. Do this once every "
        "server of the app uses the new secret, or when the old secret may have leaked."
    ),
    REMOVE: N_(
        "The app can no longer sign officials in; every token it holds is revoked. Its history "
        "is kept."
    ),
}
OVERLAP_LABELS = {
    "0": N_("Immediately (the app stops working until it has the new secret)"),
    "1h": N_("After 1 hour"),
    "24h": N_("After 24 hours"),
    "7d": N_("After 7 days"),
}
SAVED = N_("The app's settings are saved.")
# The FAPI 2.0 requirements an administrator may switch on (idp.clients.ClientSettings).
FAPI_FLAGS = {
    "require_pushed_authorization_requests": N_(
        "Authorization requests only pushed first (PAR, RFC 9126)"
    ),
    "require_signed_request_object": N_(
        "Authorization requests only as request objects signed by the app (JAR, RFC 9101)"
    ),
    "dpop_bound_access_tokens": N_("Access tokens bound to the app's DPoP key (RFC 9449)"),
    "tls_client_certificate_bound_access_tokens": N_(
        "Access tokens bound to the app's TLS client certificate (RFC 8705)"
    ),
    "fapi2_profile": N_(
        "FAPI 2.0 Security Profile (PAR, PKCE S256, private_key_jwt or mTLS, DPoP- or "
        "certificate-bound tokens)"
    ),
}
AUTH_METHOD_LABELS = {
    "client_secret_basic": N_("A secret (client_secret_basic)"),
    "client_secret_post": N_("A secret in the request body (client_secret_post)"),
    "private_key_jwt": N_("A JWT signed with the app's key (private_key_jwt)"),
    "tls_client_auth": N_("A TLS client certificate from our CA (tls_client_auth)"),
    "self_signed_tls_client_auth": N_(
        "A self-signed TLS client certificate of the app's keys (self_signed_tls_client_auth)"
    ),
}
# RFC 8705 §2.1.2: how a tls_client_auth app names its certificate (exactly one).
CERTIFICATE_NAME_LABELS = {
    "tls_client_auth_subject_dn": N_("Certificate subject DN (RFC 4514)"),
    "tls_client_auth_san_dns": N_("Or a DNS name in the certificate"),
    "tls_client_auth_san_uri": N_("Or a URI in the certificate"),
    "tls_client_auth_san_ip": N_("Or an IP address in the certificate"),
    "tls_client_auth_san_email": N_("Or an e-mail address in the certificate"),
}


def _auth_method(values: dict[str, Any]) -> str | None:
    """The chosen way of authenticating (none for a public app; the rules refuse the rest)."""
    if values.get("public") == "on":
        return None
    chosen = values.get("token_endpoint_auth_method", "client_secret_basic")
    return chosen if chosen in AUTH_METHOD_LABELS else "client_secret_basic"


OLD_SECRET_REVOKED = N_("The old secret no longer works.")


def client_path(client_id: str) -> str:
    """The app's page; every character that is not unreserved is percent-encoded, ``/`` too."""
    return f"/admin/clients/{quote(client_id, safe='')}"


def _client(scope: RequestScope) -> Client:
    client = clients.find_active(scope.session, str(scope.request.path_params["client_id"]))
    if client is None:
        raise not_found()
    return client


def _action(scope: RequestScope) -> str | None:
    action = query_of(scope).get("action")
    if action is not None and action not in ACTIONS:
        raise not_found()
    return action


def _page_context(scope: RequestScope) -> dict[str, Any]:
    return {
        "client_path": client_path,
        "grant_labels": GRANT_LABELS,
        "algorithms": SUPPORTED_ALGORITHMS,
        "acr_levels": authentication_levels.LEVEL_LABELS,
        "fapi_flags": FAPI_FLAGS,
        "auth_method_labels": AUTH_METHOD_LABELS,
        "certificate_name_labels": CERTIFICATE_NAME_LABELS,
        "now": scope.runtime.clock.now(),
    }


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip())


def _form_settings(scope: RequestScope) -> tuple[dict[str, Any], ClientSettings]:
    """What the admin typed (to refill the form) and the settings it asks for."""
    values: dict[str, Any] = dict(form_of(scope))
    values["grant_types"] = form_list(scope, "grant_types")
    settings = ClientSettings(
        name=values.get("name", ""),
        grant_types=tuple(values["grant_types"]),
        scope=values.get("scope", ""),
        redirect_uris=_lines(values.get("redirect_uris", "")),
        post_logout_redirect_uris=_lines(values.get("post_logout_redirect_uris", "")),
        id_token_alg=values.get("id_token_signed_response_alg", "RS256"),
        access_token_alg=values.get("access_token_signed_response_alg", "RS256"),
        backchannel_logout_uri=values.get("backchannel_logout_uri"),
        frontchannel_logout_uri=values.get("frontchannel_logout_uri"),
        minimum_acr=values.get("minimum_acr"),
        jwks=client_keys.parse_jwks_text(values["jwks"])
        if values.get("jwks", "").strip()
        else None,
        jwks_uri=values.get("jwks_uri"),
        require_pushed_authorization_requests=_checked(
            values, "require_pushed_authorization_requests"
        ),
        require_signed_request_object=_checked(values, "require_signed_request_object"),
        dpop_bound_access_tokens=_checked(values, "dpop_bound_access_tokens"),
        tls_client_certificate_bound_access_tokens=_checked(
            values, "tls_client_certificate_bound_access_tokens"
        ),
        fapi2_profile=_checked(values, "fapi2_profile"),
        tls_client_auth_subject_dn=values.get("tls_client_auth_subject_dn"),
        tls_client_auth_san_dns=values.get("tls_client_auth_san_dns"),
        tls_client_auth_san_uri=values.get("tls_client_auth_san_uri"),
        tls_client_auth_san_ip=values.get("tls_client_auth_san_ip"),
        tls_client_auth_san_email=values.get("tls_client_auth_san_email"),
    )
    return values, settings


def _checked(values: dict[str, Any], name: str) -> bool:
    return values.get(name) == "on"


def _form_values(settings: ClientSettings) -> dict[str, Any]:
    """A registration as the form shows it."""
    return {
        "name": settings.name,
        "grant_types": list(settings.grant_types),
        "scope": settings.scope,
        "redirect_uris": "\n".join(settings.redirect_uris),
        "post_logout_redirect_uris": "\n".join(settings.post_logout_redirect_uris),
        "id_token_signed_response_alg": settings.id_token_alg,
        "access_token_signed_response_alg": settings.access_token_alg,
        "backchannel_logout_uri": settings.backchannel_logout_uri or "",
        "frontchannel_logout_uri": settings.frontchannel_logout_uri or "",
        "minimum_acr": settings.minimum_acr or "",
        "jwks": settings.jwks if isinstance(settings.jwks, str) else jwks_text(settings.jwks),
        "jwks_uri": settings.jwks_uri or "",
        **{flag: "on" if getattr(settings, flag) else "" for flag in FAPI_FLAGS},
        **{field: getattr(settings, field) or "" for field in CERTIFICATE_NAME_LABELS},
    }


def _problems_by_field(error: DomainError, values: dict[str, Any]) -> dict[str, FieldProblem]:
    if isinstance(error, InvalidClientSettings):
        return {problem.field: problem for problem in error.problems}
    # A rule only the service knows (a client_id already taken): shown at the top field.
    field = error.field if error.field in values else "name"
    return {field: FieldProblem(field, error.message, error.params)}


def list_clients(scope: RequestScope, admin: Admin) -> Response:
    return render(
        scope,
        admin,
        "admin/clients.html",
        {"clients": clients.list_active(scope.session), **_page_context(scope)},
    )


def _render_form(
    scope: RequestScope,
    admin: Admin,
    values: dict[str, Any],
    errors: dict[str, FieldProblem],
    *,
    status_code: int = 200,
) -> Response:
    return render(
        scope,
        admin,
        "admin/client_form.html",
        {"values": values, "errors": errors, **_page_context(scope)},
        status_code=status_code,
    )


def new_client(scope: RequestScope, admin: Admin) -> Response:
    values = _form_values(ClientSettings(name=""))
    values["form_id"] = secrets.token_urlsafe(16)
    return _render_form(scope, admin, values, {})


def create_client(scope: RequestScope, admin: Admin) -> Response:
    values, settings = _form_settings(scope)
    earlier = _registered_by_form(scope, admin, values.get("form_id", ""))
    if earlier is not None:
        # The same form sent twice (a double click): one app, and its secret is not shown again.
        return RedirectResponse(client_path(earlier.client_id), status_code=303)
    try:
        client, secret = clients.create(
            session=scope.session,
            clock=scope.runtime.clock,
            actor=admin.actor,
            name=settings.name,
            redirect_uris=settings.redirect_uris,
            post_logout_redirect_uris=settings.post_logout_redirect_uris,
            grant_types=settings.grant_types,
            scope=settings.scope,
            public=values.get("public") == "on",
            auth_method=_auth_method(values),
            keys=settings,
            id_token_alg=settings.id_token_alg,
            access_token_alg=settings.access_token_alg,
            first_party=values.get("first_party") == "on",
            backchannel_logout_uri=settings.backchannel_logout_uri,
            frontchannel_logout_uri=settings.frontchannel_logout_uri,
            minimum_acr=settings.minimum_acr,
        )
    except DomainError as error:
        return _render_form(
            scope, admin, values, _problems_by_field(error, values), status_code=400
        )
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
        scope,
        admin,
        "admin/client_secret.html",
        {"client": client, "secret": secret, "new": True, **_page_context(scope)},
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


def _render_client(
    scope: RequestScope,
    admin: Admin,
    client: Client,
    values: dict[str, Any],
    errors: dict[str, FieldProblem],
) -> Response:
    notices = {"saved": SAVED, "old-secret-revoked": OLD_SECRET_REVOKED}
    return render(
        scope,
        admin,
        "admin/client.html",
        {
            "client": client,
            "values": values,
            "errors": errors,
            "notice": notices.get(query_of(scope).get("done", "")),
            "old_secret_valid_until": clients.old_secret_valid_until(
                client, scope.runtime.clock.now()
            ),
            **_page_context(scope),
        },
        status_code=400 if errors else 200,
    )


def show_client(scope: RequestScope, admin: Admin) -> Response:
    """The app's page, or with ``?action=`` the confirmation of that action."""
    client = _client(scope)
    action = _action(scope)
    if action is not None:
        return _confirm(scope, admin, client, action)
    return _render_client(scope, admin, client, _form_values(ClientSettings.of(client)), {})


def change_client(scope: RequestScope, admin: Admin) -> Response:
    """The save of the app's form, or with ``?action=`` a confirmed action."""
    client = _client(scope)
    action = _action(scope)
    if action is not None:
        return _perform(scope, admin, client, action)
    values, settings = _form_settings(scope)
    try:
        changed = clients.update_settings(
            session=scope.session,
            clock=scope.runtime.clock,
            actor=admin.actor,
            client=client,
            settings=settings,
            client_address=scope.http.client_address,
        )
    except InvalidClientSettings as error:
        return _render_client(scope, admin, client, values, _problems_by_field(error, values))
    if changed:
        scope.runtime.client_cache.forget(client.client_id)
    return RedirectResponse(f"{client_path(client.client_id)}?done=saved", status_code=303)


def _refusal(client: Client, action: str, scope: RequestScope) -> str | None:
    if action == ROTATE and client.token_endpoint_auth_method not in clients.SECRET_AUTH_METHODS:
        return clients.PUBLIC_NO_SECRET
    now = scope.runtime.clock.now()
    if action == REVOKE_OLD_SECRET and clients.old_secret_valid_until(client, now) is None:
        return clients.NO_OLD_SECRET
    return None


def _confirm(
    scope: RequestScope,
    admin: Admin,
    client: Client,
    action: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        scope,
        admin,
        "admin/client_confirm.html",
        {
            "client": client,
            "action": action,
            "title": ACTIONS[action],
            "explanation": ACTION_EXPLANATIONS[action],
            "refusal": _refusal(client, action, scope),
            "error": error,
            "overlap_labels": OVERLAP_LABELS,
            "default_overlap": clients.DEFAULT_SECRET_OVERLAP,
            "old_secret_valid_until": clients.old_secret_valid_until(
                client, scope.runtime.clock.now()
            ),
            **_page_context(scope),
        },
        status_code=status_code,
    )


def _perform(scope: RequestScope, admin: Admin, client: Client, action: str) -> Response:
    session, clock = scope.session, scope.runtime.clock
    refusal = _refusal(client, action, scope)
    if refusal is not None:
        return _confirm(scope, admin, client, action, status_code=Conflict.status_code)
    address = scope.http.client_address
    if action == REMOVE:
        clients.remove(session=session, clock=clock, actor=admin.actor, client=client)
        scope.runtime.client_cache.forget(client.client_id)
        return RedirectResponse("/admin/clients?removed=1", status_code=303)
    if action == REVOKE_OLD_SECRET:
        clients.revoke_old_secret(
            session=session, clock=clock, actor=admin.actor, client=client, client_address=address
        )
        scope.runtime.client_cache.forget(client.client_id)
        return RedirectResponse(
            f"{client_path(client.client_id)}?done=old-secret-revoked", status_code=303
        )
    overlap = clients.SECRET_OVERLAPS.get(form_of(scope).get("overlap", ""))
    if overlap is None:
        return _confirm(scope, admin, client, action, error=clients.BAD_OVERLAP, status_code=400)
    secret = clients.rotate_secret(
        session=session,
        clock=clock,
        actor=admin.actor,
        client=client,
        overlap=overlap,
        client_address=address,
    )
    scope.runtime.client_cache.forget(client.client_id)
    return render(
        scope,
        admin,
        "admin/client_secret.html",
        {
            "client": client,
            "secret": secret,
            "new": False,
            "old_secret_valid_until": client.previous_secret_valid_until,
            **_page_context(scope),
        },
    )
