"""uvicorn entry point: ``commune_sso.asgi:app_from_environment`` (factory)."""

from __future__ import annotations

from starlette.applications import Starlette

from commune_sso.app import create_app
from core.settings import Settings


def app_from_environment() -> Starlette:
    return create_app(Settings())
