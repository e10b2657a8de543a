"""OpenID Front-Channel Logout 1.0: the iframes of the logged-out page.

§4: after RP-initiated logout the OP's page embeds, in hidden iframes, the
``frontchannel_logout_uri`` of every app that took part in the session, with ``iss`` and
``sid`` when the app registered ``frontchannel_logout_session_required`` (§2). The browser
loads them with the apps' own cookies, so each app can end its local session.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from sqlalchemy.orm import Session

from core.web.templating import CONTENT_SECURITY_POLICY
from idp.logout.participants import clients_by_session
from idp.models import BrowserSession

# Seconds the page with the iframes stays before going on to post_logout_redirect_uri. The
# Refresh timer starts once the page and its frames have loaded (HTML "shared declarative
# refresh steps"), so the wait only covers frames that are slow to answer.
REDIRECT_DELAY = 1
# Only plain host names and addresses go into the CSP header (registration validated the URI;
# this keeps a stray ";" or space from ever reaching the header).
SAFE_HOST = re.compile(r"[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]")


def logout_urls(session: Session, *, issuer: str, browser_session: BrowserSession) -> list[str]:
    """The iframe URLs for the apps of ``browser_session``, in a stable order."""
    urls = []
    for client in clients_by_session(session, [browser_session]).get(browser_session.id, []):
        uri = client.frontchannel_logout_uri
        if not uri:
            continue
        if client.frontchannel_logout_session_required:
            uri = add_params_to_uri(uri, [("iss", issuer), ("sid", browser_session.sid)])
        urls.append(uri)
    return urls


def frame_origins(urls: Sequence[str]) -> list[str]:
    origins = []
    for url in urls:
        parts = urlsplit(url)
        try:
            hostname, port = parts.hostname, parts.port
        except ValueError:
            continue
        if parts.scheme not in ("http", "https") or not hostname:
            continue
        host = f"[{hostname}]" if ":" in hostname else hostname
        if not SAFE_HOST.fullmatch(host):
            continue
        origin = f"{parts.scheme}://{host}{f':{port}' if port else ''}"
        if origin not in origins:
            origins.append(origin)
    return origins


def page_headers(urls: Sequence[str], continue_url: str | None) -> dict[str, str]:
    """Headers for the logged-out page: CSP ``frame-src`` for the apps' origins (our default
    policy allows frames from ourselves only) and, when the app asked to be sent back, a
    ``Refresh`` to ``post_logout_redirect_uri`` once the frames had their chance to load."""
    headers: dict[str, str] = {}
    origins = frame_origins(urls)
    if origins:
        # 'self': a SAML SP answers our LogoutRequest by sending its iframe back to our SLO
        # endpoint with a LogoutResponse (SAML Profiles §4.4.3.4).
        headers["Content-Security-Policy"] = (
            f"{CONTENT_SECURITY_POLICY}; frame-src 'self' {' '.join(origins)}"
        )
    if continue_url:
        headers["Refresh"] = f"{REDIRECT_DELAY}; url={continue_url}"
    return headers
