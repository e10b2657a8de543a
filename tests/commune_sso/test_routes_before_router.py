"""RoutesBeforeRouter (commune_sso/routes_before_router.py): the listed method and path go to
their endpoint without the router; everything else still goes through the router."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from commune_sso.routes_before_router import RoutesBeforeRouter


class Shortcut:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope["route"]
        await PlainTextResponse(f"shortcut {route.path}")(scope, receive, send)


async def router_endpoint(request: Request) -> Response:
    return PlainTextResponse("router")


def _app() -> Starlette:
    shortcut = Route("/tsa", Shortcut(), methods=["POST"])
    return Starlette(
        # A catch-all first: only a request that skips the router reaches the shortcut.
        routes=[Route("/{anything}", router_endpoint, methods=["GET", "POST"]), shortcut],
        middleware=[Middleware(RoutesBeforeRouter, routes=[shortcut])],
    )


def test_listed_method_and_path_skip_the_router() -> None:
    with TestClient(_app()) as web:
        assert web.post("/tsa").text == "shortcut /tsa"
        assert web.get("/tsa").text == "router"
        assert web.post("/tsax").text == "router"
        assert web.post("/other").text == "router"


def test_only_fixed_paths_of_asgi_endpoints_are_accepted() -> None:
    with pytest.raises(TypeError):
        RoutesBeforeRouter(_app(), routes=[Route("/x", router_endpoint, methods=["POST"])])
    with pytest.raises(ValueError):
        RoutesBeforeRouter(_app(), routes=[Route("/x/{n:int}", Shortcut(), methods=["POST"])])
