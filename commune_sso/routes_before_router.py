"""A few busy endpoints matched before the router (issue 18).

Starlette's router tries its routes in order, a regular expression each: a path near the end
of the list, like ``/tsa`` behind some 140 routes of the IdP and the CA pages, pays for every
one of them on each request (a third of a time-stamp token's cost on the event loop). This
pure ASGI middleware, the innermost (inside the error boundary, the input guard, the
language cookie and the request metrics), answers the listed method and path pairs with one
dict lookup. The routes stay in the router as well: other methods still get its 405, and an
app built without this middleware serves them unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable

from starlette._utils import get_route_path  # the path as the router matches it
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send


class RoutesBeforeRouter:
    def __init__(self, app: ASGIApp, *, routes: Iterable[Route]) -> None:
        self.app = app
        self.routes: dict[tuple[str, str], Route] = {}
        for route in routes:
            # Only ASGI endpoints: a function endpoint needs the exception middleware's
            # handlers, which sit between here and the router.
            if inspect.isfunction(route.endpoint) or inspect.ismethod(route.endpoint):
                raise TypeError(f"{route.path}: only an ASGI endpoint can skip the router")
            if route.param_convertors:
                raise ValueError(f"{route.path}: only a fixed path can skip the router")
            for method in route.methods or ():
                self.routes[(method, route.path)] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.routes.get((scope["method"], get_route_path(scope)))
            if route is not None:
                # What the router would have set: the request metrics label by route.
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.app(scope, receive, send)
                return
        await self.app(scope, receive, send)
