"""Everything the CA needs at run time, built once by the composition root (CONVENTIONS §5)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from ca_admin.models import Authority
from ca_admin.officials import ApproverScope, OfficialDirectory
from ca_admin.partition_numbers import PartitionNumbers
from ca_admin.profiles import StatusUrls
from ca_admin.signing import CaKeyStore
from ca_admin.time_stamp_ledger import TimeStampLedger
from ca_admin.tsa_signer import TsaSignerCache
from core.clock import Clock

if TYPE_CHECKING:  # ca_admin.web and ca_admin.reminders import this module
    from ca_admin.mail import Mailer
    from ca_admin.web.bearer import AccessTokenVerifier
    from ca_admin.web.pages.oidc_client import PagesClient
    from core.web.csrf import CsrfProtection
    from core.web.templating import PageRenderer

# Another process (the CLI's `ca init`, another worker) may add an issuing CA.
AUTHORITY_CACHE_SECONDS = 5.0
# The TSA policy of commune-sso's time-stamping practice when none is configured: an OID under
# 2.25 (ITU-T X.667, a UUID as an OID), the same default as COMMUNE_SSO_TSA_POLICY_OID.
DEFAULT_TSA_POLICY = "2.25.134260980301665016976231259157429528141"


@dataclass(frozen=True)
class LoadedAuthority:
    """An authority row with its certificate parsed once (parsing per OCSP request costs)."""

    id: int
    name: str
    role: str
    key_uri: str
    signature_scheme: str
    certificate: x509.Certificate
    active: bool
    ocsp_key_uri: str | None
    ocsp_certificate: x509.Certificate | None
    name_hash_sha1: bytes
    key_hash_sha1: bytes
    # RFC 6960 §4.1.1 CertID (hash algorithm name, issuerNameHash, issuerKeyHash) for every
    # algorithm a client may use, so the responder finds its issuer with one dict lookup.
    cert_ids: tuple[tuple[str, bytes, bytes], ...] = ()


@dataclass
class CaRuntime:
    clock: Clock
    session_factory: sessionmaker[Session]
    key_store: CaKeyStore
    base_url: str  # public URL of the service: CRL, OCSP and caIssuers URLs start with it
    key_dir: Path  # where `ca init` puts file keys when no URI is given
    directory: OfficialDirectory
    approvers: ApproverScope
    crl_lifetime: timedelta = timedelta(hours=24)
    crl_refresh_before: timedelta = timedelta(hours=6)
    # Certificates per CRL partition (ca_admin.crl_partitions); 0: no partitions.
    crl_partition_size: int = 100_000
    # How long the full CRL of a partitioned CA may lag behind a change of a partitioned
    # certificate (its partition CRL is signed at once; ca_admin.revocation.publish_crls).
    full_crl_max_delay: timedelta = timedelta(minutes=5)
    ocsp_lifetime: timedelta = timedelta(hours=1)
    # Pre-produced OCSP answers are re-signed this long before their nextUpdate (maintenance
    # runs every 5 minutes, so several passes get the chance).
    ocsp_refresh_before: timedelta = timedelta(minutes=30)
    # How long a renewed certificate stays valid once its successor is issued (renewals.py).
    supersede_after: timedelta = timedelta(days=7)
    # O= of certificates whose official has no agency (COMMUNE_SSO_ORGANISATION_NAME).
    organisation_name: str | None = None
    # Verifies the IdP's access tokens for the REST API; None: the API answers 401 to everyone.
    access_tokens: AccessTokenVerifier | None = None
    # The CA pages (/ca/pages/): templates, CSRF, and the pages' own OIDC client of the IdP;
    # None: the pages answer that they are not available (the CLI builds none of this).
    pages: PageRenderer | None = None
    csrf: CsrfProtection | None = None
    pages_client: PagesClient | None = None
    # Expiry reminders by e-mail (ca_admin/reminders.py); None: no reminders are sent.
    mailer: Mailer | None = None
    # RFC 3161 time-stamping (ca_admin.time_stamping): the policy OID of our tokens and the
    # accuracy they state.
    tsa_policy: str = DEFAULT_TSA_POLICY
    tsa_accuracy: timedelta = timedelta(seconds=1)
    # The signing TSA unit, re-read every few seconds (another process may make a new one).
    tsa_signers: TsaSignerCache = field(default_factory=TsaSignerCache, init=False)
    # CRL partition numbers claimed ahead and partitions seen published (crl_partitions).
    partition_numbers: PartitionNumbers = field(default_factory=PartitionNumbers, init=False)
    # Signature validation (signature_validation.py): trust anchors besides our roots (e.g.
    # the Government CA), the largest document accepted, and whether other anchors'
    # certificates get their OCSP answers and CRLs fetched.
    validation_anchors: tuple[x509.Certificate, ...] = ()
    validation_max_bytes: int = 20 * 1024 * 1024
    validation_fetch_revocation: bool = True
    _authorities: dict[int, LoadedAuthority] = field(default_factory=dict, init=False)
    _loaded_at: float = field(default=-1e9, init=False)
    _ocsp_issuers: dict[tuple[str, bytes, bytes], LoadedAuthority] = field(
        default_factory=dict, init=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _autocommit_engine: Engine | None = field(default=None, init=False)
    _time_stamp_ledger: TimeStampLedger | None = field(default=None, init=False)

    def crl_url(self, authority_name: str, partition: int | None = None) -> str:
        """The full CRL's URL, or with ``partition`` that partition's CRL's."""
        if partition is None:
            return f"{self.base_url}/ca/crl/{authority_name}.crl"
        return f"{self.base_url}/ca/crl/{authority_name}/{partition}.crl"

    def status_urls(self, authority_name: str, partition: int | None = None) -> StatusUrls:
        return StatusUrls(
            crl=self.crl_url(authority_name, partition),
            ocsp=f"{self.base_url}/ca/ocsp",
            ca_issuers=f"{self.base_url}/ca/certs/{authority_name}.cer",
        )

    def authorities(self, session: Session) -> dict[int, LoadedAuthority]:
        if time.monotonic() - self._loaded_at < AUTHORITY_CACHE_SECONDS:
            return self._authorities
        rows = session.scalars(select(Authority).order_by(Authority.id)).all()
        # A handful of rows: parsing them again every few seconds costs microseconds.
        loaded = {row.id: load_authority(row) for row in rows}
        issuers = {
            cert_id: authority
            for authority in loaded.values()
            if authority.role == "issuing" and authority.ocsp_certificate is not None
            for cert_id in authority.cert_ids
        }
        with self._lock:
            self._authorities = loaded
            self._ocsp_issuers = issuers
            self._loaded_at = time.monotonic()
        return loaded

    def ocsp_issuer(
        self, session: Session | None, cert_id: tuple[str, bytes, bytes]
    ) -> LoadedAuthority | None:
        """The issuing CA we answer OCSP for whose CertID hashes these are (RFC 6960 §4.1.1).

        Without a session, only from a fresh cache: raises :class:`StaleAuthorities` when the
        cache must be read again first.
        """
        if session is not None:
            self.authorities(session)
        elif time.monotonic() - self._loaded_at >= AUTHORITY_CACHE_SECONDS:
            raise StaleAuthorities
        return self._ocsp_issuers.get(cert_id)

    def engine(self) -> Engine:
        """The sessions' engine: for a short transaction of its own beside the caller's."""
        bind = self.session_factory.kw["bind"]
        assert isinstance(bind, Engine)
        return bind

    def autocommit_engine(self) -> Engine:
        """The sessions' engine (same pool) in autocommit: a single SELECT is its own
        transaction, without the BEGIN and COMMIT round trips (the OCSP responder's reads)."""
        if self._autocommit_engine is None:
            self._autocommit_engine = self.engine().execution_options(isolation_level="AUTOCOMMIT")
        return self._autocommit_engine

    def forget_authorities(self) -> None:
        """After a change in this process: the next read goes to the database."""
        self._loaded_at = -1e9
        self.tsa_signers.forget()
        self.partition_numbers.forget_published()

    def time_stamp_ledger(self) -> TimeStampLedger:
        """Where every time-stamp token is recorded and audited (group commit, one per process)."""
        if self._time_stamp_ledger is None:
            with self._lock:
                if self._time_stamp_ledger is None:
                    self._time_stamp_ledger = TimeStampLedger(
                        session_factory=self.session_factory, clock=self.clock
                    )
        return self._time_stamp_ledger


