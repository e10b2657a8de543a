"""The client certificate our own reverse proxy verified in the TLS handshake and forwards.

TLS ends at the proxy (nginx, HAProxy, a load balancer), so the certificate an official or an
app presented reaches us only as a request header the proxy fills in
(COMMUNE_SSO_CLIENT_CERTIFICATE_HEADER). Anyone can send a header of that name, so it is read
only when the TCP peer is one of our trusted proxies (COMMUNE_SSO_TRUSTED_PROXIES), exactly as
:mod:`core.web.client_address` reads the forwarded client address; from any other peer it is
ignored. The proxy must also overwrite (never pass through) the header a client sends: with
nginx, ``proxy_set_header`` does.

Accepted encodings, as proxies write them:

* nginx ``$ssl_client_escaped_cert``: the PEM, URL-escaped (``-----BEGIN%20CERTIFICATE...``);
  AWS ALB's ``X-Amzn-Mtls-Clientcert`` is the same;
* the PEM itself, also with nginx's deprecated ``$ssl_client_cert`` tab-indented lines;
* base64 DER (Traefik, HAProxy ``%[ssl_c_der,base64]``), also RFC 9440 ``Client-Cert`` byte
  sequence syntax (``:base64:``).

An empty header (nginx sends "" when no certificate was presented) means no certificate.
What the certificate is worth (which CA, revoked or not) is for the caller to decide.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.datastructures import Headers
from starlette.types import Scope

from core.web.client_address import IPNetwork, is_trusted_proxy

if TYPE_CHECKING:  # core.settings imports this module's neighbours for its types
    from core.settings import Settings

# A certificate chain of a few kilobytes is usual; anything far larger is not one certificate.
MAX_HEADER_LENGTH = 16384
_PEM_BODY = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


class MalformedClientCertificate(ValueError):
    """The trusted proxy forwarded something that is not a certificate (a proxy misconfigured)."""


def parse_forwarded_certificate(value: str) -> x509.Certificate | None:
    """The certificate in a header value written by a proxy; None when the value is empty.

    Raises :class:`MalformedClientCertificate` for anything else that is not a certificate.
    """
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_HEADER_LENGTH:
        raise MalformedClientCertificate("header too long")
    if "%" in text:
        text = unquote(text)
    pem = _PEM_BODY.search(text)
    if pem is not None:
        text = pem.group(1)
    elif text.startswith(":") and text.endswith(":"):  # RFC 9440 §2.1: sf-binary
        text = text[1:-1]
    try:
        der = base64.b64decode(_WHITESPACE.sub("", text), validate=True)
        return x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError) as error:
        raise MalformedClientCertificate(str(error)) from None


def forwarded_certificate_of(
    peer: str | None,
    headers: Headers,
    *,
    header: str | None,
    trusted_proxies: tuple[IPNetwork, ...],
) -> x509.Certificate | None:
    """The certificate in ``header`` when ``peer`` (the TCP peer) is a trusted proxy; None
    when the feature is off, the peer is anyone else, or no certificate was presented."""
    if not header or not is_trusted_proxy(peer, trusted_proxies):
        return None
    values = headers.getlist(header)
    if len(values) != 1:  # none, or a client's copy beside the proxy's: believe neither
        return None
    return parse_forwarded_certificate(values[0])


def configured_client_certificate(scope: Scope, settings: Settings) -> x509.Certificate | None:
    """:func:`forwarded_certificate_of` for an ASGI scope, as configured
    (COMMUNE_SSO_CLIENT_CERTIFICATE_HEADER, COMMUNE_SSO_TRUSTED_PROXIES)."""
    if not settings.client_certificate_header:
        return None
    client = scope.get("client")
    return forwarded_certificate_of(
        client[0] if client else None,
        Headers(scope=scope),
        header=settings.client_certificate_header,
        trusted_proxies=settings.trusted_proxies,
    )


def presented_certificate(scope: Scope, settings: Settings) -> x509.Certificate | None:
    """:func:`configured_client_certificate`, with a header that is no certificate read as
    none: for callers that only check a token's binding (RFC 8705 §3), which then fails."""
    try:
        return configured_client_certificate(scope, settings)
    except MalformedClientCertificate:
        return None


def certificate_thumbprint(certificate: x509.Certificate) -> str:
    """``x5t#S256``: base64url (no padding) SHA-256 of the DER certificate (RFC 8705 §3.1)."""
    digest = hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def has_thumbprint(certificate: x509.Certificate | None, thumbprint: object) -> bool:
    """Whether ``certificate`` is the one ``thumbprint`` (an ``x5t#S256``) names (RFC 8705
    §3.2); False without a certificate or a thumbprint."""
    if certificate is None or not isinstance(thumbprint, str):
        return False
    return hmac.compare_digest(certificate_thumbprint(certificate), thumbprint)
