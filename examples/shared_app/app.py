"""A shared app (relying party) of commune-sso, written the way an app developer would.

It depends on FastAPI, Authlib's Starlette client and joserfc only, never on commune-sso's
code: copy what you need. What it shows, in the order of the README:

1. discovery: every endpoint comes from ``<issuer>/.well-known/openid-configuration``;
2. sign-in with the authorization code flow and PKCE S256 (``/login``, ``/auth/callback``);
   Authlib checks the state, the nonce and the ID token (signature against the JWKS, iss,
   aud, exp);
3. server-side sessions: the browser holds a random id only, the session is kept here and
   indexed by the provider's session id (``sid`` of the ID token);
4. sign-out at the provider (RP-Initiated Logout 1.0: ``/logout`` → end_session_endpoint with
   ``id_token_hint`` and ``post_logout_redirect_uri`` → ``/logged-out``);
5. being signed out by the provider when the official signs out elsewhere or is disabled:
   OpenID Back-Channel Logout 1.0 (``POST /backchannel-logout``, a signed logout token) and
   Front-Channel Logout 1.0 (``GET /frontchannel-logout`` in an iframe of the provider's page).

The session store lives in this process's memory: enough for a demo and for one worker. A real
app with several workers keeps it where they all see it (its database, Redis).
"""

from __future__ import annotations

import html
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# How old a logout token may be (its iat) and how far our clock may lag the provider's.
LOGOUT_TOKEN_MAX_AGE = 300
CLOCK_SKEW = 60


@dataclass(frozen=True)
class Settings:
    """What the provider's administrators give you when they register your app
    (``commune-sso client add``), and where your app runs."""

    issuer: str
    client_id: str
    client_secret: str
    base_url: str = "http://127.0.0.1:8001"
    host: str = "127.0.0.1"
    port: int = 8001
    name: str = "Ứng dụng mẫu"
    # Cookies are per host, not per port: two apps on 127.0.0.1 need two cookie names.
    cookie_name: str = "shared_app_session"
    scope: str = "openid profile email"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """SHARED_APP_ISSUER, _CLIENT_ID, _CLIENT_SECRET (required), _BASE_URL, _HOST, _PORT,
        _NAME, _COOKIE_NAME (optional)."""
        port = int(environ.get("SHARED_APP_PORT", "8001"))
        return cls(
            issuer=environ.get("SHARED_APP_ISSUER", "http://127.0.0.1:8000").rstrip("/"),
            client_id=environ.get("SHARED_APP_CLIENT_ID", "demo-shared-app"),
            client_secret=environ["SHARED_APP_CLIENT_SECRET"],
            base_url=environ.get("SHARED_APP_BASE_URL", f"http://127.0.0.1:{port}").rstrip("/"),
            host=environ.get("SHARED_APP_HOST", "127.0.0.1"),
            port=port,
            name=environ.get("SHARED_APP_NAME", cls.name),
            cookie_name=environ.get("SHARED_APP_COOKIE_NAME", cls.cookie_name),
        )

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


# --- Server-side sessions, indexed by the provider's sid -------------------------------------


