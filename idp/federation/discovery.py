"""An upstream provider's discovery document (OpenID Connect Discovery 1.0 §4), fetched when
the provider is added and checked before anything of it is stored."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.errors import DomainError
from core.web.i18n import N_
from core.web.json_body import JsonBodyError, parse_json_body
from idp.federation.document_cache import UpstreamDocumentCache

WELL_KNOWN = "/.well-known/openid-configuration"
FETCH_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_DOCUMENT_BYTES = 256 * 1024
# The ID token algorithms we verify (RFC 8725 §3.1: an allowlist, never "none" or HMAC with a
# secret the upstream shares with other clients).
ALLOWED_ID_TOKEN_ALGS = ("RS256", "PS256", "ES256", "EdDSA")
LOOPBACK_NAMES = ("localhost",)


class DiscoveryFailed(DomainError):
    """The issuer's discovery document cannot be fetched or does not describe a usable
    provider; the message says what is wrong."""


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    id_token_algs: list[str]
    token_endpoint_auth_methods: list[str]


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_url(value: object, *, what: str) -> str:
    """An absolute https URL without fragment; plain http only on a loopback address (a
    provider on the same host, as in development and tests)."""
    if not isinstance(value, str) or not value:
        raise DiscoveryFailed(N_("The discovery document has no %(what)s."), what=what)
    parts = urlsplit(value)
    host = parts.hostname or ""
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))
    if not secure or not host or parts.fragment or parts.username or parts.password:
        raise DiscoveryFailed(
            N_("The %(what)s %(url)s is not an https address."), what=what, url=value[:200]
        )
    return value


def fetch_json(url: str, http: httpx.Client) -> tuple[Any, str | None]:
    """GET a JSON document of bounded size and depth (PITFALLS: json.loads recurses); with
    the response's Cache-Control header, for :mod:`idp.federation.document_cache`."""
    try:
        response = http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise DiscoveryFailed(
            N_("%(url)s cannot be reached: %(error)s"), url=url, error=type(error).__name__
        ) from None
    if response.status_code != 200:
        raise DiscoveryFailed(
            N_("%(url)s answered HTTP %(status)s."), url=url, status=response.status_code
        )
    try:
        document = parse_json_body(response.content, max_bytes=MAX_DOCUMENT_BYTES)
    except JsonBodyError:
        raise DiscoveryFailed(N_("%(url)s did not answer with a JSON document."), url=url) from None
    return document, response.headers.get("cache-control")


def _string_list(document: dict[str, Any], name: str) -> list[str] | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DiscoveryFailed(N_("%(name)s in the discovery document is not a list."), name=name)
    return list(value)


def metadata_from(document: Any, *, issuer: str) -> ProviderMetadata:
    """§4.3: the ``issuer`` in the document must be exactly the one asked for."""
    if not isinstance(document, dict):
        raise DiscoveryFailed(N_("The discovery document is not a JSON object."))
    if document.get("issuer") != issuer:
        raise DiscoveryFailed(
            N_("The discovery document names another issuer (%(found)s) than %(issuer)s."),
            found=str(document.get("issuer"))[:200],
            issuer=issuer,
        )
    response_types = _string_list(document, "response_types_supported") or []
    if "code" not in response_types:
        raise DiscoveryFailed(N_("The provider does not offer the authorization code flow."))
    # RFC 8414 §2: absent means the provider did not say; a list without S256 means no.
    challenge_methods = _string_list(document, "code_challenge_methods_supported")
    if challenge_methods is not None and "S256" not in challenge_methods:
        raise DiscoveryFailed(N_("The provider does not offer PKCE with S256."))
    advertised = _string_list(document, "id_token_signing_alg_values_supported") or []
    algs = [alg for alg in ALLOWED_ID_TOKEN_ALGS if alg in advertised]
    if not algs:
        raise DiscoveryFailed(
            N_("The provider signs ID tokens with none of %(algs)s."),
            algs=", ".join(ALLOWED_ID_TOKEN_ALGS),
        )
    end_session = document.get("end_session_endpoint")
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=checked_url(
            document.get("authorization_endpoint"), what="authorization_endpoint"
        ),
        token_endpoint=checked_url(document.get("token_endpoint"), what="token_endpoint"),
        jwks_uri=checked_url(document.get("jwks_uri"), what="jwks_uri"),
        end_session_endpoint=(
            checked_url(end_session, what="end_session_endpoint") if end_session else None
        ),
        id_token_algs=algs,
        # OIDC Discovery §3: absent means client_secret_basic.
        token_endpoint_auth_methods=_string_list(document, "token_endpoint_auth_methods_supported")
        or ["client_secret_basic"],
    )


def discover(issuer: str, *, cache: UpstreamDocumentCache | None = None) -> ProviderMetadata:
    """Fetch ``<issuer>/.well-known/openid-configuration`` and check it (§4.1, §4.3); with a
    ``cache``, a document that passed the checks within its max-age is not fetched again."""
    issuer = checked_url(issuer, what="issuer")
    if urlsplit(issuer).query:
        raise DiscoveryFailed(N_("An issuer has no query part."))
    url = issuer.rstrip("/") + WELL_KNOWN
    kept = cache.fresh(url) if cache is not None else None
    if kept is not None:
        return metadata_from(kept, issuer=issuer)
    with httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False) as http:
        document, cache_control = fetch_json(url, http)
    metadata = metadata_from(document, issuer=issuer)
    if cache is not None:
        cache.keep(url, document, cache_control=cache_control)
    return metadata
