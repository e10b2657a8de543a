"""One request = one transaction, run in a worker thread (CONVENTIONS §6).

Authlib, SQLAlchemy sessions and password hashing are synchronous: the async route reads the
body first, then the synchronous part runs here with its own session, committed on success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from core.db import transaction
from core.web.i18n import negotiate_locale
from idp.oauth.http import (
    MAX_FIELD_LENGTH,
    FormTooLarge,
    HttpInput,
    json_error,
    read_http_input,
)
from idp.runtime import IdpRuntime


@dataclass
class RequestScope:
    runtime: IdpRuntime
    session: Session
    http: HttpInput
    request: Request

    def locale(self, ui_locales: str | None = None) -> str:
        return negotiate_locale(
            ui_locales=ui_locales,
            query_lang=self.request.query_params.get("lang"),
            cookie_lang=self.request.cookies.get("lang"),
        )


def runtime_of(request: Request) -> IdpRuntime:
    runtime: IdpRuntime = request.app.state.idp
    return runtime


async def run_in_request_scope(
    request: Request,
    handler: Callable[[RequestScope], Response],
    *,
    max_field_length: int = MAX_FIELD_LENGTH,
) -> Response:
    """``max_field_length``: larger for protocols whose messages are posted whole (SAML)."""
    runtime = runtime_of(request)
    try:
        http = await read_http_input(
            request, settings=runtime.settings, max_field_length=max_field_length
        )
    except FormTooLarge:
        return json_error(400, "invalid_request", "A parameter is too long.")

    def work() -> Response:
        with transaction(runtime.session_factory) as session:
            return handler(
                RequestScope(runtime=runtime, session=session, http=http, request=request)
            )

    return await run_in_threadpool(work)
