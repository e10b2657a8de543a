"""Registered relying parties (shared apps) and service clients."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import Any, TypedDict
from urllib.parse import urlsplit

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import Conflict, DomainError, NotFound
from core.opaque_tokens import digest, matches_digest, new_opaque_token
from core.web.i18n import N_
from idp import client_keys, fapi2_profile, token_store
from idp.admin_scope import AdminScope
from idp.authentication_levels import LEVELS
from idp.authentication_levels import UNKNOWN_LEVEL as UNKNOWN_ACR
from idp.claims import SUPPORTED_SCOPES
from idp.models import Client, ClientUnitScope, Unit
from keys.keyring import SUPPORTED_ALGORITHMS

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
PRIVATE_KEY_JWT = "private_key_jwt"  # RFC 7523 §2.2, OIDC Core §9
TLS_CLIENT_AUTH = "tls_client_auth"  # RFC 8705 §2.1: a PKI certificate, matched by subject DN
SELF_SIGNED_TLS_CLIENT_AUTH = "self_signed_tls_client_auth"  # RFC 8705 §2.2: a key in jwks
# mTLS client authentication (RFC 8705, idp/oauth/mutual_tls.py): discovery offers it only
# where a trusted proxy forwards client certificates (COMMUNE_SSO_CLIENT_CERTIFICATE_HEADER).
MTLS_AUTH_METHODS = (TLS_CLIENT_AUTH, SELF_SIGNED_TLS_CLIENT_AUTH)
KEY_AUTH_METHODS = (PRIVATE_KEY_JWT, *MTLS_AUTH_METHODS)
AUTH_METHODS = (*SECRET_AUTH_METHODS, "none", *KEY_AUTH_METHODS)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Stricter than RFC 6749 A.1 (printable ASCII): ids appear in URLs, logs and audit targets.
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._~:/-]{1,64}")
MAX_NAME = 200
MAX_URIS = 20
MAX_SCOPE = 1000
DEFAULT_GRANT_TYPES = ("authorization_code", "refresh_token")
DEFAULT_SCOPE = "openid profile email offline_access"
# The registration fields of the FAPI 2.0 parts (audited on creation when set).
FAPI_FIELDS = (
    "jwks",
    "jwks_uri",
    "require_pushed_authorization_requests",
    "require_signed_request_object",
    "dpop_bound_access_tokens",
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
    "tls_client_certificate_bound_access_tokens",
    "fapi2_profile",
)
# RFC 8705 §2.1.2: how a tls_client_auth client names its certificate, exactly one of these.
CERTIFICATE_NAME_FIELDS = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
)

# Rotation with an overlap: the replaced secret keeps working for a while, so the app's
# instances can be redeployed one by one with the new secret. The page offers these choices;
# the CLI takes any "<n>m", "<n>h" or "<n>d" up to the maximum.
SECRET_OVERLAPS = {
    "0": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
DEFAULT_SECRET_OVERLAP = "24h"
MAX_SECRET_OVERLAP = timedelta(days=30)
OVERLAP_PATTERN = re.compile(r"([0-9]{1,5})([mhd])")
OVERLAP_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}

# What is wrong with a registration, one msgid per rule: the same words on the CLI (English)
# and on the admin page (in the page's language, next to the field).
NAME_REQUIRED = N_("Enter the app's name (at most 200 characters).")
GRANT_REQUIRED = N_("Choose at least one way the app signs in.")
UNKNOWN_GRANT = N_("Grant types must be among %(choices)s.")
PUBLIC_NO_SERVICE = N_("An app without a secret cannot use service-to-service sign-in.")
REDIRECT_REQUIRED = N_("Signing officials in needs at least one redirect URI.")
TOO_MANY_URIS = N_("At most 20 URIs.")
ON_LINE = N_("Line %(line)s: %(problem)s")
REDIRECT_NOT_ABSOLUTE = N_("A redirect URI must be an absolute http(s) URL.")
REDIRECT_FRAGMENT = N_("A redirect URI must not contain a fragment.")
REDIRECT_NOT_HTTPS = N_("A redirect URI must use https (plain http only on the loopback address).")
LOGOUT_NOT_ABSOLUTE = N_("A logout URI must be an absolute http(s) URL.")
LOGOUT_FRAGMENT = N_("A logout URI must not contain a fragment.")
LOGOUT_NOT_HTTPS = N_("A logout URI must use https (plain http only on the loopback address).")
FRONTCHANNEL_NEEDS_REDIRECT = N_("Front-channel logout needs a redirect URI.")
FRONTCHANNEL_ORIGIN = N_(
    "The front-channel logout URI must have the scheme, host and port of a redirect URI."
)
UNKNOWN_ALG = N_("The signing algorithm must be one of %(choices)s.")
UNKNOWN_SCOPE = N_("Unknown scope “%(scope)s”; this server offers %(choices)s.")
SCOPE_TOO_LONG = N_("At most 1000 characters of scopes.")
BAD_OVERLAP = N_(
    "The overlap is 0 or a number followed by m (minutes), h (hours) or d (days), at most 30 days."
)
PUBLIC_NO_SECRET = N_("This app has no secret to rotate (it is a public app).")
NO_OLD_SECRET = N_("No old secret of this app is still valid.")
KEYS_REQUIRED = N_(
    "This way of authenticating the app needs its public keys: a JWK Set or a JWKS URL."
)
ONE_KEY_SOURCE = N_("Give the JWK Set or the JWKS URL, not both.")
JWKS_URI_NOT_HTTPS = N_(
    "The JWKS URL must be an absolute https URL (plain http only on the loopback address)."
)
SUBJECT_DN_REQUIRED = N_(
    "Authentication with a CA-issued certificate needs the certificate's subject DN."
)
SUBJECT_DN_TOO_LONG = N_("At most 1000 characters of subject DN.")
ONE_CERTIFICATE_NAME = N_(
    "Name the certificate by one thing only: its subject DN or one subject alternative name."
)
CERTIFICATE_NAME_ONLY_FOR_TLS = N_(
    "A subject DN or alternative name is only for apps that authenticate with a CA-issued "
    "certificate (tls_client_auth)."
)
BAD_SUBJECT_DN = N_("The subject DN is not a distinguished name (RFC 4514), e.g. CN=app,O=Sở.")


class CertificateNames(TypedDict, total=False):
    """The names of RFC 8705 §2.1.2 a tls_client_auth registration gives (exactly one)."""

    tls_client_auth_subject_dn: str | None
    tls_client_auth_san_dns: str | None
    tls_client_auth_san_uri: str | None
    tls_client_auth_san_ip: str | None
    tls_client_auth_san_email: str | None


def _stripped(text: str | None) -> str | None:
    return (text or "").strip() or None


def fapi_fields_of(source: object) -> dict[str, Any]:
    """The FAPI 2.0 fields of a row, settings or registration copy (the same names in each)."""
    return {name: getattr(source, name) for name in FAPI_FIELDS}


def _uri_problem(uri: str, *, not_absolute: str, fragment: str, not_https: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return not_absolute
    if parts.fragment or "#" in uri:
        return fragment
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return not_https
    return None


def redirect_uri_problem(uri: str) -> str | None:
    """RFC 6749 §3.1.2 and OAuth 2.1: absolute, no fragment, https except on loopback."""
    return _uri_problem(
        uri,
        not_absolute=REDIRECT_NOT_ABSOLUTE,
        fragment=REDIRECT_FRAGMENT,
        not_https=REDIRECT_NOT_HTTPS,
    )


def logout_uri_problem(uri: str) -> str | None:
    """Back-Channel Logout 1.0 §2.2 / Front-Channel Logout 1.0 §2: absolute, no fragment; like
    redirect URIs, https except on the loopback address (a local demo app)."""
    return _uri_problem(
        uri, not_absolute=LOGOUT_NOT_ABSOLUTE, fragment=LOGOUT_FRAGMENT, not_https=LOGOUT_NOT_HTTPS
    )


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field: a msgid and its parameters, and for a list of URIs the
    line it is on."""

    field: str
    message: str
    params: Mapping[str, object] = dataclass_field(default_factory=dict)
    line: int | None = None

    def text(self, translate: Callable[[str], str] = str) -> str:
        problem = translate(self.message) % self.params if self.params else translate(self.message)
        if self.line is None:
            return problem
        return translate(ON_LINE) % {"line": self.line, "problem": problem}