@dataclass
class SessionStore:
    """Sessions by random id; ``by_sid`` finds the ones a logout notice names."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_sid: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, key: str | None) -> dict[str, Any] | None:
        with self.lock:
            data = self.sessions.get(key) if key else None
            return dict(data) if data is not None else None

    def save(self, key: str, data: dict[str, Any], *, existed: bool) -> bool:
        """Store ``data``; refused (False) when the session existed at the start of the request
        but was ended meanwhile by a logout notice: a slow request must not bring it back."""
        with self.lock:
            if existed and key not in self.sessions:
                return False
            self.sessions[key] = dict(data)
            sid = (data.get("user") or {}).get("sid")
            if sid:
                self.by_sid.setdefault(sid, set()).add(key)
            return True

    def delete(self, key: str) -> None:
        with self.lock:
            self.sessions.pop(key, None)

    def end_by_sid(self, sid: str) -> int:
        with self.lock:
            keys = self.by_sid.pop(sid, set())
            return sum(self.sessions.pop(key, None) is not None for key in keys)

    def end_by_sub(self, sub: str) -> int:
        with self.lock:
            keys = [k for k, v in self.sessions.items() if (v.get("user") or {}).get("sub") == sub]
            for key in keys:
                del self.sessions[key]
            return len(keys)


class ServerSideSessionMiddleware:
    """``request.session`` (which Authlib uses for state, nonce and PKCE verifier) backed by
    :class:`SessionStore`; the cookie carries only a random id. Setting ``session["_rotate"]``
    gives the session a new id (after sign-in: no session fixation)."""

    def __init__(self, app: ASGIApp, *, store: SessionStore, cookie_name: str, secure: bool):
        self.app, self.store, self.cookie_name, self.secure = app, store, cookie_name, secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = HTTPConnection(scope).cookies.get(self.cookie_name)
        loaded = self.store.load(key)
        existed = loaded is not None
        scope["session"] = loaded or {}

        async def send_with_cookie(message: Message) -> None:
            nonlocal key, existed
            if message["type"] == "http.response.start":
                session: dict[str, Any] = scope["session"]
                headers = MutableHeaders(scope=message)
                if session.pop("_rotate", False) and key is not None:
                    self.store.delete(key)
                    key, existed = None, False
                if session:
                    new = key is None or not existed
                    key = secrets.token_urlsafe(32) if new else key
                    assert key is not None
                    if self.store.save(key, session, existed=existed) and new:
                        headers.append("Set-Cookie", self._cookie(key, max_age=None))
                elif key is not None:
                    self.store.delete(key)
                    headers.append("Set-Cookie", self._cookie("", max_age=0))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _cookie(self, value: str, *, max_age: int | None) -> str:
        parts = [f"{self.cookie_name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


# --- Logout token validation (Back-Channel Logout 1.0 §2.6) ----------------------------------


class InvalidLogoutToken(Exception):
    pass


@dataclass
class ReplayCache:
    """jti values seen, kept until their token could no longer be accepted anyway."""

    seen: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first_use(self, jti: str, until: float) -> bool:
        now = time.time()
        with self.lock:
            for old in [k for k, t in self.seen.items() if t < now]:
                del self.seen[old]
            if jti in self.seen:
                return False
            self.seen[jti] = until
            return True


def check_logout_claims(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, now: float
) -> None:
    """§2.6 steps 3-7 (the signature, step 2, is checked before)."""
    if claims.get("iss") != issuer:
        raise InvalidLogoutToken("wrong iss")
    audience = claims.get("aud")
    if client_id not in (audience if isinstance(audience, list) else [audience]):
        raise InvalidLogoutToken("wrong aud")
    iat = claims.get("iat")
    if not isinstance(iat, int) or iat > now + CLOCK_SKEW or iat < now - LOGOUT_TOKEN_MAX_AGE:
        raise InvalidLogoutToken("iat missing or out of range")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, int) or exp < now - CLOCK_SKEW):
        raise InvalidLogoutToken("expired")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise InvalidLogoutToken("not a back-channel logout event")
    if not (isinstance(claims.get("sid"), str) or isinstance(claims.get("sub"), str)):
        raise InvalidLogoutToken("neither sid nor sub")
    if "nonce" in claims:
        raise InvalidLogoutToken("a logout token never carries a nonce")
    if not isinstance(claims.get("jti"), str):
        raise InvalidLogoutToken("no jti")


# --- Pages -------------------------------------------------------------------------------------


class NamedApp(Protocol):
    @property
    def name(self) -> str: ...


def page(settings: NamedApp, title: str, body: str, *, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} – {html.escape(settings.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; background: #f4f6f8; color: #1b1f23; }}
header {{ background: #0b5394; color: #fff; padding: 1rem 1.5rem; font-size: 1.25rem; }}
main {{ max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }}
.card {{ background: #fff; border-radius: 8px; padding: 1.5rem; box-shadow: 0 1px 3px #0002; }}
th {{ text-align: left; padding-right: 1rem; }}
a.button {{ display: inline-block; background: #0b5394; color: #fff; padding: .6rem 1.2rem;
  border-radius: 6px; text-decoration: none; margin-top: .5rem; }}
</style></head>
<body><header>{html.escape(settings.name)}</header>
<main><div class="card"><h1>{html.escape(title)}</h1>{body}</div></main></body></html>""",
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


