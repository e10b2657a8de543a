"""``/login/upstream/<upstream_id>``: the authorization request to the upstream provider
(OIDC Core §3.1.2.1) for the login interaction under way.

``state`` (RFC 6749 §10.12), ``nonce`` (OIDC Core §15.5.2) and the PKCE verifier (RFC 7636
§4.1, S256 only) are parked in the interaction; the interaction's handle goes into a cookie, so
only the browser that started the sign-in can finish it (a callback URL sent to someone else
finds no interaction: no login CSRF)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from authlib.common.urls import add_params_to_uri
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core.web.i18n import N_
from idp import sessions
from idp.federation import providers
from idp.oauth.endpoints import authorization
from idp.request_scope import RequestScope, run_in_request_scope
from idp.web import login as login_pages

PENDING_KEY = "upstream"
NO_LONGER_OFFERED = N_("This sign-in option is no longer offered. Please sign in another way.")


def cookie_name(scope: RequestScope) -> str:
    # The __Host- prefix pins the cookie to this host, https and path "/" (RFC 6265bis).
    return "__Host-sso_upstream" if scope.runtime.settings.issuer_is_https else "sso_upstream"


def callback_uri(scope: RequestScope, upstream_id: str) -> str:
    return f"{scope.runtime.settings.issuer}/login/upstream/{upstream_id}/callback"


def code_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def start(scope: RequestScope, upstream_id: str) -> Response:
    handle = dict(scope.http.query).get("interaction")
    interaction = sessions.find_interaction(
        session=scope.session, clock=scope.runtime.clock, handle=handle
    )
    if interaction is None or handle is None:
        return authorization.expired_interaction_page(scope)
    provider = providers.REGISTRY.find_active(scope.session, upstream_id)
    if provider is None:
        return login_pages.render_login(
            scope, interaction, handle, error=NO_LONGER_OFFERED, status_code=404
        )
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    # A new dict: the JSON column sees the change only when the value is replaced.
    interaction.params = {
        **interaction.params,
        PENDING_KEY: {
            "upstream_pk": provider.id,
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
        },
    }
    location = add_params_to_uri(
        provider.authorization_endpoint,
        [
            ("response_type", "code"),
            ("client_id", provider.client_id),
            ("redirect_uri", callback_uri(scope, provider.upstream_id)),
            ("scope", provider.scope),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", code_challenge(verifier)),
            ("code_challenge_method", "S256"),
            ("ui_locales", scope.locale()),
        ],
    )
    response = RedirectResponse(location, status_code=303)
    response.set_cookie(
        cookie_name(scope),
        handle,
        max_age=scope.runtime.settings.interaction_ttl,
        path="/",
        httponly=True,
        # Lax: the upstream's redirect back is a top-level GET, which carries it.
        samesite="lax",
        secure=scope.runtime.settings.issuer_is_https,
    )
    return response


async def start_endpoint(request: Request) -> Response:
    upstream_id = str(request.path_params["upstream_id"])
    return await run_in_request_scope(request, lambda scope: start(scope, upstream_id))