class InvalidClientSettings(DomainError):
    """A registration refused, with every problem by field (nothing was saved)."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        first = problems[0]
        super().__init__(first.message, field=first.field, **first.params)
        self.problems = tuple(problems)

    def text(self, translate: Callable[[str], str] = str) -> str:
        return "; ".join(f"{p.field}: {p.text(translate)}" for p in self.problems)


@dataclass(frozen=True)
class ClientSettings:
    """What an administrator chooses for an app, with ``client add`` or on the app's page; both
    are checked by :func:`settings_problems`, the one place these rules live."""

    name: str
    grant_types: tuple[str, ...] = DEFAULT_GRANT_TYPES
    scope: str = DEFAULT_SCOPE
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    id_token_alg: str = "RS256"
    access_token_alg: str = "RS256"
    backchannel_logout_uri: str | None = None
    frontchannel_logout_uri: str | None = None
    # The lowest authentication level the app accepts (idp.authentication_levels); None: any.
    minimum_acr: str | None = None
    # FAPI 2.0 parts (see ClientInfo). ``jwks`` is the JSON document as given (checked by
    # settings_problems): a JWK Set, or the text that failed to parse as one.
    jwks: Any = None
    jwks_uri: str | None = None
    require_pushed_authorization_requests: bool = False
    require_signed_request_object: bool = False
    dpop_bound_access_tokens: bool = False
    tls_client_auth_subject_dn: str | None = None
    tls_client_auth_san_dns: str | None = None
    tls_client_auth_san_uri: str | None = None
    tls_client_auth_san_ip: str | None = None
    tls_client_auth_san_email: str | None = None
    tls_client_certificate_bound_access_tokens: bool = False
    fapi2_profile: bool = False

    def normalised(self) -> ClientSettings:
        """Names and URIs without surrounding blanks, scopes once each, empty URIs as None."""
        return replace(
            self,
            name=self.name.strip(),
            grant_types=tuple(dict.fromkeys(self.grant_types)),
            scope=" ".join(dict.fromkeys(self.scope.split())),
            redirect_uris=tuple(u.strip() for u in self.redirect_uris if u.strip()),
            post_logout_redirect_uris=tuple(
                u.strip() for u in self.post_logout_redirect_uris if u.strip()
            ),
            backchannel_logout_uri=(self.backchannel_logout_uri or "").strip() or None,
            frontchannel_logout_uri=(self.frontchannel_logout_uri or "").strip() or None,
            minimum_acr=(self.minimum_acr or "").strip() or None,
            jwks=self.jwks or None,
            jwks_uri=(self.jwks_uri or "").strip() or None,
            tls_client_auth_subject_dn=_stripped(self.tls_client_auth_subject_dn),
            tls_client_auth_san_dns=_stripped(self.tls_client_auth_san_dns),
            tls_client_auth_san_uri=_stripped(self.tls_client_auth_san_uri),
            tls_client_auth_san_ip=_stripped(self.tls_client_auth_san_ip),
            tls_client_auth_san_email=_stripped(self.tls_client_auth_san_email),
        )

    @classmethod
    def of(cls, client: Client) -> ClientSettings:
        return cls(
            name=client.name,
            grant_types=tuple(client.grant_types),
            scope=client.scope,
            redirect_uris=tuple(client.redirect_uris),
            post_logout_redirect_uris=tuple(client.post_logout_redirect_uris),
            id_token_alg=client.id_token_signed_response_alg,
            access_token_alg=client.access_token_signed_response_alg,
            backchannel_logout_uri=client.backchannel_logout_uri,
            frontchannel_logout_uri=client.frontchannel_logout_uri,
            minimum_acr=client.minimum_acr,
            **fapi_fields_of(client),
        )

    def apply_to(self, client: Client) -> None:
        """Write the (checked) settings into the row."""
        client.name = self.name
        client.grant_types = list(self.grant_types)
        client.scope = self.scope
        client.redirect_uris = list(self.redirect_uris)
        client.post_logout_redirect_uris = list(self.post_logout_redirect_uris)
        client.id_token_signed_response_alg = self.id_token_alg
        client.access_token_signed_response_alg = self.access_token_alg
        client.backchannel_logout_uri = self.backchannel_logout_uri
        client.frontchannel_logout_uri = self.frontchannel_logout_uri
        client.minimum_acr = self.minimum_acr
        for name, value in fapi_fields_of(self).items():
            setattr(client, name, value)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "grant_types": list(self.grant_types),
            "scope": self.scope,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "id_token_signed_response_alg": self.id_token_alg,
            "access_token_signed_response_alg": self.access_token_alg,
            "backchannel_logout_uri": self.backchannel_logout_uri,
            "frontchannel_logout_uri": self.frontchannel_logout_uri,
            "minimum_acr": self.minimum_acr,
            **fapi_fields_of(self),
        }


def _uri_list_problem(field: str, uris: Sequence[str]) -> FieldProblem | None:
    if len(uris) > MAX_URIS:
        return FieldProblem(field, TOO_MANY_URIS)
    for line, uri in enumerate(uris, start=1):
        problem = redirect_uri_problem(uri)
        if problem is not None:
            return FieldProblem(field, problem, line=line)
    return None


def _frontchannel_problem(uri: str, redirect_uris: Sequence[str]) -> str | None:
    """Front-Channel Logout 1.0 §2: the scheme, host and port of a registered redirect URI."""
    problem = logout_uri_problem(uri)
    if problem is not None:
        return problem
    if not redirect_uris:
        return FRONTCHANNEL_NEEDS_REDIRECT
    if urlsplit(uri)[:2] not in {urlsplit(u)[:2] for u in redirect_uris}:
        return FRONTCHANNEL_ORIGIN
    return None


def key_problems(settings: ClientSettings, *, auth_method: str) -> list[FieldProblem]:
    """The client's keys and certificate: what its authentication method needs (RFC 7523 §2.2,
    RFC 8705 §2), each well-formed."""
    problems: list[FieldProblem] = []
    if settings.jwks is not None and settings.jwks_uri is not None:
        problems.append(FieldProblem("jwks", ONE_KEY_SOURCE))
    elif settings.jwks is not None:
        problem = client_keys.jwks_problem(settings.jwks)
        if problem is not None:
            problems.append(problem)
    elif settings.jwks_uri is not None:
        uri = settings.jwks_uri
        if _uri_problem(uri, not_absolute="-", fragment="-", not_https="-") is not None:
            problems.append(FieldProblem("jwks_uri", JWKS_URI_NOT_HTTPS))
    elif auth_method in (PRIVATE_KEY_JWT, SELF_SIGNED_TLS_CLIENT_AUTH):
        problems.append(FieldProblem("jwks", KEYS_REQUIRED))
    problems.extend(_certificate_name_problems(settings, auth_method=auth_method))
    return problems


def _certificate_name_problems(settings: ClientSettings, *, auth_method: str) -> list[FieldProblem]:
    """RFC 8705 §2.1.2: a tls_client_auth client names its certificate by exactly one of the
    subject DN or a subject alternative name; no other client names one."""
    given = [field for field in CERTIFICATE_NAME_FIELDS if getattr(settings, field) is not None]
    if given and auth_method != TLS_CLIENT_AUTH:
        return [FieldProblem(given[0], CERTIFICATE_NAME_ONLY_FOR_TLS)]
    if auth_method == TLS_CLIENT_AUTH and not given:
        return [FieldProblem("tls_client_auth_subject_dn", SUBJECT_DN_REQUIRED)]
    if len(given) > 1:
        return [FieldProblem(given[1], ONE_CERTIFICATE_NAME)]
    for field in given:
        value = str(getattr(settings, field))
        if len(value) > MAX_SCOPE:
            return [FieldProblem(field, SUBJECT_DN_TOO_LONG)]
        if field == "tls_client_auth_subject_dn" and not _is_distinguished_name(value):
            return [FieldProblem(field, BAD_SUBJECT_DN)]
    return []


def _is_distinguished_name(text: str) -> bool:
    try:
        return len(x509.Name.from_rfc4514_string(text)) > 0
    except ValueError:
        return False


def settings_problems(settings: ClientSettings, *, auth_method: str) -> list[FieldProblem]:
    """Everything wrong with a (normalised) registration, at most one problem per field, in the
    order of the form. Empty when it may be saved."""
    public = auth_method == "none"
    problems: list[FieldProblem] = []
    if not settings.name or len(settings.name) > MAX_NAME:
        problems.append(FieldProblem("name", NAME_REQUIRED))
    grants = settings.grant_types
    unknown = set(grants) - set(GRANT_TYPES)
    if not grants:
        problems.append(FieldProblem("grant_types", GRANT_REQUIRED))
    elif unknown:
        problems.append(
            FieldProblem("grant_types", UNKNOWN_GRANT, {"choices": ", ".join(GRANT_TYPES)})
        )
    elif public and "client_credentials" in grants:
        problems.append(FieldProblem("grant_types", PUBLIC_NO_SERVICE))
    redirect = _uri_list_problem("redirect_uris", settings.redirect_uris)
    if redirect is None and "authorization_code" in grants and not settings.redirect_uris:
        redirect = FieldProblem("redirect_uris", REDIRECT_REQUIRED)
    post_logout = _uri_list_problem("post_logout_redirect_uris", settings.post_logout_redirect_uris)
    problems.extend(p for p in (redirect, post_logout) if p is not None)
    if settings.backchannel_logout_uri:
        back = logout_uri_problem(settings.backchannel_logout_uri)
        if back is not None:
            problems.append(FieldProblem("backchannel_logout_uri", back))
    if settings.frontchannel_logout_uri:
        front = _frontchannel_problem(settings.frontchannel_logout_uri, settings.redirect_uris)
        if front is not None:
            problems.append(FieldProblem("frontchannel_logout_uri", front))
    if len(settings.scope) > MAX_SCOPE:
        problems.append(FieldProblem("scope", SCOPE_TOO_LONG))
    else:
        unknown_scopes = [s for s in settings.scope.split() if s not in SUPPORTED_SCOPES]
        if unknown_scopes:
            problems.append(
                FieldProblem(
                    "scope",
                    UNKNOWN_SCOPE,
                    {"scope": unknown_scopes[0], "choices": " ".join(SUPPORTED_SCOPES)},
                )
            )
    if settings.minimum_acr is not None and settings.minimum_acr not in LEVELS:
        problems.append(FieldProblem("minimum_acr", UNKNOWN_ACR, {"choices": ", ".join(LEVELS)}))
    for field, alg in (
        ("id_token_signed_response_alg", settings.id_token_alg),
        ("access_token_signed_response_alg", settings.access_token_alg),
    ):
        if alg not in SUPPORTED_ALGORITHMS:
            problems.append(
                FieldProblem(field, UNKNOWN_ALG, {"choices": ", ".join(SUPPORTED_ALGORITHMS)})
            )
    problems.extend(key_problems(settings, auth_method=auth_method))
    problems.extend(fapi2_profile.profile_problems(settings, auth_method=auth_method))
    return problems


def parse_overlap(text: str) -> timedelta:
    """How long the replaced secret stays valid: "0", or "<n>m", "<n>h", "<n>d" (at most
    :data:`MAX_SECRET_OVERLAP`)."""
    text = text.strip().lower()
    if text == "0":
        return timedelta(0)
    match = OVERLAP_PATTERN.fullmatch(text)
    if match is None:
        raise DomainError(BAD_OVERLAP, field="overlap")
    overlap = int(match.group(1)) * OVERLAP_UNITS[match.group(2)]
    if overlap > MAX_SECRET_OVERLAP:
        raise DomainError(BAD_OVERLAP, field="overlap")
    return overlap


@dataclass(frozen=True)
class ClientInfo:
    """An immutable copy of a registration, safe to share between threads and requests."""

    id: int
    client_id: str
    name: str
    secret_digest: str | None
    previous_secret_digest: str | None
    previous_secret_valid_until: datetime | None
    token_endpoint_auth_method: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: str
    id_token_signed_response_alg: str
    access_token_signed_response_alg: str
    first_party: bool
    minimum_acr: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    require_pushed_authorization_requests: bool = False
    require_signed_request_object: bool = False
    dpop_bound_access_tokens: bool = False
    tls_client_auth_subject_dn: str | None = None
    tls_client_auth_san_dns: str | None = None
    tls_client_auth_san_uri: str | None = None
    tls_client_auth_san_ip: str | None = None
    tls_client_auth_san_email: str | None = None
    tls_client_certificate_bound_access_tokens: bool = False
    fapi2_profile: bool = False

    @classmethod
    def of(cls, row: Client) -> ClientInfo:
        return cls(
            id=row.id,
            client_id=row.client_id,
            name=row.name,
            secret_digest=row.secret_digest,
            previous_secret_digest=row.previous_secret_digest,
            previous_secret_valid_until=row.previous_secret_valid_until,
            token_endpoint_auth_method=row.token_endpoint_auth_method,
            redirect_uris=tuple(row.redirect_uris),
            post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
            grant_types=tuple(row.grant_types),
            scope=row.scope,
            id_token_signed_response_alg=row.id_token_signed_response_alg,
            access_token_signed_response_alg=row.access_token_signed_response_alg,
            first_party=row.first_party,
            minimum_acr=row.minimum_acr,
            **fapi_fields_of(row),
        )

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def requires_dpop(self) -> bool:
        """RFC 9449 §5.2 dpop_bound_access_tokens, or the FAPI 2.0 profile without mTLS
        binding (idp.oauth.fapi2)."""
        return self.dpop_bound_access_tokens or (
            self.fapi2_profile and not self.tls_client_certificate_bound_access_tokens
        )

    @property
    def sender_constrained(self) -> bool:
        """Every access token bound to a key: DPoP (RFC 9449) or the TLS client certificate
        (RFC 8705 §3)."""
        return self.requires_dpop or self.tls_client_certificate_bound_access_tokens

    @property
    def requires_pushed_requests(self) -> bool:
        return self.require_pushed_authorization_requests or self.fapi2_profile


@dataclass(frozen=True)
class ProvisioningReach:
    """The units a provisioning (SCIM) client reaches: its scope, and the ids of every unit in
    it, listed (a province's wards included) so that queries need not look them up."""

    scope: AdminScope
    unit_ids: frozenset[int]


class ClientCache:
    """Registrations cached per worker process for a few seconds.

    Every token request authenticates its client; reading the row each time was most of the
    cost of a client_credentials request on PostgreSQL. A change made elsewhere (secret
    rotation, removal) reaches every worker within ``ttl`` seconds, and within a second where
    the token state feed runs (idp/token_state.py forgets a changed client); removal also
    revokes the client's grants in the database at once, so no refresh token survives it.
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[float, ClientInfo]] = {}
        # What a provisioning (SCIM) client reaches, derived from its unit scope rows and the
        # units table: asked on every SCIM request, changed by an administrator now and then.
        self._reaches: dict[str, tuple[float, ProvisioningReach]] = {}

    def cached(self, client_id: str) -> ClientInfo | None:
        """A fresh cached registration, without touching the database (None on a miss)."""
        cached = self._entries.get(client_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        return None

    def lookup(self, session: Session, client_id: str) -> ClientInfo | None:
        now = time.monotonic()
        cached = self._entries.get(client_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        row = find_active(session, client_id)
        if row is None:
            self._entries.pop(client_id, None)
            return None
        info = ClientInfo.of(row)
        self._entries[client_id] = (now, info)
        return info

    def cached_reach(self, client_id: str) -> ProvisioningReach | None:
        """A fresh reach remembered by :meth:`remember_reach` (None on a miss)."""
        cached = self._reaches.get(client_id)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        return None

    def remember_reach(self, client_id: str, reach: ProvisioningReach, *, read_at: float) -> None:
        """``read_at``: :func:`time.monotonic` before the rows were read, so that a change
        forgotten while they were being read is not kept longer than ``ttl`` after it."""
        self._reaches[client_id] = (read_at, reach)

    def forget(self, client_id: str) -> None:
        self._entries.pop(client_id, None)
        self._reaches.pop(client_id, None)

    def forget_reaches(self) -> None:
        """Units were added, renamed or moved: every reach is read again."""
        self._reaches = {}

    def forget_all(self) -> None:
        self._entries = {}
        self._reaches = {}


def find_active(session: Session, client_id: str) -> Client | None:
    return session.scalar(
        select(Client).where(Client.client_id == client_id, Client.removed_at.is_(None))
    )


def get_active(session: Session, client_id: str) -> Client:
    client = find_active(session, client_id)
    if client is None:
        raise NotFound(N_("No such client."), client_id=client_id)
    return client


def list_active(session: Session) -> list[Client]:
    return list(
        session.scalars(select(Client).where(Client.removed_at.is_(None)).order_by(Client.id))
    )


def old_secret_valid_until(client: Client | ClientInfo, now: datetime) -> datetime | None:
    """Until when the secret replaced by the last rotation is still accepted (None: it is not)."""
    until = client.previous_secret_valid_until
    if client.previous_secret_digest is None or until is None or until <= now:
        return None
    return until


def check_secret(
    client: Client | ClientInfo, presented: str, *, now: datetime | None = None
) -> bool:
    """RFC 6749 §2.3.1: the current secret, or (given ``now``) the previous one during the
    overlap its rotation allowed. Both digests are compared in constant time, always."""
    current = client.secret_digest is not None and matches_digest(presented, client.secret_digest)
    previous = client.previous_secret_digest is not None and matches_digest(
        presented, client.previous_secret_digest
    )
    return current or (
        previous and now is not None and old_secret_valid_until(client, now) is not None
    )


def create(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    name: str,
    redirect_uris: Sequence[str] = (),
    post_logout_redirect_uris: Sequence[str] = (),
    grant_types: Sequence[str] = DEFAULT_GRANT_TYPES,
    scope: str = DEFAULT_SCOPE,
    public: bool = False,
    auth_method: str | None = None,
    id_token_alg: str = "RS256",
    access_token_alg: str = "RS256",
    first_party: bool = False,
    client_id: str | None = None,
    units: Sequence[Unit] = (),
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = True,
    frontchannel_logout_uri: str | None = None,
    frontchannel_logout_session_required: bool = True,
    minimum_acr: str | None = None,
    keys: ClientSettings | None = None,
) -> tuple[Client, str | None]:
    """Register a client; returns it with its secret, which is shown once and stored hashed.

    The logout URIs are those of OpenID Back-Channel Logout 1.0 §2.2 and Front-Channel
    Logout 1.0 §2; the session-required flags ask for a ``sid`` in what is sent there.
    ``keys``: the FAPI 2.0 parts of the registration (its keys, certificate and requirements;
    the other fields of it are not read). An app authenticating with a key or a certificate
    (private_key_jwt, tls_client_auth, self_signed_tls_client_auth) gets no secret.
    """
    method = auth_method or ("none" if public else "client_secret_basic")
    if method not in AUTH_METHODS or (public != (method == "none")):
        raise DomainError(
            N_(
                "An app without a secret uses the auth method “none”; an app with a secret "
                "uses client_secret_basic or client_secret_post; an app with keys uses "
                "private_key_jwt, tls_client_auth or self_signed_tls_client_auth."
            ),
            field="auth_method",
        )
    extra = keys or ClientSettings(name="")
    settings = ClientSettings(
        name=name,
        grant_types=tuple(grant_types),
        scope=scope,
        redirect_uris=tuple(redirect_uris),
        post_logout_redirect_uris=tuple(post_logout_redirect_uris),
        id_token_alg=id_token_alg,
        access_token_alg=access_token_alg,
        backchannel_logout_uri=backchannel_logout_uri,
        frontchannel_logout_uri=frontchannel_logout_uri,
        minimum_acr=minimum_acr,
        **fapi_fields_of(extra),
    ).normalised()
    problems = settings_problems(settings, auth_method=method)
    if problems:
        raise InvalidClientSettings(problems)
    # Hex: never starts with "-" (a CLI would read it as an option) and reads aloud easily.
    client_id = client_id or secrets.token_hex(12)
    if not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise DomainError(
            N_("A client_id is 1 to 64 letters, digits or . _ ~ : / - characters."),
            field="client_id",
        )
    if find_active(session, client_id) is not None:
        raise DomainError(N_("That client_id is already registered."), field="client_id")
    secret = new_opaque_token() if method in SECRET_AUTH_METHODS else None
    client = Client(
        client_id=client_id,
        name=settings.name,
        secret_digest=digest(secret) if secret else None,
        token_endpoint_auth_method=method,
        redirect_uris=list(settings.redirect_uris),
        post_logout_redirect_uris=list(settings.post_logout_redirect_uris),
        grant_types=list(settings.grant_types),
        scope=settings.scope,
        id_token_signed_response_alg=settings.id_token_alg,
        access_token_signed_response_alg=settings.access_token_alg,
        first_party=first_party,
        created_at=clock.now(),
        backchannel_logout_uri=settings.backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_logout_session_required,
        frontchannel_logout_uri=settings.frontchannel_logout_uri,
        frontchannel_logout_session_required=frontchannel_logout_session_required,
        minimum_acr=settings.minimum_acr,
    )
    settings.apply_to(client)
    session.add(client)
    session.flush()
    # A provisioning (SCIM) client reaches only these units; with none it reaches nothing.
    session.add_all(ClientUnitScope(client_pk=client.id, unit_id=unit.id) for unit in units)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="client.create",
        target=f"client:{client_id}",
        details={
            "name": client.name,
            "public": public,
            "grant_types": list(settings.grant_types),
            "redirect_uris": list(settings.redirect_uris),
            "first_party": first_party,
            "units": [unit.code for unit in units],
            "backchannel_logout_uri": settings.backchannel_logout_uri,
            "frontchannel_logout_uri": settings.frontchannel_logout_uri,
            "minimum_acr": settings.minimum_acr,
            "token_endpoint_auth_method": method,
            **{
                key: value
                for key, value in settings.as_dict().items()
                if key in FAPI_FIELDS and value not in (None, False)
            },
        },
    )
    return client, secret


def update_settings(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    client: Client,
    settings: ClientSettings,
    client_address: str | None = None,
) -> bool:
    """Change what an administrator may change after registration, checked by the same rules
    as :func:`create` (nothing is changed when one fails). Audited with the old and new values;
    False when nothing changed (and nothing is audited)."""
    settings = settings.normalised()
    problems = settings_problems(settings, auth_method=client.token_endpoint_auth_method)
    if problems:
        raise InvalidClientSettings(problems)
    before = ClientSettings.of(client)
    if before == settings:
        return False
    settings.apply_to(client)
    old, new = before.as_dict(), settings.as_dict()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="client.update",
        target=f"client:{client.client_id}",
        details={
            "before": {k: v for k, v in old.items() if new[k] != v},
            "after": {k: v for k, v in new.items() if old[k] != v},
        },
        client_address=client_address,
    )
    return True


def rotate_secret(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    client: Client,
    overlap: timedelta = timedelta(0),
    client_address: str | None = None,
) -> str:
    """A new secret, shown once; the replaced one stays valid for ``overlap`` (0: not at all).

    Only the secret just replaced is kept: rotating again during an overlap ends the older
    secret's validity at once.
    """
    if client.token_endpoint_auth_method not in SECRET_AUTH_METHODS:
        raise Conflict(PUBLIC_NO_SECRET)
    if overlap < timedelta(0) or overlap > MAX_SECRET_OVERLAP:
        raise DomainError(BAD_OVERLAP, field="overlap")
    secret = new_opaque_token()
    valid_until = clock.now() + overlap if overlap else None
    client.previous_secret_digest = client.secret_digest if valid_until else None
    client.previous_secret_valid_until = valid_until
    client.secret_digest = digest(secret)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="client.rotate_secret",
        target=f"client:{client.client_id}",
        details={"old_secret_valid_until": valid_until.isoformat() if valid_until else None},
        client_address=client_address,
    )
    return secret


def revoke_old_secret(
    *, session: Session, clock: Clock, actor: str, client: Client, client_address: str | None = None
) -> None:
    """End a rotation's overlap early: only the current secret is accepted from now on."""
    until = old_secret_valid_until(client, clock.now())
    if until is None:
        raise Conflict(NO_OLD_SECRET)
    client.previous_secret_digest = None
    client.previous_secret_valid_until = None
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="client.revoke_old_secret",
        target=f"client:{client.client_id}",
        details={"was_valid_until": until.isoformat()},
        client_address=client_address,
    )


def remove(*, session: Session, clock: Clock, actor: str, client: Client) -> None:
    """Soft removal: the row and its history stay, its grants are revoked."""
    client.removed_at = clock.now()
    revoked = token_store.revoke_grants_of_client(
        session=session, clock=clock, client=client, reason="client_removed"
    )
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="client.remove",
        target=f"client:{client.client_id}",
        details={"grants_revoked": revoked},
    )
