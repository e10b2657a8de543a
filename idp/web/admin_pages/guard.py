"""Who is using the admin pages, and what they may reach (issue 5, "Admin pages").

Every admin page and every admin action goes through :func:`admin_page` or
:func:`admin_action`: the official is found from the IdP browser session cookie
(:func:`idp.sessions.find_active`, like Keycloak's account console), and
:func:`idp.admin_scope.scope_of` — the one place delegated scope is decided — says what they
administer, on every request. Nothing is remembered between requests, so a role taken away or
an account disabled takes effect at the next click.

Pages that are not theirs answer like missing ones: an admin of unit A asking for an official of
unit B by URL gets the same 404 page as for an official who does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta, timezone
from math import ceil
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core.errors import DomainError, NotFound, PermissionDenied
from core.web.csrf import CsrfError
from core.web.i18n import N_, negotiate_locale
from idp import sessions
from idp.admin_scope import AdminScope, scope_of
from idp.models import Account, BrowserSession
from idp.oauth.http import MAX_FIELD_LENGTH
from idp.request_scope import RequestScope, run_in_request_scope
from idp.web import login as login_pages
from idp.web.site_visitor import show_signed_in

LOGIN_PATH = "/login"
LOGIN_FALLBACK = "/account"
HOME = "/admin"
NOT_AN_ADMIN = N_("Your account does not administer any unit. Ask the IT department for access.")
SYSTEM_ONLY = N_("Only system administrators can use this page.")
NOT_FOUND = N_("There is nothing here, or it is not yours to administer.")
PAGE_SIZE = 50
# Times are shown in Vietnam's time (UTC+7 all year, no daylight saving), as on the account
# pages; the <time> element keeps the exact instant.
DISPLAY_TIMEZONE = timezone(timedelta(hours=7))


@dataclass(frozen=True)
class Admin:
    """The administrator behind this request and their reach, decided afresh for it."""

    account: Account
    reach: AdminScope
    browser_session: BrowserSession

    @property
    def actor(self) -> str:
        # The same actor string as the admin API and ``import-users --as``.
        return f"user:{self.account.username.lower()}"

    @property
    def is_system(self) -> bool:
        return self.reach.system


AdminHandler = Callable[[RequestScope, Admin], Response]


def login_redirect(request: Request) -> Response:
    """Off to the IdP's own login (``/login?next=``), to come back to this page afterwards.

    The login accepts only the local paths its ``DIRECT_LOGIN_NEXT`` pattern allows (no query,
    no scheme, no ``//``: never an open redirect). A path it does not (yet) accept falls back
    to the official's own account page, from where the admin pages are one link away.
    """
    path = request.url.path
    allowed = getattr(login_pages, "DIRECT_LOGIN_NEXT", None)
    target = path if allowed is not None and allowed.fullmatch(path) else LOGIN_FALLBACK
    return RedirectResponse(f"{LOGIN_PATH}?{urlencode({'next': target})}", status_code=303)


def error_page(
    scope: RequestScope | Request,
    *,
    status_code: int,
    title: str,
    message: str | DomainError,
    locale: str | None = None,
    back_url: str | None = None,
) -> Response:
    """``message``: a msgid, or a refusal whose text (parameters filled) is shown."""
    request = scope.request if isinstance(scope, RequestScope) else scope
    runtime = request.app.state.idp
    if locale is None:
        locale = scope.locale() if isinstance(scope, RequestScope) else _locale(request)
    shown = (
        {"message_text": runtime.pages.refusal_text(locale, message)}
        if isinstance(message, DomainError)
        else {"message": message}
    )
    return runtime.pages.render(
        request,
        "error.html",
        {"title": title, **shown, "status_code": status_code, "back_url": back_url},
        locale=locale,
        status_code=status_code,
    )


def _locale(request: Request) -> str:
    return negotiate_locale(
        ui_locales=None,
        query_lang=request.query_params.get("lang"),
        cookie_lang=request.cookies.get("lang"),
    )


def not_found() -> NotFound:
    return NotFound(NOT_FOUND)


def _resolve(scope: RequestScope, *, system_only: bool) -> Admin | Response:
    runtime = scope.runtime
    browser_session = sessions.find_active(
        session=scope.session,
        clock=runtime.clock,
        settings=runtime.settings,
        cookie_value=scope.http.cookies.get(runtime.session_cookie_name),
    )
    if browser_session is None:
        return login_redirect(scope.request)
    reach = scope_of(scope.session, browser_session.account)
    show_signed_in(scope, browser_session.account, reach)
    if not reach.is_admin:
        return error_page(scope, status_code=403, title=N_("Access denied"), message=NOT_AN_ADMIN)
    if system_only and not reach.system:
        return error_page(scope, status_code=403, title=N_("Access denied"), message=SYSTEM_ONLY)
    return Admin(account=browser_session.account, reach=reach, browser_session=browser_session)


def _guarded(handler: AdminHandler, *, system_only: bool) -> Callable[[RequestScope], Response]:
    def run(scope: RequestScope) -> Response:
        admin = _resolve(scope, system_only=system_only)
        if isinstance(admin, Response):
            return admin
        return handler(scope, admin)

    return run


async def _run(
    request: Request,
    handler: AdminHandler,
    *,
    system_only: bool,
    max_field_length: int = MAX_FIELD_LENGTH,
) -> Response:
    try:
        return await run_in_request_scope(
            request,
            _guarded(handler, system_only=system_only),
            max_field_length=max_field_length,
        )
    except NotFound as error:
        # Raised, so the transaction rolled back; rendered here as a page, never as JSON.
        return error_page(
            request,
            status_code=404,
            title=N_("Page not found"),
            message=error,
            back_url=HOME,
        )
    except PermissionDenied as error:
        return error_page(request, status_code=403, title=N_("Access denied"), message=error)
    except CsrfError as error:
        return error_page(request, status_code=403, title=N_("Form expired"), message=error)
    except DomainError as error:
        return error_page(
            request,
            status_code=error.status_code,
            title=N_("Request refused"),
            message=error,
            back_url=HOME,
        )


def admin_page(handler: AdminHandler, *, system_only: bool = False) -> Callable[[Request], Any]:
    """A GET route: the session and the delegated scope are checked before ``handler`` runs."""

    async def route(request: Request) -> Response:
        return await _run(request, handler, system_only=system_only)

    return route


def admin_action(
    handler: AdminHandler, *, system_only: bool = False, max_field_length: int = MAX_FIELD_LENGTH
) -> Callable[[Request], Any]:
    """A POST route: the CSRF token first (a stale one gets the friendly "form expired" page),
    then the same checks as :func:`admin_page`. ``max_field_length``: for a form that carries
    a document (SAML metadata)."""

    async def route(request: Request) -> Response:
        form = await request.form()
        token = form.get("csrf_token")
        try:
            request.app.state.idp.csrf.verify(request, token if isinstance(token, str) else None)
        except CsrfError as error:
            return error_page(request, status_code=403, title=N_("Form expired"), message=error)
        return await _run(
            request, handler, system_only=system_only, max_field_length=max_field_length
        )

    return route


def render(
    scope: RequestScope,
    admin: Admin,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> Response:
    """An admin page, with the area's navigation and who is signed in."""
    page_context: dict[str, Any] = {
        "admin": admin,
        "section": template.split("/")[1],
        "display_timezone": DISPLAY_TIMEZONE,
    }
    page_context.update(context or {})
    return scope.runtime.pages.render(
        scope.request,
        template,
        page_context,
        locale=scope.locale(),
        status_code=status_code,
        remember_locale="lang" in scope.request.query_params,
    )


def form_of(scope: RequestScope) -> dict[str, str]:
    """The submitted form, one value per name (the last one), without the CSRF token."""
    return {k: v for k, v in scope.http.form if k != "csrf_token"}


def form_list(scope: RequestScope, name: str) -> list[str]:
    return [v for k, v in scope.http.form if k == name]


def query_of(scope: RequestScope) -> dict[str, str]:
    return {k: v for k, v in scope.http.query}


def page_number(scope: RequestScope) -> int:
    raw = query_of(scope).get("page", "1")
    return max(1, min(int(raw), 100_000)) if raw.isdigit() else 1


@dataclass(frozen=True)
class Pager:
    """One page of a list, and the links to its neighbours (the filters kept)."""

    page: int
    size: int
    total: int
    params: tuple[tuple[str, str], ...]
    path: str

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.size))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    def url(self, page: int) -> str:
        params = [(k, v) for k, v in self.params if k not in ("page", "lang") and v]
        params.append(("page", str(page)))
        return f"{self.path}?{urlencode(params)}"

    @property
    def previous_url(self) -> str | None:
        return self.url(self.page - 1) if self.page > 1 else None

    @property
    def next_url(self) -> str | None:
        return self.url(self.page + 1) if self.page < self.pages else None


def pager(scope: RequestScope, total: int, *, size: int = PAGE_SIZE) -> Pager:
    return Pager(
        page=page_number(scope),
        size=size,
        total=total,
        params=tuple(scope.http.query),
        path=scope.request.url.path,
    )
