"""The routes of sign-in through an upstream provider."""

from __future__ import annotations

from starlette.routing import Route

from idp.federation.endpoints.callback import callback_endpoint
from idp.federation.endpoints.logged_out import logged_out_endpoint
from idp.federation.endpoints.start import start_endpoint
from idp.federation.upstream_logout import RETURN_PATH


def federation_routes() -> list[Route]:
    return [
        # Before the {upstream_id} routes: "logged-out" is no upstream.
        Route(RETURN_PATH, logged_out_endpoint, methods=["GET"]),
        Route("/login/upstream/{upstream_id}", start_endpoint, methods=["GET"]),
        Route("/login/upstream/{upstream_id}/callback", callback_endpoint, methods=["GET"]),
    ]
