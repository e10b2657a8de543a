"""uvicorn entry point: ``commune_sso.asgi:app_from_environment`` (factory)."""

from __future__ import annotations

from starlette.applications import Starlette

from commune_sso.app import check_audit_key, create_app
from core.settings import Settings


def app_from_environment() -> Starlette:
    settings = Settings()
    app = create_app(settings)
    if settings.audit_checkpoint_interval > 0:
        # `serve` checked it before starting the workers; a worker started otherwise (plain
        # uvicorn, gunicorn) must refuse too rather than sign the chain with another key.
        check_audit_key(settings, app.state.idp.session_factory)
    return app
