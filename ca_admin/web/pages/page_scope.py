"""What every CA page shares: the signed-in official (the pages' own signed cookie), the form
(CSRF checked on every POST), one transaction per request in the thread pool, and domain errors
rendered as a page in the official's language (never a 500, never a stack trace).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ca_admin.runtime import CaRuntime
from ca_admin.serials import openssl_serial
from ca_admin.web.pages.oidc_client import PagesClient, seal, unseal
from core.db import transaction
from core.errors import DomainError
from core.web.csrf import CsrfError
from core.web.i18n import N_, negotiate_locale
from core.web.site_header import Visitor, show_visitor

PREFIX = "/ca/pages"
SESSION_COOKIE = "ca_session"
LOGIN_COOKIE = "ca_login"
SESSION_PURPOSE = "ca-session"
LOGIN_PURPOSE = "ca-login"
MAX_UPLOAD_BYTES = 64 * 1024  # a CSR is a few KB; anything bigger is refused by key_policy anyway
MAX_FIELD_CHARS = 20_000
# Room for the form's other fields and part headers around an upload.
FORM_OVERHEAD_BYTES = 256 * 1024
# A hidden random token per form makes a double submit return the first request.
VIETNAM_OFFSET = timedelta(hours=7)
FORM_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,48}$")


@dataclass(frozen=True)
class SignedIn:
    """The official signed in to the CA pages (from the IdP's ID token)."""

    sub: str
    name: str
    auth_time: int  # when the official last entered their password (ID token auth_time)
    amr: tuple[str, ...]
    id_token: str
    exp: int

    def as_cookie(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "name": self.name,
            "auth_time": self.auth_time,
            "amr": list(self.amr),
            "id_token": self.id_token,
            "exp": self.exp,
        }


class PagesUnavailable(DomainError):
    status_code = 503
    code = "unavailable"


class SignInRequired(DomainError):
    status_code = 401
    code = "login_required"


@dataclass
class PageScope:
    runtime: CaRuntime
    session: Session
    request: Request
    user: SignedIn | None
    locale: str
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def signed_in(self) -> SignedIn:
        if self.user is None:
            raise SignInRequired(N_("Please sign in again."))
        return self.user

    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query_params

    def render(
        self, template: str, context: Mapping[str, Any] | None = None, *, status_code: int = 200
    ) -> Response:
        return render(
            self.request,
            self.runtime,
            template,
            context,
            self.locale,
            self.user,
            status_code=status_code,
            session=self.session,
        )


def format_date(moment: datetime) -> str:
    """dd/mm/yyyy in Vietnam's time (UTC+7, no daylight saving), as officials write dates."""
    return (moment + VIETNAM_OFFSET).strftime("%d/%m/%Y")


def format_moment(moment: datetime) -> str:
    """hh:mm:ss dd/mm/yyyy in Vietnam's time, marked as such (signing times, timestamps)."""
    return (moment + VIETNAM_OFFSET).strftime("%H:%M:%S %d/%m/%Y") + " (UTC+7)"


def client_of(runtime: CaRuntime) -> PagesClient:
    if runtime.pages is None or runtime.pages_client is None or runtime.csrf is None:
        raise PagesUnavailable(N_("The certificate pages are not available on this server."))
    return runtime.pages_client


def page_locale(request: Request) -> str:
    return negotiate_locale(
        ui_locales=None,
        query_lang=request.query_params.get("lang"),
        cookie_lang=request.cookies.get("lang"),
    )


def new_form_token() -> str:
    return secrets.token_urlsafe(24)


def read_user(runtime: CaRuntime, request: Request) -> SignedIn | None:
    client = runtime.pages_client
    if client is None:
        return None
    data = unseal(
        client.cookie_key,
        SESSION_PURPOSE,
        request.cookies.get(SESSION_COOKIE),
        now=runtime.clock.now(),
    )
    if data is None:
        return None
    try:
        return SignedIn(
            sub=str(data["sub"]),
            name=str(data["name"]),
            auth_time=int(data["auth_time"]),
            amr=tuple(str(a) for a in data.get("amr") or ()),
            id_token=str(data["id_token"]),
            exp=int(data["exp"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def set_user_cookie(response: Response, client: PagesClient, user: SignedIn) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        seal(client.cookie_key, SESSION_PURPOSE, user.as_cookie()),
        max_age=int(client.session_lifetime.total_seconds()),
        path=PREFIX + "/",
        httponly=True,
        samesite="lax",
        secure=client.secure_cookies,
    )


def clear_user_cookie(response: Response, client: PagesClient) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=PREFIX + "/",
        httponly=True,
        samesite="lax",
        secure=client.secure_cookies,
    )


def render(
    request: Request,
    runtime: CaRuntime,
    template: str,
    context: Mapping[str, Any] | None,
    locale: str,
    user: SignedIn | None,
    *,
    status_code: int = 200,
    session: Session | None = None,
) -> Response:
    assert runtime.pages is not None
    is_admin = False
    if user is not None and session is not None:
        reach = runtime.approvers.administered_unit_codes(session, actor_ref=user.sub)
        is_admin = reach is None or bool(reach)
    show_visitor(request, Visitor(name=user.name, is_admin=is_admin) if user else None)
    page_context: dict[str, Any] = {
        "user": user,
        "is_admin": is_admin,
        "prefix": PREFIX,
        "fmt_date": format_date,
        "fmt_moment": format_moment,
        "serial_text": openssl_serial,
    }
    page_context.update(context or {})
    return runtime.pages.render(
        request,
        template,
        page_context,
        locale=locale,
        status_code=status_code,
        remember_locale="lang" in request.query_params,
    )


def message_page(
    request: Request,
    runtime: CaRuntime,
    *,
    title: str,
    error: DomainError | None = None,
    message: str | None = None,
    status_code: int,
    user: SignedIn | None,
    back_url: str | None = None,
) -> Response:
    return render(
        request,
        runtime,
        "ca_message.html",
        {
            "title": title,
            "error": error,
            "message": message,
            "status_code": status_code,
            "back_url": back_url,
        },
        page_locale(request),
        user,
        status_code=status_code,
    )


def login_location(request: Request, *, reauth: bool = False) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"{PREFIX}/login?next={quote(target, safe='')}"
    return location + ("&reauth=1" if reauth else "")


async def _read_form(
    request: Request, max_upload_bytes: int
) -> tuple[dict[str, str], dict[str, bytes]]:
    form = await request.form(max_files=4, max_fields=100)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read(max_upload_bytes + 1)
            if data:
                files[name] = data
        elif name not in fields:
            fields[name] = value[:MAX_FIELD_CHARS]
    return fields, files


Handler = Callable[[PageScope], Response]


class UploadTooLarge(DomainError):
    status_code = 413
    code = "request_too_large"


async def run_page(
    request: Request,
    handler: Handler,
    *,
    login_required: bool = True,
    max_upload_bytes: int | None = None,
) -> Response:
    """Read and check the request on the event loop, then run ``handler`` in one transaction.

    A file longer than ``max_upload_bytes`` (default 64 KB) reaches the handler one byte
    longer, for it to refuse. A page that accepts large files names its limit: a body declared
    much longer is then refused before it is read (the form parser would spool it to disk).
    """
    runtime: CaRuntime = request.app.state.ca
    locale = page_locale(request)
    try:
        client_of(runtime)
    except PagesUnavailable as error:
        return Response(error.message, status_code=503, media_type="text/plain")
    user = read_user(runtime, request)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    declared = request.headers.get("content-length", "0")
    if (
        request.method == "POST"
        and max_upload_bytes is not None
        and (not declared.isdigit() or int(declared) > max_upload_bytes + FORM_OVERHEAD_BYTES)
    ):
        return message_page(
            request,
            runtime,
            title=N_("The action was refused"),
            error=UploadTooLarge(N_("The file is too large.")),
            status_code=413,
            user=user,
            back_url=request.url.path,
        )
    if request.method == "POST":
        try:
            fields, files = await _read_form(request, max_upload_bytes or MAX_UPLOAD_BYTES)
            assert runtime.csrf is not None
            runtime.csrf.verify(request, fields.get("csrf_token"))
        except CsrfError as error:
            # A stale form (expired cookie, page left open): say so, link back to the page.
            return message_page(
                request,
                runtime,
                title=N_("Form expired"),
                error=error,
                status_code=403,
                user=user,
                back_url=request.url.path,
            )
    if login_required and user is None:
        if request.method == "GET":
            return RedirectResponse(login_location(request), status_code=303)
        return message_page(
            request,
            runtime,
            title=N_("Please sign in again"),
            message=N_("Your session on the certificate pages has ended. Sign in and try again."),
            status_code=401,
            user=None,
            back_url=login_location(request),
        )

    def work() -> Response:
        with transaction(runtime.session_factory) as session:
            if user is not None:
                identity = runtime.directory.find(session, subject_ref=user.sub)
                if identity is None or not identity.active:
                    raise SignInRequired(N_("Your account is not active."))
            return handler(
                PageScope(
                    runtime=runtime,
                    session=session,
                    request=request,
                    user=user,
                    locale=locale,
                    form=fields,
                    files=files,
                )
            )

    try:
        return await run_in_threadpool(work)
    except DomainError as error:
        # The transaction is rolled back; the page says why in the official's language.
        return message_page(
            request,
            runtime,
            title=N_("The action was refused"),
            error=error,
            status_code=error.status_code,
            user=user,
            back_url=request.url.path if request.method == "POST" else f"{PREFIX}/",
        )
