"""``/login/upstream/logged-out``: the upstream's RP-initiated logout sends the browser back
here (its ``post_logout_redirect_uri``, RP-Initiated Logout 1.0 §3), with the ``state`` we
gave it; we go on to where our own logout was going."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from idp import sessions
from idp.federation.upstream_logout import PARKED_KEY
from idp.request_scope import RequestScope, run_in_request_scope


def logged_out(scope: RequestScope) -> Response:
    interaction = sessions.find_interaction(
        session=scope.session,
        clock=scope.runtime.clock,
        handle=dict(scope.http.query).get("state"),
    )
    parked = interaction.params.get(PARKED_KEY) if interaction is not None else None
    if interaction is not None and isinstance(parked, dict):
        interaction.completed_at = scope.runtime.clock.now()
        if parked.get("continue"):
            return RedirectResponse(str(parked["continue"]), status_code=303)
    # Our session ended before the browser left for the upstream: the logged-out page.
    client_name = parked.get("client_name") if isinstance(parked, dict) else None
    return scope.runtime.pages.render(
        scope.request, "logged_out.html", {"client_name": client_name}, locale=scope.locale()
    )


async def logged_out_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, logged_out)
