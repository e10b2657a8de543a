"""The demo shared app again, for an older app that speaks SAML 2.0 instead of OpenID Connect.

Like ``app.py`` it never imports commune-sso's code; the SAML side is pysaml2
(``pip install pysaml2``, with the ``xmlsec1`` program), the library most Python SAML service
providers use. What it shows:

1. metadata: ``/saml/metadata`` describes this service provider (entity ID, the
   AssertionConsumerService for HTTP-POST, the SingleLogoutService for HTTP-Redirect, the
   certificate that signs its requests and receives encrypted assertions); the provider's
   administrators register it from that URL (``commune-sso saml add-sp --metadata <URL>``);
2. sign-in, SP-initiated: ``/login`` sends a signed AuthnRequest by HTTP-Redirect to the
   provider's ``/saml/sso``; the browser comes back with a POSTed Response at ``/saml/acs``,
   whose signatures (Response and Assertion), audience, recipient, time window and
   ``InResponseTo`` pysaml2 checks. ``/login?force_authn=true`` asks for the password again,
   ``/login?is_passive=true`` asks for no page at all (NoPassive when not signed in);
3. sign-in, IdP-initiated: a portal link to ``<provider>/saml/sso/initiate?providerId=<our
   entity ID>`` posts an unsolicited Response, accepted when ``allow_unsolicited`` is on;
4. server-side sessions (the same store as the OIDC app), indexed by the assertion's
   ``SessionIndex``: that is what a LogoutRequest from the provider names;
5. sign-out: ``/logout`` sends a signed LogoutRequest to the provider's ``/saml/slo``, which
   ends the official's session everywhere (OIDC, CAS and SAML apps alike) and answers at
   ``/saml/slo`` with a LogoutResponse;
6. single logout: when the official signs out anywhere else, the provider's signed-out page
   loads ``/saml/slo?SAMLRequest=...`` (signed, HTTP-Redirect) in a hidden iframe; the sessions
   with its SessionIndexes end, server-side (the iframe may come without our cookie).
"""

from __future__ import annotations

import html
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.response import StatusNoAuthnContext, StatusNoPassive
from saml2.saml import NAMEID_FORMAT_PERSISTENT, name_id_from_string
from saml2.samlp import STATUS_SUCCESS
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from starlette.concurrency import run_in_threadpool

from examples.shared_app.app import (
    SIGNED_OUT_BODY,
    SessionStore,
    app_with_sessions,
    attribute_rows,
    page,
)

# How long an AuthnRequest we sent may wait for its Response (the official types a password).
OUTSTANDING_LIFETIME = 600
# Where a RelayState may send the browser after sign-in: our own paths only.
SAFE_RELAY_STATE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-_.")
# Shown next to the attributes: how the official signed in (SAML Authn Context §3.4).
AUTHN_CONTEXT_LABELS = {
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport": "Mật khẩu / Password",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken": (
        "Mật khẩu và mã xác thực một lần / Password and one-time code"
    ),
}


class MissingXmlsec(RuntimeError):
    """pysaml2 signs and verifies with the xmlsec1 program."""


@dataclass(frozen=True)
class SamlSettings:
    """Where the provider's metadata is and where this app runs. The entity ID is this app's
    metadata URL, which the administrators register (``commune-sso saml add-sp --metadata``)."""

    # The provider's metadata URL, e.g. http://127.0.0.1:8000/saml/metadata (also its entity ID).
    idp_metadata_url: str
    base_url: str = "http://127.0.0.1:8003"
    # The app's key and certificate (PEM): signs its requests, decrypts encrypted assertions.
    # Made (self-signed) on first start when missing.
    key_file: Path = Path("var/shared-app-saml/sp.key")
    cert_file: Path = Path("var/shared-app-saml/sp.crt")
    host: str = "127.0.0.1"
    name: str = "Ứng dụng mẫu (SAML)"
    # Cookies are per host, not per port: two apps on 127.0.0.1 need two cookie names.
    cookie_name: str = "shared_saml_app_session"
    # IdP-initiated sign-in (a portal link) sends Responses we did not ask for.
    allow_unsolicited: bool = True

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/saml/metadata"

    @property
    def port(self) -> int:
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