SIGNED_OUT_BODY = (
    '<p id="status">Chưa đăng nhập / Not signed in</p>'
    '<a class="button" id="login" href="/login">Đăng nhập / Sign in</a>'
)


# Attributes commune-sso may release (by CAS and SAML alike), with the labels the app shows.
ATTRIBUTE_LABELS = {
    "name": "Họ và tên / Name",
    "email": "Thư điện tử / E-mail",
    "unit_code": "Mã đơn vị / Unit code",
    "unit_name": "Đơn vị / Unit",
    "province_code": "Mã tỉnh / Province code",
    "province_name": "Tỉnh / Province",
    "agency": "Cơ quan / Agency",
    "position": "Chức vụ / Position",
}


def attribute_rows(attributes: Mapping[str, Any], *, skip: frozenset[str] = frozenset()) -> str:
    """The released attributes as a table (values may be lists: SAML and CAS allow several)."""
    rows = []
    for key, value in attributes.items():
        if key in skip:
            continue
        shown = ", ".join(value) if isinstance(value, list) else str(value)
        rows.append(
            f'<tr><th scope="row">{html.escape(ATTRIBUTE_LABELS.get(key, key))}</th>'
            f'<td data-attribute="{html.escape(key)}">{html.escape(shown)}</td></tr>'
        )
    if not rows:
        return "<p>Không có thuộc tính nào được cung cấp / No attributes released.</p>"
    return '<table id="attributes">' + "".join(rows) + "</table>"


def app_with_sessions(name: str, store: SessionStore, cookie_name: str, base_url: str) -> FastAPI:
    """The app, its sessions kept in ``store`` (also ``app.state.sessions``)."""
    app = FastAPI(title=name, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        ServerSideSessionMiddleware,
        store=store,
        cookie_name=cookie_name,
        secure=base_url.startswith("https://"),
    )
    app.state.sessions = store
    return app


