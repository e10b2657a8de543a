"""The demo shared app again, for an older app that speaks CAS 3.0 instead of OpenID Connect.

Like ``app.py`` it never imports commune-sso's code; the CAS side is python-cas
(``pip install python-cas``), the client most Python CAS apps use. What it shows:

1. sign-in: ``/login`` sends the browser to ``<cas>/login?service=<service URL>``; the provider
   sends it back to the service URL with ``?ticket=ST-...``, which is validated once, server to
   server, at ``<cas>/p3/serviceValidate`` (python-cas ``verify_ticket``); the response carries
   the username and the attributes the administrators release to this service;
2. server-side sessions (the same store as the OIDC app), indexed by the service ticket: the
   ticket is what a single-logout request names (CAS 3.0 §2.3.3, ``SessionIndex``);
3. sign-out: ``/logout`` ends the local session and sends the browser to ``<cas>/logout``,
   which ends the official's session everywhere (OIDC and CAS apps alike);
4. single logout: when the official signs out anywhere else, the provider POSTs a
   ``logoutRequest`` form field (a SAML ``LogoutRequest``, CAS 3.0 Appendix C) to the service
   URL; the session whose ticket is its ``SessionIndex`` ends.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import urlsplit

from cas import CASClient
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from lxml import etree
from starlette.concurrency import run_in_threadpool

from examples.shared_app.app import (
    SIGNED_OUT_BODY,
    SessionStore,
    app_with_sessions,
    attribute_rows,
    page,
)

SAML_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
# What CAS 3.0 itself adds to every validation (§2.5.2): about the sign-in, not the official.
PROTOCOL_ATTRIBUTES = frozenset(
    {"authenticationDate", "isFromNewLogin", "longTermAuthenticationRequestTokenUsed"}
)
# A logoutRequest is a few hundred bytes; anything much bigger is not one.
MAX_LOGOUT_REQUEST = 8192


@dataclass(frozen=True)
class CasSettings:
    """What the provider's administrators register for your app (``commune-sso cas
    add-service --url <service URL>``, or the admin pages), and where your app runs."""

    # The provider's CAS prefix, e.g. http://127.0.0.1:8000/cas/
    cas_url: str
    # The service URL registered: where tickets arrive and logout requests are POSTed.
    service_url: str
    host: str = "127.0.0.1"
    name: str = "Ứng dụng mẫu (CAS)"
    # Cookies are per host, not per port: two apps on 127.0.0.1 need two cookie names.
    cookie_name: str = "shared_cas_app_session"

    def __post_init__(self) -> None:
        # python-cas joins "login", "p3/serviceValidate" and "logout" to it: keep the slash.
        if not self.cas_url.endswith("/"):
            object.__setattr__(self, "cas_url", self.cas_url + "/")

    @property
    def base_url(self) -> str:
        return "{0.scheme}://{0.netloc}".format(urlsplit(self.service_url))

    @property
    def port(self) -> int:
        parts = urlsplit(self.service_url)
        return parts.port or (443 if parts.scheme == "https" else 80)


class InvalidLogoutRequest(Exception):
    pass


# The request comes from whoever POSTs to the service URL: no DTD, no entities, no network.
# (python-cas's own get_saml_slos parses it with lxml's default parser, so it is not used.)
_HARDENED_PARSER = etree.XMLParser(
    resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False
)


def session_index_of(logout_request: str) -> str:
    """The ``SessionIndex`` (the service ticket) of a CAS single-logout request."""
    if len(logout_request) > MAX_LOGOUT_REQUEST:
        raise InvalidLogoutRequest("too long")
    try:
        root = etree.fromstring(logout_request.encode(), parser=_HARDENED_PARSER)
    except etree.XMLSyntaxError as error:
        raise InvalidLogoutRequest("not XML") from error
    if root.getroottree().docinfo.doctype:
        raise InvalidLogoutRequest("a document type declaration")
    if root.tag != f"{{{SAML_PROTOCOL}}}LogoutRequest":
        raise InvalidLogoutRequest("not a LogoutRequest")
    indexes = root.findall(f"{{{SAML_PROTOCOL}}}SessionIndex")
    if len(indexes) != 1 or not (indexes[0].text or "").strip():
        raise InvalidLogoutRequest("no single SessionIndex")
    return (indexes[0].text or "").strip()


def create_cas_app(settings: CasSettings) -> FastAPI:
    store = SessionStore()
    cas = CASClient(version=3, service_url=settings.service_url, server_url=settings.cas_url)
    service_path = urlsplit(settings.service_url).path or "/"

    app = app_with_sessions(settings.name, store, settings.cookie_name, settings.base_url)

    def signed_out_page(title: str) -> HTMLResponse:
        return page(settings, title, SIGNED_OUT_BODY)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        user = request.session.get("user")
        if not user:
            return signed_out_page(settings.name)
        name = html.escape(user.get("name") or user["sub"])
        return page(
            settings,
            settings.name,
            f'<p id="status">Đăng nhập với tên / Signed in as <strong>{name}</strong></p>'
            "<h2>Thuộc tính nhận được / Attributes released</h2>"
            f"{attribute_rows(user.get('attributes') or {}, skip=PROTOCOL_ATTRIBUTES)}"
            '<a class="button" id="logout" href="/logout">Đăng xuất / Sign out</a>',
        )

    @app.get("/login")
    async def login() -> Response:
        return RedirectResponse(cas.get_login_url(), status_code=303)

    @app.get(service_path)
    async def service(request: Request) -> Response:
        """Where the provider sends the browser back: with a ticket after sign-in; without one
        after ``/cas/logout?service=...`` (or a gateway sign-in that found no session)."""
        ticket = request.query_params.get("ticket")
        if not ticket:
            return RedirectResponse("/logged-out", status_code=303)
        # One server-to-server request (python-cas uses requests, which blocks).
        username, attributes, _ = await run_in_threadpool(cas.verify_ticket, ticket)
        if not username:
            return page(
                settings,
                "Không đăng nhập được / Sign-in failed",
                "<p>Vé đăng nhập không hợp lệ / The ticket was refused.</p>",
                status_code=400,
            )
        attributes = dict(attributes or {})
        request.session.clear()
        request.session.update(
            {
                "_rotate": True,
                "user": {
                    "sub": username,
                    # The store finds sessions by "sid": for CAS, the ticket (SessionIndex).
                    "sid": ticket,
                    "name": attributes.get("name"),
                    "attributes": attributes,
                },
            }
        )
        return RedirectResponse("/", status_code=303)

    @app.post(service_path)
    async def single_logout(request: Request) -> Response:
        """CAS 3.0 §2.3.3 / Appendix C: end the session the request's SessionIndex names."""
        form = await request.form()
        logout_request = form.get("logoutRequest")
        try:
            if not isinstance(logout_request, str):
                raise InvalidLogoutRequest("logoutRequest missing")
            ticket = session_index_of(logout_request)
        except InvalidLogoutRequest as error:
            return PlainTextResponse(str(error), status_code=400)
        store.end_by_sid(ticket)
        return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})

    @app.get("/logout")
    async def logout(request: Request) -> Response:
        user = request.session.pop("user", None)
        request.session.clear()
        if not user:
            return RedirectResponse("/", status_code=303)
        # The provider ends the SSO session, tells every other app, and sends the browser
        # back to the service URL (a registered one: never an open redirect).
        return RedirectResponse(cas.get_logout_url(settings.service_url), status_code=303)

    @app.get("/logged-out", response_class=HTMLResponse)
    async def logged_out() -> Response:
        return signed_out_page("Đã đăng xuất / Signed out")

    return app