def ensure_key_pair(key_file: Path, cert_file: Path, common_name: str) -> None:
    """A self-signed RSA key pair for a demo; a real app uses its own."""
    if key_file.exists() and cert_file.exists():
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def sp_config(settings: SamlSettings, idp_metadata: str | None) -> SPConfig:
    xmlsec = shutil.which("xmlsec1")
    if xmlsec is None:
        raise MissingXmlsec("pysaml2 needs the xmlsec1 program (apt install xmlsec1)")
    config: dict[str, Any] = {
        "entityid": settings.entity_id,
        "name": settings.name,
        "service": {
            "sp": {
                "name": settings.name,
                "endpoints": {
                    "assertion_consumer_service": [(settings.url("/saml/acs"), BINDING_HTTP_POST)],
                    "single_logout_service": [(settings.url("/saml/slo"), BINDING_HTTP_REDIRECT)],
                },
                "authn_requests_signed": True,
                "logout_requests_signed": True,
                # Both signatures required: pysaml2 refuses a Response or Assertion without.
                "want_assertions_signed": True,
                "want_response_signed": True,
                "allow_unsolicited": settings.allow_unsolicited,
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
            }
        },
        "key_file": str(settings.key_file),
        "cert_file": str(settings.cert_file),
        # The same pair decrypts assertions the provider encrypts to our certificate.
        "encryption_keypairs": [
            {"key_file": str(settings.key_file), "cert_file": str(settings.cert_file)}
        ],
        "xmlsec_binary": xmlsec,
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
        "allow_unknown_attributes": True,
        "accepted_time_diff": 60,
    }
    if idp_metadata is not None:
        config["metadata"] = {"inline": [idp_metadata]}
    loaded = SPConfig()
    loaded.load(config)
    return loaded


@dataclass
class OutstandingRequests:
    """IDs of the AuthnRequests we sent, until their Response arrives (kept here, not in the
    cookie: the Response is POSTed from the provider's site, and a SameSite=Lax cookie does not
    come along with another site's POST). One use each: a Response is accepted once."""

    pending: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request_id: str) -> None:
        with self.lock:
            now = time.time()
            for old in [k for k, t in self.pending.items() if t < now]:
                del self.pending[old]
            self.pending[request_id] = now + OUTSTANDING_LIFETIME

    def snapshot(self) -> dict[str, str]:
        """What pysaml2 wants as ``outstanding``: request id → where to go back (unused)."""
        with self.lock:
            now = time.time()
            return {k: "/" for k, t in self.pending.items() if t >= now}

    def spend(self, request_id: str | None) -> None:
        with self.lock:
            if request_id is not None:
                self.pending.pop(request_id, None)


def _safe_relay_state(relay_state: str | None) -> str:
    """A RelayState is ours to interpret: only a path of this app, never another site."""
    if (
        relay_state
        and relay_state.startswith("/")
        and not relay_state.startswith("//")
        and set(relay_state) <= SAFE_RELAY_STATE
    ):
        return relay_state
    return "/"


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("true", "1")