def create_app(settings: Settings) -> FastAPI:
    store = SessionStore()
    replays = ReplayCache()
    oauth = OAuth()
    # Discovery: endpoints, JWKS and the issuer come from the provider's metadata.
    oauth.register(
        name="sso",
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=f"{settings.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": settings.scope, "code_challenge_method": "S256"},
    )
    sso = oauth.create_client("sso")
    assert sso is not None

    app = app_with_sessions(settings.name, store, settings.cookie_name, settings.base_url)

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        user = request.session.get("user")
        if user:
            name = html.escape(user.get("name") or user["sub"])
            return page(
                settings,
                settings.name,
                f'<p id="status">Đăng nhập với tên / Signed in as <strong>{name}</strong></p>'
                '<a class="button" id="logout" href="/logout">Đăng xuất / Sign out</a>',
            )
        return page(
            settings,
            settings.name,
            SIGNED_OUT_BODY,
        )

    @app.get("/login")
    async def login(request: Request) -> Response:
        # Authlib makes state, nonce and the PKCE verifier, keeps them in the session and
        # sends code_challenge with code_challenge_method=S256.
        response: Response = await sso.authorize_redirect(request, settings.url("/auth/callback"))
        return response

    @app.get("/auth/callback")
    async def callback(request: Request) -> Response:
        try:
            # Code → tokens; the ID token's signature (JWKS), iss, aud, exp and nonce checked.
            token = await sso.authorize_access_token(request)
        except OAuthError as error:
            return page(
                settings,
                "Không đăng nhập được / Sign-in failed",
                f"<p>{html.escape(error.error or 'error')}</p>",
                status_code=400,
            )
        claims = token.get("userinfo") or {}
        if claims.get("iss") != settings.issuer or "sid" not in claims:
            return page(settings, "Sign-in failed", "<p>Unexpected ID token.</p>", status_code=400)
        request.session.clear()
        request.session.update(
            {
                "_rotate": True,
                "user": {
                    "sub": claims["sub"],
                    "sid": claims["sid"],
                    "name": claims.get("name"),
                    "id_token": token["id_token"],
                },
            }
        )
        return RedirectResponse("/", status_code=303)

    @app.get("/logout")
    async def logout(request: Request) -> Response:
        user = request.session.pop("user", None)
        request.session.clear()
        if not user:
            return RedirectResponse("/", status_code=303)
        # RP-Initiated Logout 1.0: the provider ends the SSO session and tells the other apps.
        logout = await sso.create_logout_url(
            post_logout_redirect_uri=settings.url("/logged-out"),
            id_token_hint=user["id_token"],
        )
        return RedirectResponse(logout["url"], status_code=303)

    @app.get("/logged-out", response_class=HTMLResponse)
    async def logged_out(request: Request) -> Response:
        return page(
            settings,
            "Đã đăng xuất / Signed out",
            SIGNED_OUT_BODY,
        )

    async def verify_logout_token(logout_token: str) -> dict[str, Any]:
        metadata = await sso.load_server_metadata()
        algorithms = metadata.get("id_token_signing_alg_values_supported", ["RS256"])
        for force in (False, True):  # an unknown kid: the provider rotated keys, refetch once
            keys = KeySet.import_key_set(await sso.fetch_jwk_set(force=force))
            try:
                decoded = jwt.decode(logout_token, keys, algorithms=algorithms)
            except ValueError:
                if force:
                    raise InvalidLogoutToken("no key for the token's kid") from None
                continue
            except JoseError as error:
                raise InvalidLogoutToken(f"bad token: {error.error}") from None
            typ = decoded.header.get("typ")
            if typ is not None and typ.lower() not in ("logout+jwt", "application/logout+jwt"):
                raise InvalidLogoutToken("wrong typ")
            claims = dict(decoded.claims)
            check_logout_claims(
                claims, issuer=metadata["issuer"], client_id=settings.client_id, now=time.time()
            )
            return claims
        raise InvalidLogoutToken("unreachable")

    @app.post("/backchannel-logout")
    async def backchannel_logout(request: Request) -> Response:
        """OpenID Back-Channel Logout 1.0 §2.5-2.8: 200 when done, 400 on a bad token."""
        headers = {"Cache-Control": "no-store"}
        form = await request.form()
        logout_token = form.get("logout_token")
        try:
            if not isinstance(logout_token, str) or not logout_token:
                raise InvalidLogoutToken("logout_token missing")
            claims = await verify_logout_token(logout_token)
            if not replays.first_use(claims["jti"], time.time() + LOGOUT_TOKEN_MAX_AGE * 2):
                raise InvalidLogoutToken("replayed jti")
        except (InvalidLogoutToken, JoseError, ValueError) as error:
            return JSONResponse(
                {"error": "invalid_request", "error_description": str(error)},
                status_code=400,
                headers=headers,
            )
        if isinstance(claims.get("sid"), str):
            store.end_by_sid(claims["sid"])
        else:
            store.end_by_sub(claims["sub"])
        return Response(status_code=200, headers=headers)

    @app.get("/frontchannel-logout", response_class=HTMLResponse)
    async def frontchannel_logout(request: Request) -> Response:
        """OpenID Front-Channel Logout 1.0 §2-3: loaded in a hidden iframe of the provider's
        logged-out page. With iss and sid, end the sessions of that sid; without, the session
        of the cookie."""
        iss, sid = request.query_params.get("iss"), request.query_params.get("sid")
        if sid is not None and iss != settings.issuer:
            return HTMLResponse("wrong issuer", status_code=400)
        if sid:
            store.end_by_sid(sid)
        else:
            request.session.clear()
        issuer_origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.issuer))
        return HTMLResponse(
            "<!doctype html><title>Signed out</title>",
            headers={
                "Cache-Control": "no-cache, no-store",
                "Pragma": "no-cache",
                # Only the provider's logout page may frame this.
                "Content-Security-Policy": f"frame-ancestors {issuer_origin}",
            },
        )

    return app
