"""Everything the IdP needs at run time, built once by the app factory (CONVENTIONS §5)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.settings import Settings
from core.web.csrf import CsrfProtection
from core.web.templating import PageRenderer
from idp.certificate_sign_in import CertificateCheck
from idp.client_keys import ClientKeyCache
from idp.clients import ClientCache
from idp.federation.document_cache import UpstreamDocumentCache
from idp.passwords import PasswordHasher
from idp.setup_checklist import OutsideState
from idp.token_state import TokenStateCache
from keys.keyring import KeyRing

# Another process (the CLI's `keys rotate`, another worker) may change the ring on disk.
KEYRING_REFRESH_INTERVAL = 1.0


@dataclass
class IdpRuntime:
    settings: Settings
    clock: Clock
    session_factory: sessionmaker[Session]
    keyring_on_disk: KeyRing
    passwords: PasswordHasher
    pages: PageRenderer
    csrf: CsrfProtection
    server_secret: bytes  # for HMACs and sealing (e.g. activation codes awaiting download)
    client_cache: ClientCache = field(default_factory=ClientCache)
    # Clients' JWK Sets fetched from their jwks_uri (private_key_jwt, request objects).
    client_keys: ClientKeyCache = field(default_factory=ClientKeyCache)
    # Filled by the composition root (commune_sso/app.py): the CA's state for the checklist.
    setup_state: OutsideState = field(default_factory=OutsideState)
    # Filled by the composition root: the CA's verdict on a presented client certificate
    # (certificate sign-in, idp/certificate_sign_in.py); None: no CA, no certificate sign-in.
    certificate_check: CertificateCheck | None = None
    # Revocation state and userinfo claims for the token endpoints' fast path; filled and
    # kept current while the app's lifespan runs its feed (idp/token_state.py).
    token_state: TokenStateCache = field(init=False)
    # The upstream providers' discovery documents and JWK Sets (idp/federation/document_cache.py).
    upstream_documents: UpstreamDocumentCache = field(init=False)
    _keyring_checked: float = field(default=0.0, init=False)
    _keyring_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.token_state = TokenStateCache(self.session_factory, lambda: self.client_cache)
        self.upstream_documents = UpstreamDocumentCache(self.clock)

    @property
    def keyring(self) -> KeyRing:
        now = time.monotonic()
        if now - self._keyring_checked >= KEYRING_REFRESH_INTERVAL:
            with self._keyring_lock:
                if now - self._keyring_checked >= KEYRING_REFRESH_INTERVAL:
                    self.keyring_on_disk.refresh()
                    self._keyring_checked = now
        return self.keyring_on_disk

    @property
    def session_cookie_name(self) -> str:
        # The __Host- prefix pins the cookie to this host, https and path "/" (RFC 6265bis).
        return "__Host-sso_session" if self.settings.issuer_is_https else "sso_session"
