"""The issuer and the address ``serve`` listens on must agree.

Every URL the service hands out (discovery, the CA pages' sign-in, the CRL and OCSP URLs written
into certificates) is built from the issuer. An issuer that points at a port nobody serves makes
all of them dead links, some of them signed into certificates for years; so without a configured
issuer the issuer follows ``--host``/``--port``, and a configured one that cannot be the listener
is refused unless a reverse proxy in front is declared (``COMMUNE_SSO_BEHIND_PROXY``).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from core.settings import Settings

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 (names, not a bind)
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in WILDCARD_HOSTS


def is_loopback(host: str) -> bool:
    """RFC 6761 §6.3: "localhost" and names under it are the loopback; so are 127/8 and ::1."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def issuer_for_listener(host: str, port: int) -> str:
    """The issuer when none is configured: this listener's own URL. On a wildcard address the
    public name is unknown, so the loopback address stands in (right for a local test only)."""
    name = "127.0.0.1" if is_wildcard(host) else host.strip("[]")
    if ":" in name:
        name = f"[{name}]"  # RFC 3986 §3.2.2: an IPv6 literal in a URL is bracketed
    return f"http://{name}:{port}"


def listener_mismatch(settings: Settings, *, port: int) -> str | None:
    """Why a configured issuer cannot be served by a listener on ``port``, or None.

    Only what is certain is refused: a proxy may forward any public name to any port, but
    nothing forwards a loopback URL, and uvicorn here speaks plain http, so an https issuer
    needs a TLS-terminating proxy in front.
    """
    if settings.behind_proxy:
        return None
    parts = urlsplit(settings.issuer)
    if parts.scheme == "https":
        return (
            f"the issuer {settings.issuer} is https but serve listens with plain http on port "
            f"{port}; put a TLS-terminating proxy in front and set COMMUNE_SSO_BEHIND_PROXY=true"
        )
    try:
        issuer_port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return f"the issuer {settings.issuer} has an invalid port"
    if is_loopback(parts.hostname or "") and issuer_port != port:
        return (
            f"the issuer {settings.issuer} names port {issuer_port} but serve listens on port "
            f"{port}; set COMMUNE_SSO_ISSUER to the URL served (or unset it to follow --port), "
            "or COMMUNE_SSO_BEHIND_PROXY=true if a proxy serves the issuer URL"
        )
    return None
