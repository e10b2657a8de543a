"""Service settings, read from environment variables prefixed ``COMMUNE_SSO_`` and from a
configuration file (``commune-sso.toml``).

Every default is documented where it is defined (CONVENTIONS §9). Nothing reads settings at
import time: ``Settings()`` is built by the app factory or the CLI and passed down.

Every setting can also be read from a file named by ``COMMUNE_SSO_<NAME>_FILE`` (Docker and
Kubernetes secrets are files, and a secret in a file stays out of ``docker inspect`` and the
process environment of every child).

The configuration file lets an operator run ``commune-sso`` in any shell without exporting the
server's variables: the server, its workers and every CLI command read the same file. Where a
setting is given in several places, the first of these wins: an argument to ``Settings()``, the
variable, its ``_FILE``, the configuration file, the default ("the environment wins").
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from core.web.client_address import ForwardedHeader, IPNetwork, parse_networks

ENV_PREFIX = "COMMUNE_SSO_"
DEFAULT_ISSUER = "http://127.0.0.1:8000"
CONFIG_FILE_VARIABLE = f"{ENV_PREFIX}CONFIG"
CONFIG_FILE_NAME = "commune-sso.toml"
# Where the configuration file is looked for, first found wins, when COMMUNE_SSO_CONFIG does
# not name one; the relative path is from the working directory.
CONFIG_FILE_SEARCH_PATH = (Path(CONFIG_FILE_NAME), Path("/etc/commune-sso") / CONFIG_FILE_NAME)


class SecretFileSource(PydanticBaseSettingsSource):
    """``COMMUNE_SSO_<NAME>_FILE=/run/secrets/x``: the setting is the file's content, without its
    final newline (what ``echo`` and most editors add). Setting both the variable and its
    ``_FILE`` is refused, so no one wonders which of the two is in force."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        # Environment names are case-insensitive here, as for the plain variables.
        self.environ = {name.upper(): value for name, value in os.environ.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = f"{ENV_PREFIX}{field_name.upper()}"
        path = self.environ.get(f"{variable}_FILE")
        if path is None:
            return None, field_name, False
        if variable in self.environ:
            raise SettingsError(f"both {variable} and {variable}_FILE are set; set only one")
        try:
            content = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise SettingsError(f"{variable}_FILE: cannot read {path}: {reason}") from None
        content = content.removesuffix("\n").removesuffix("\r")
        # A NoDecode field (COMMUNE_SSO_TRUSTED_PROXIES) is written as in its variable: its
        # own validator parses the text.
        if self.field_is_complex(field) and NoDecode not in field.metadata:
            try:
                return json.loads(content), field_name, True
            except ValueError:
                raise SettingsError(f"{variable}_FILE: {path} does not hold JSON") from None
        return content, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, _, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[field_name] = value
        return values


def find_config_file(search_path: tuple[Path, ...]) -> Path | None:
    """The file COMMUNE_SSO_CONFIG names (it must exist), else the first of ``search_path``
    that exists, else None."""
    named = os.environ.get(CONFIG_FILE_VARIABLE)
    if named:
        return Path(named).absolute()
    found = next((path for path in search_path if path.is_file()), None)
    # Absolute: messages name the file wherever the operator stands.
    return found.absolute() if found is not None else None


class ConfigFileSource(InitSettingsSource):
    """``commune-sso.toml``: top-level keys named like the settings, in lower case, without the
    prefix (``database_url = "postgresql+psycopg://..."``). A key that is no setting is refused,
    naming the key and the file: a misspelt setting silently left at its default is worse than a
    refused start."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls, {} if path is None else self._read(settings_cls, path))

    @staticmethod
    def _read(settings_cls: type[BaseSettings], path: Path) -> dict[str, Any]:
        try:
            content = path.read_bytes()
        except OSError as error:
            raise SettingsError(
                f"cannot read the configuration file {path}: {error.strerror}"
            ) from None
        try:
            values = tomllib.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise SettingsError(f"the configuration file {path} is not TOML: {error}") from None
        for key in values:
            if key not in settings_cls.model_fields:
                raise SettingsError(
                    f"unknown setting {key!r} in the configuration file {path} (keys are "
                    "setting names in lower case without COMMUNE_SSO_, e.g. database_url)"
                )
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")
    # Tests point it at files of their own (nothing in /etc is touched).
    config_file_search_path: ClassVar[tuple[Path, ...]] = CONFIG_FILE_SEARCH_PATH

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            SecretFileSource(settings_cls),
            ConfigFileSource(settings_cls, find_config_file(cls.config_file_search_path)),
            dotenv_settings,
            file_secret_settings,
        )

    issuer: str = Field(
        default=DEFAULT_ISSUER,
        description="OIDC issuer identifier: scheme, host, optional port and path, no trailing "
        "slash. Every endpoint URL is built from it. https is required in production. Unset: "
        "`serve` uses its own listener, http://HOST:PORT.",
    )
    var_dir: Path = Field(
        default=Path("var"),
        description="Directory for the embedded default's state: SQLite file, software keys, "
        "generated development secrets.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Unset: SQLite file <var_dir>/commune-sso.db. Production: "
        "postgresql+psycopg://user:pass@host/db.",
    )
    key_dir: Path | None = Field(
        default=None,
        description="Directory of the token-signing key ring. Unset: <var_dir>/keys.",
    )
    ca_key_dir: Path | None = Field(
        default=None,
        description="Directory where `commune-sso ca init` creates CA keys that are not given a "
        "key URI (encrypted PKCS#8 files). Unset: <var_dir>/ca-keys. HSM keys are named by "
        "pkcs11: URIs instead.",
    )
    ca_crl_lifetime: int = Field(
        default=24 * 3600,
        ge=3600,
        description="Seconds between a CRL's thisUpdate and nextUpdate. A new CRL is signed on "
        "every revocation and, on schedule, a quarter of this before nextUpdate.",
    )
    ca_crl_partition_size: int = Field(
        default=100_000,
        ge=0,
        le=1_000_000,
        description="Certificates per CRL partition: each certificate an issuing CA signs names "
        "the CRL of its partition (/ca/crl/<ca>/<n>.crl, RFC 5280 issuingDistributionPoint) in "
        "its CRL distribution point, partitions filling one after the other; the full CRL "
        "(/ca/crl/<ca>.crl) stays published. 0: no partitions, every certificate names the full "
        "CRL.",
    )
    ca_full_crl_max_delay: int = Field(
        default=300,
        ge=10,
        le=6 * 3600,
        description="Longest time, in seconds, the full CRL (/ca/crl/<ca>.crl) of a CA with CRL "
        "partitions may lag behind a revocation, hold or release of a certificate whose CRL "
        "distribution point names a partition CRL: that change signs the partition's CRL at "
        "once and the maintenance pass (run at least this often, and at least every 5 minutes) "
        "signs the full CRL. Certificates whose CRL distribution point names the full CRL "
        "(issued before partitions, or with partitions off) get it signed at once.",
    )
    ca_ocsp_lifetime: int = Field(
        default=3600,
        ge=1800,
        description="Seconds between an OCSP answer's thisUpdate and nextUpdate. Answers for "
        "requests without a nonce are signed in advance: at issuance, at every status change, "
        "and on schedule half of this before nextUpdate, so N valid certificates cost N "
        "signatures per half lifetime (1,000,000 at the default: 556 per second).",
    )
    ca_validation_trust_anchors: list[Path] = Field(
        default_factory=list,
        description="PEM files of trust anchors besides our own roots whose signatures "
        "POST /ca/api/v1/validations accepts, e.g. the Government CA (a file may hold several "
        "certificates). Their certificates' status comes from their OCSP responders and CRLs. "
        'JSON list in the environment: ["/etc/commune-sso/gov-ca.pem"].',
    )
    ca_validation_max_mb: int = Field(
        default=20,
        ge=1,
        le=200,
        description="Largest document (PDF, or document plus detached signature) the signature "
        "validation API and page accept, in MiB; larger ones are refused with 413.",
    )
    ca_validation_fetch_revocation: bool = Field(
        default=True,
        description="Fetch OCSP answers and CRLs over HTTP for certificates of other trust "
        "anchors when validating signatures (ours come from our own status table). Off: those "
        "signatures are judged without revocation data.",
    )
    ca_supersede_after_days: int = Field(
        default=7,
        ge=0,
        le=90,
        description="Days a renewed certificate stays valid after its successor is issued (for a "
        "server-made key: collected), then it is revoked as superseded. 0: at once. The overlap "
        "lets an official switch their signing software to the new key; without it, as with "
        "step-ca, the old one would stay valid until it expires.",
    )
    tsa_policy_oid: str = Field(
        default="2.25.134260980301665016976231259157429528141",
        pattern=r"^[0-2](\.(0|[1-9][0-9]*)){1,30}$",
        description="The TSA policy (RFC 3161 §2.4.2 TSTInfo.policy) of `POST /tsa`: a request "
        "asking for another policy is refused (unacceptedPolicy). Default: an OID under the "
        "2.25 arc (ITU-T X.667: a UUID as an OID, no registration needed) fixed for "
        "commune-sso's TSA practice; a province with its own arc (an IANA private enterprise "
        "number 1.3.6.1.4.1.<n>, or one given by the national root CA) sets its own.",
    )
    tsa_accuracy_ms: int = Field(
        default=1000,
        ge=1,
        le=60_000,
        description="Milliseconds of the time-stamps' accuracy (RFC 3161 §2.4.2 accuracy): how "
        "far the server clock may be from UTC. Keep the clock synchronised (NTP) within it.",
    )
    units_load_on_start: bool = Field(
        default=True,
        description="At start-up, load the 34 provinces and 3,321 communes and wards from the "
        "installed vietnam-provinces package when the unit table is empty, and refresh them "
        "(as `commune-sso unit sync` does) when the package was updated since the last load. "
        "Off: units change only through `unit sync`.",
    )
    key_passphrase: str | None = Field(
        default=None,
        description="Passphrase that encrypts private keys at rest (PKCS#8, scrypt+AES). Unset on "
        "an http issuer: a random one is generated into <var_dir>/dev-key-passphrase. Unset on "
        "an https issuer: start-up is refused.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Server secret for CSRF tokens and other HMACs (32+ characters). Unset on an "
        "http issuer: generated into <var_dir>/dev-secret-key. Required on an https issuer.",
    )
    behind_proxy: bool = Field(
        default=False,
        description="A reverse proxy in front serves the issuer URL; the listener's host/port "
        "may differ. Unset: `serve` refuses an https issuer, or an http issuer on a loopback "
        "host whose port is not the one it listens on.",
    )
    environment: str = Field(
        default="development",
        description="'development' or 'production'. Production refuses generated secrets.",
    )

    authorization_code_ttl: int = Field(
        default=60, ge=5, le=60, description="Seconds an authorization code stays valid (≤ 60)."
    )
    access_token_ttl: int = Field(
        default=600, ge=30, description="Seconds an access token (RFC 9068 JWT) stays valid."
    )
    id_token_ttl: int = Field(default=600, ge=30, description="Seconds an ID token stays valid.")
    dpop_nonce_required: bool = Field(
        default=True,
        description="DPoP proofs (RFC 9449 §8, §9) must carry a nonce this server issued (the "
        "DPoP-Nonce header; clients retry once on use_dpop_nonce). Off: proofs are checked "
        "by their iat window alone.",
    )
    refresh_token_ttl: int = Field(
        default=30 * 24 * 3600,
        ge=60,
        description="Seconds a refresh token grant lives from the login that started it.",
    )
    session_ttl: int = Field(
        default=10 * 3600, ge=60, description="Seconds a browser SSO session lives (absolute)."
    )
    session_idle_ttl: int = Field(
        default=2 * 3600, ge=60, description="Seconds of inactivity that end a browser session."
    )
    interaction_ttl: int = Field(
        default=900, ge=60, description="Seconds a pending login/consent interaction stays valid."
    )
    cas_ticket_ttl: int = Field(
        default=10,
        ge=1,
        le=300,
        description="Seconds a CAS service ticket stays valid (CAS 3.0 §3.1.1: short-lived; "
        "the service validates it right after the redirect).",
    )
    jwks_max_age: int = Field(
        default=300,
        ge=0,
        description="Cache-Control max-age of the JWKS; a rotated key is published at least this "
        "long before it signs.",
    )

    argon2_memory_kib: int = Field(
        default=19 * 1024, ge=19 * 1024, description="argon2id memory cost in KiB (OWASP ≥ 19 MiB)."
    )
    argon2_time_cost: int = Field(default=2, ge=2, description="argon2id iterations (OWASP ≥ 2).")
    argon2_parallelism: int = Field(default=1, ge=1, description="argon2id lanes.")
    password_hashing_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Password hashes one worker process computes at the same time; further "
        "logins wait for a turn, so hashing memory stays under this × the argon2id memory cost. "
        "Unset: the CPU cores the process may run on.",
    )

    login_slowdown_after: int = Field(
        default=3,
        ge=1,
        description="Failed logins of one account from one client address (or from one device "
        "that signed in to it before) before each further attempt there is delayed.",
    )
    login_lock_after: int = Field(
        default=10,
        ge=2,
        description="Failed logins within the window that stop one account from one client "
        "address, or one device cookie; never the account from everywhere.",
    )
    login_failure_window: int = Field(
        default=900, ge=60, description="Seconds over which failed logins are counted."
    )
    login_lock_seconds: int = Field(
        default=900,
        ge=10,
        description="Seconds an account stays stopped from one address (or one device).",
    )
    login_max_delay: float = Field(
        default=4.0, ge=0, description="Longest delay in seconds added to a throttled attempt."
    )
    login_account_slowdown_after: int = Field(
        default=10,
        ge=1,
        description="Failed logins of one account from devices it has not signed in on, from "
        "any address, before each further such attempt is delayed.",
    )
    login_account_lock_after: int = Field(
        default=100,
        ge=2,
        le=100,
        description="Consecutive failed logins of one account from devices it has not signed "
        "in on that stop such devices for a while (NIST SP 800-63B §5.2.2: at most 100). A "
        "device that signed in to the account before keeps its own budget.",
    )
    login_account_failure_window: int = Field(
        default=86400,
        ge=60,
        description="Seconds over which failures of one account from any address are counted.",
    )
    login_account_lock_seconds: int = Field(
        default=3600,
        ge=10,
        description="Seconds devices unknown to an account stay stopped after "
        "login_account_lock_after failures.",
    )
    login_address_slowdown_after: int = Field(
        default=20,
        ge=1,
        description="Failed logins from one client address, whatever the account, before each "
        "further attempt from there is delayed (never locked: officials share addresses).",
    )
    device_cookie_days: int = Field(
        default=180,
        ge=1,
        description="Days a device that signed in keeps its own failed-login budget (OWASP "
        "device cookies).",
    )
    password_reset_minutes: int = Field(
        default=30,
        ge=5,
        le=240,
        description="Minutes a self-service password reset link stays valid (single use).",
    )
    password_reset_requests: int = Field(
        default=3,
        ge=1,
        description="Reset e-mails one account may be sent within login_failure_window; the "
        "same limit counts requests from one client address times ten.",
    )

    db_pool_size: int = Field(default=10, ge=1, description="Connections per worker (PostgreSQL).")
    graceful_shutdown_seconds: float = Field(
        default=20,
        ge=0,
        description="On SIGTERM, seconds the server waits for requests in flight to finish "
        "(new connections are no longer accepted) before it closes the rest.",
    )
    unavailable_retry_after: int = Field(
        default=5,
        ge=1,
        description="Seconds in the Retry-After header of the 503 answered while the database "
        "cannot be reached.",
    )
    trusted_proxies: Annotated[tuple[IPNetwork, ...], NoDecode] = Field(
        default=(),
        description="Addresses or CIDR blocks of our own reverse proxies, comma-separated "
        "(10.0.0.5,172.18.0.0/16). A request whose TCP peer is one of them has its client "
        "address taken from the rightmost forwarded entry that is not one of them. Empty: "
        "forwarding headers are ignored and the TCP peer is the client.",
    )
    forwarded_header: ForwardedHeader = Field(
        default="x-forwarded-for",
        description="Header the trusted proxies append the client's address to: "
        "'x-forwarded-for' (nginx $proxy_add_x_forwarded_for, Caddy, HAProxy) or 'forwarded' "
        "(RFC 7239). Only that one is read, so a client cannot add the other.",
    )
    client_certificate_header: str | None = Field(
        default=None,
        description="Header in which the trusted proxies forward the TLS client certificate "
        "they received (nginx: proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert). "
        "Read only from COMMUNE_SSO_TRUSTED_PROXIES. Unset: certificate sign-in and RFC 8705 "
        "mTLS client authentication are off and not advertised.",
    )
    trust_forwarded_for: bool | None = Field(
        default=None,
        description="Replaced by COMMUNE_SSO_TRUSTED_PROXIES; start-up is refused while it is "
        "set, because it trusted whatever a client wrote.",
    )

    audit_key_uri: str | None = Field(
        default=None,
        description="Key that signs audit checkpoints: file:/path/key.pem (encrypted PKCS#8) or "
        "a pkcs11: URI (RFC 7512). Unset: file:<key_dir>/audit-key.pem (with the key ring "
        "every host shares; an existing <var_dir>/keys/audit-key.pem is still used), created on "
        "first use and encrypted with the key passphrase. Every host must have the same key: "
        "one whose key did not sign the audit log's latest checkpoint refuses to start.",
    )
    audit_key_algorithm: str = Field(
        default="ec-p256",
        description="Algorithm of the audit key (ec-p256, ec-p384, rsa-2048/3072/4096, ed25519), "
        "used when it is generated; an existing key of another algorithm is refused.",
    )
    audit_checkpoint_interval: float = Field(
        default=300,
        ge=0,
        description="Seconds between signed audit checkpoints taken by the serving process "
        "(each worker tries; only one checkpoint is made per change of the log). 0: none.",
    )
    audit_trusted_public_keys: list[Path] = Field(
        default_factory=list,
        description="PEM files (public keys or certificates) of earlier audit keys whose "
        "checkpoints `audit verify` also trusts, e.g. after the audit key was replaced. JSON "
        'list in the environment: ["/etc/commune-sso/audit-2026.pem"].',
    )

    organisation_name: str | None = Field(
        default=None,
        max_length=64,
        description="The province's name for its officials, e.g. \"Sở Khoa học và Công nghệ "
        'tỉnh Lào Cai": shown in every page header and footer, signed under every e-mail, and '
        "the organisation (O=) of a certificate whose official has no agency, and the default "
        'of `ca init --organisation`. Unset: pages say "Sở Khoa học và Công nghệ" and '
        "certificates carry no O= beyond the official's agency. At most 64 characters (RFC "
        "5280 ub-organization-name).",
    )
    organisation_name_en: str | None = Field(
        default=None,
        max_length=200,
        description='The same name in English, e.g. "Lao Cai Department of Science and '
        'Technology", for English pages and the English part of e-mails. Unset: English pages '
        "show COMMUNE_SSO_ORGANISATION_NAME (a proper name), or the generic English name.",
    )

    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for e-mail to officials (certificate expiry reminders). Unset: "
        "each message is written as an RFC 5322 .eml file to <var_dir>/mail/ instead, so it "
        "can be read without a mail server.",
    )
    smtp_port: int = Field(
        default=587, ge=1, le=65535, description="Port of the SMTP server (587: submission)."
    )
    smtp_from: str = Field(
        default="commune-sso@localhost",
        description="From address of the e-mail the service sends.",
    )
    smtp_username: str | None = Field(
        default=None, description="SMTP login name; unset: no authentication."
    )
    smtp_password: str | None = Field(default=None, description="SMTP password (with the name).")
    smtp_starttls: bool = Field(
        default=True,
        description="Upgrade the SMTP connection with STARTTLS before authenticating and "
        "sending (RFC 3207); turn off only for a relay on the same host.",
    )

    log_format: Literal["text", "json"] = Field(
        default="text",
        description="'text': one readable line per record. 'json': one JSON object per line "
        "(ts, level, logger, message, request_id; the access line adds method, path without "
        "its query string, route, status, duration_ms, client).",
    )
    access_log: bool = Field(
        default=False,
        description="Log one line per request in the log format (`serve --access-log` sets "
        "it). Off by default: the load balancer logs requests, and each line costs CPU.",
    )
    metrics_token: str | None = Field(
        default=None,
        description="Bearer token that opens /metrics to non-loopback clients "
        "(Authorization: Bearer <token>, 32+ characters). Unset: /metrics answers only "
        "loopback clients. Behind a reverse proxy on the same host every request comes "
        "from loopback: block /metrics at the proxy and scrape with this token.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_trusted_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_networks(value.split(","))
        if isinstance(value, list | tuple) and all(isinstance(each, str) for each in value):
            return parse_networks(value)
        return value

    @model_validator(mode="after")
    def _normalise(self) -> Settings:
        if self.trust_forwarded_for is not None:
            raise ValueError(
                "COMMUNE_SSO_TRUST_FORWARDED_FOR is no longer read: it took the client address "
                "from whatever the client wrote. Remove it and set COMMUNE_SSO_TRUSTED_PROXIES "
                "to the addresses of your reverse proxies (e.g. 127.0.0.1 or 10.0.0.0/24)."
            )
        if self.client_certificate_header is not None:
            self.client_certificate_header = self.client_certificate_header.strip().lower() or None
        if self.client_certificate_header and not self.trusted_proxies:
            raise ValueError(
                "COMMUNE_SSO_CLIENT_CERTIFICATE_HEADER is read only from trusted proxies: set "
                "COMMUNE_SSO_TRUSTED_PROXIES to the addresses of the proxies that verify client "
                "certificates (e.g. 127.0.0.1)."
            )
        if self.issuer.endswith("/"):
            # Only when it changes: an assignment marks the field as given (issuer_configured).
            self.issuer = self.issuer.rstrip("/")
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"issuer must be an http(s) URL, got {self.issuer!r}")
        # Not parts.query/fragment: a bare "?" or "#" (empty query or fragment) must fail too.
        if "?" in self.issuer or "#" in self.issuer:
            raise ValueError("issuer must not have a query or fragment (OIDC Discovery §2)")
        if self.metrics_token is not None and len(self.metrics_token) < 32:
            raise ValueError("metrics_token must be at least 32 characters")
        if self.environment not in ("development", "production"):
            raise ValueError("environment must be 'development' or 'production'")
        return self

    @property
    def issuer_configured(self) -> bool:
        """Whether the issuer was given (environment, ``_FILE``, configuration file or argument),
        not defaulted."""
        return "issuer" in self.model_fields_set

    @property
    def organisation_names(self) -> dict[str, str]:
        """The province's name by page language ("vi", "en"); empty when not set."""
        names: dict[str, str] = {}
        if self.organisation_name:
            names["vi"] = names["en"] = self.organisation_name
        if self.organisation_name_en:
            names["en"] = self.organisation_name_en
        return names

    @property
    def issuer_is_https(self) -> bool:
        return self.issuer.startswith("https://")

    @property
    def development_secrets_allowed(self) -> bool:
        """Generated secrets are fine for a local http issuer, never for a real deployment."""
        return not self.issuer_is_https and self.environment == "development"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'commune-sso.db'}"

    @property
    def resolved_key_dir(self) -> Path:
        return self.key_dir or self.var_dir / "keys"

    @property
    def resolved_ca_key_dir(self) -> Path:
        return self.ca_key_dir or self.var_dir / "ca-keys"

    def endpoint(self, path: str) -> str:
        return f"{self.issuer}{path}"