class StaleAuthorities(Exception):
    """The authority cache is older than AUTHORITY_CACHE_SECONDS and no session was given."""


# RFC 6960 §4.1.1 leaves the CertID hash to the client; RFC 5019 §2.1.1 clients use SHA-1.
CERT_ID_HASHES: tuple[hashes.HashAlgorithm, ...] = (
    hashes.SHA1(),  # noqa: S303 — CertID hashes identify, they do not protect
    hashes.SHA224(),
    hashes.SHA256(),
    hashes.SHA384(),
    hashes.SHA512(),
)


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def load_authority(row: Authority) -> LoadedAuthority:
    certificate = x509.load_der_x509_certificate(row.certificate_der)
    name = certificate.subject.public_bytes()
    key_bits = subject_public_key_bits(certificate)
    cert_ids = tuple(
        (algorithm.name, _digest(algorithm, name), _digest(algorithm, key_bits))
        for algorithm in CERT_ID_HASHES
    )
    return LoadedAuthority(
        id=row.id,
        name=row.name,
        role=row.role,
        key_uri=row.key_uri,
        signature_scheme=row.signature_scheme,
        certificate=certificate,
        active=row.active,
        ocsp_key_uri=row.ocsp_key_uri,
        ocsp_certificate=(
            x509.load_der_x509_certificate(row.ocsp_certificate_der)
            if row.ocsp_certificate_der
            else None
        ),
        name_hash_sha1=cert_ids[0][1],
        key_hash_sha1=cert_ids[0][2],
        cert_ids=cert_ids,
    )


def subject_public_key_bits(certificate: x509.Certificate) -> bytes:
    """The BIT STRING contents of subjectPublicKey (RFC 6960 §4.1.1 issuerKeyHash input)."""
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _der_bit_string_payload(spki)


def _der_bit_string_payload(spki: bytes) -> bytes:
    # SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }
    def read_header(data: bytes, offset: int) -> tuple[int, int, int]:
        tag = data[offset]
        length = data[offset + 1]
        offset += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(data[offset : offset + count], "big")
            offset += count
        return tag, length, offset

    _, _, inner = read_header(spki, 0)
    _, algorithm_length, algorithm_start = read_header(spki, inner)
    tag, bit_string_length, start = read_header(spki, algorithm_start + algorithm_length)
    assert tag == 0x03
    return spki[start + 1 : start + bit_string_length]  # skip the unused-bits octet