def create_saml_app(settings: SamlSettings) -> FastAPI:
    ensure_key_pair(settings.key_file, settings.cert_file, settings.entity_id)
    store = SessionStore()
    outstanding = OutstandingRequests()
    own_metadata = str(entity_descriptor(sp_config(settings, None))).encode("utf-8")
    clients: list[Saml2Client] = []
    client_lock = threading.Lock()

    def client() -> Saml2Client:
        """pysaml2's client, configured from the provider's metadata, fetched at first use
        (the provider may start after us). Restart the app to take a rotated key."""
        with client_lock:
            if not clients:
                reply = httpx.get(settings.idp_metadata_url, timeout=10.0)
                reply.raise_for_status()
                clients.append(Saml2Client(config=sp_config(settings, reply.text)))
            return clients[0]

    def idp_entity_id() -> str:
        return settings.idp_metadata_url  # the provider's entity ID is its metadata URL

    app = app_with_sessions(settings.name, store, settings.cookie_name, settings.base_url)

    def signed_out_page(title: str, note: str = "") -> HTMLResponse:
        return page(settings, title, note + SIGNED_OUT_BODY)

    def refused(reason: str, *, status_code: int = 400) -> HTMLResponse:
        return page(
            settings,
            "Không đăng nhập được / Sign-in failed",
            f'<p id="error">{html.escape(reason)}</p>'
            '<a class="button" id="home" href="/">Trang chủ / Home</a>',
            status_code=status_code,
        )

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        user = request.session.get("user")
        if not user:
            return signed_out_page(settings.name)
        name = html.escape(user.get("name") or user["name_id"])
        context = user.get("authn_context") or ""
        assertion = ", ".join(
            label
            for label, shown in (
                ("đã ký / signed", user.get("signed")),
                ("đã mã hóa / encrypted", user.get("encrypted")),
            )
            if shown
        )
        return page(
            settings,
            settings.name,
            f'<p id="status">Đăng nhập với tên / Signed in as <strong>{name}</strong></p>'
            "<h2>Thuộc tính nhận được / Attributes released</h2>"
            f"{attribute_rows(user.get('attributes') or {})}"
            "<h2>Phiên đăng nhập / Sign-in</h2><table>"
            '<tr><th scope="row">Cách đăng nhập / Signed in with</th>'
            f'<td id="authn-context" data-class-ref="{html.escape(context)}">'
            f"{html.escape(AUTHN_CONTEXT_LABELS.get(context, context))}</td></tr>"
            '<tr><th scope="row">Xác nhận SAML / SAML assertion</th>'
            f'<td id="assertion" data-signed="{str(bool(user.get("signed"))).lower()}" '
            f'data-encrypted="{str(bool(user.get("encrypted"))).lower()}">'
            f"{assertion}</td></tr></table>"
            '<a class="button" id="logout" href="/logout">Đăng xuất / Sign out</a>',
        )

    @app.get("/saml/metadata")
    async def metadata() -> Response:
        return Response(own_metadata, media_type="application/samlmetadata+xml")

    @app.get("/login")
    async def login(request: Request) -> Response:
        """SP-initiated sign-in (SAML Profiles §4.1.3), the AuthnRequest signed in the query."""
        options: dict[str, Any] = {}
        if _flag(request, "force_authn"):
            options["force_authn"] = "true"
        if _flag(request, "is_passive"):
            options["is_passive"] = "true"
        request_id, info = await run_in_threadpool(
            client().prepare_for_authenticate,
            entityid=idp_entity_id(),
            relay_state=_safe_relay_state(request.query_params.get("next")),
            binding=BINDING_HTTP_REDIRECT,
            sign=True,
            sigalg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
            **options,
        )
        outstanding.add(request_id)
        return RedirectResponse(dict(info["headers"])["Location"], status_code=303)

    @app.post("/saml/acs")
    async def assertion_consumer_service(request: Request) -> Response:
        """Profiles §4.1.4.3: the Response, checked by pysaml2 before anything is read."""
        form = await request.form()
        saml_response, relay_state = form.get("SAMLResponse"), form.get("RelayState")
        if not isinstance(saml_response, str) or not saml_response:
            return refused("Thiếu SAMLResponse / No SAMLResponse.")
        try:
            response = await run_in_threadpool(
                client().parse_authn_request_response,
                saml_response,
                BINDING_HTTP_POST,
                outstanding=outstanding.snapshot(),
            )
        except StatusNoPassive:
            # IsPassive and no session at the provider: we asked not to be shown a page.
            return signed_out_page(
                settings.name,
                '<p id="no-passive" data-status="NoPassive">Bạn chưa đăng nhập ở cổng đăng '
                "nhập một lần / You are not signed in at the single sign-on portal.</p>",
            )
        except StatusNoAuthnContext:
            return refused(
                "Cách đăng nhập yêu cầu không được đáp ứng / The sign-in method asked for "
                "could not be provided (NoAuthnContext)."
            )
        except Exception as error:  # pysaml2 raises many types for a Response it refuses
            return refused(f"Phản hồi bị từ chối / Response refused: {type(error).__name__}")
        if response is None:
            return refused("Phản hồi bị từ chối / Response refused.")
        outstanding.spend(response.in_response_to)
        info = response.session_info()
        attributes = {key: list(values) for key, values in (info["ava"] or {}).items()}
        authn = response.authn_info()
        request.session.clear()
        request.session.update(
            {
                "_rotate": True,
                "user": {
                    "name_id": response.name_id.text,
                    # The NameID as sent, for our LogoutRequest.
                    "name_id_xml": str(response.name_id),
                    # The store finds sessions by "sid": for SAML, the SessionIndex.
                    "sid": info["session_index"],
                    "name": (attributes.get("name") or [None])[0],
                    "attributes": attributes,
                    "authn_context": authn[0][0] if authn else None,
                    # pysaml2 keeps the Response's plain assertions in response.assertion;
                    # one it decrypted is only in the parsed result's own list.
                    "encrypted": not response.response.assertion,
                    "signed": response.assertion.signature is not None,
                },
            }
        )
        return RedirectResponse(
            _safe_relay_state(relay_state if isinstance(relay_state, str) else None),
            status_code=303,
        )

    @app.get("/logout")
    async def logout(request: Request) -> Response:
        """SP-initiated single logout (Profiles §4.4.3): a signed LogoutRequest by Redirect."""
        user = request.session.pop("user", None)
        request.session.clear()
        if not user:
            return RedirectResponse("/", status_code=303)
        saml = client()
        destination = saml.metadata.single_logout_service(
            idp_entity_id(), BINDING_HTTP_REDIRECT, "idpsso"
        )[0]["location"]
        _, logout_request = saml.create_logout_request(
            destination,
            idp_entity_id(),
            name_id=name_id_from_string(user["name_id_xml"]),
            session_indexes=[user["sid"]],
            reason="urn:oasis:names:tc:SAML:2.0:logout:user",
            sign=False,  # HTTP-Redirect signs the query instead (Bindings §3.4.4.1)
        )
        info = saml.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(logout_request),
            destination,
            relay_state=secrets.token_urlsafe(12),
            sign=True,
            sigalg=SIG_RSA_SHA256,
        )
        return RedirectResponse(dict(info["headers"])["Location"], status_code=303)

    @app.get("/saml/slo")
    async def single_logout(request: Request) -> Response:
        """The provider's LogoutResponse (after our /logout) or its LogoutRequest (a logout
        elsewhere, in a hidden iframe), both by HTTP-Redirect and signed in the query."""
        query = request.query_params
        saml = client()
        if "SAMLResponse" in query:
            try:
                answer = await run_in_threadpool(
                    saml.parse_logout_request_response, query["SAMLResponse"], BINDING_HTTP_REDIRECT
                )
            except Exception as error:  # a bad answer still leaves us signed out locally
                return PlainTextResponse(type(error).__name__, status_code=400)
            if answer is None or answer.response.status.status_code.value != STATUS_SUCCESS:
                return PlainTextResponse("logout failed", status_code=400)
            return RedirectResponse("/logged-out", status_code=303)
        if "SAMLRequest" not in query:
            return PlainTextResponse("SAMLRequest missing", status_code=400)
        if "Signature" not in query:
            # pysaml2 verifies a signature that is there but does not require one: we do.
            return PlainTextResponse("unsigned LogoutRequest", status_code=400)
        try:
            # pysaml2 checks the query signature against the provider's metadata.
            message = await run_in_threadpool(
                saml.parse_logout_request,
                query["SAMLRequest"],
                BINDING_HTTP_REDIRECT,
                relay_state=query.get("RelayState"),
                sigalg=query.get("SigAlg"),
                signature=query.get("Signature"),
            )
        except Exception as error:
            return PlainTextResponse(type(error).__name__, status_code=400)
        if message is None:
            return PlainTextResponse("LogoutRequest refused", status_code=400)
        logout_request = message.message
        for index in logout_request.session_index or []:
            store.end_by_sid(index.text)
        logout_response = saml.create_logout_response(
            logout_request, [BINDING_HTTP_REDIRECT], sign=False
        )
        destination = saml.metadata.single_logout_service(
            idp_entity_id(), BINDING_HTTP_REDIRECT, "idpsso"
        )[0]["location"]
        info = saml.apply_binding(
            BINDING_HTTP_REDIRECT,
            str(logout_response),
            destination,
            relay_state=query.get("RelayState", ""),
            response=True,
            sign=True,
            sigalg=SIG_RSA_SHA256,
        )
        return RedirectResponse(
            dict(info["headers"])["Location"],
            status_code=303,
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/logged-out", response_class=HTMLResponse)
    async def logged_out() -> Response:
        return signed_out_page("Đã đăng xuất / Signed out")

    return app
