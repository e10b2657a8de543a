"""Custody of the IdP's token-signing keys: one key ring on disk, shared by every process.

Layout of the key ring directory (mode 0700)::

    manifest.json   non-secret metadata: kid, alg and the key's timeline
    <kid>.pem       private key, PKCS#8 PEM encrypted with the passphrase (mode 0600)
    .lock           flock(2) target: writers hold it exclusively, readers shared

Each key's ``kid`` is its RFC 7638 JWK thumbprint (SHA-256), so a ``kid`` names exactly one
public key and can be recomputed by anyone holding the JWKS (RFC 7517 §4.5).

A key moves through ``pending`` (in the JWKS, not signing yet) → ``active`` (signing) →
``retired`` (in the JWKS so tokens it signed still verify) → ``expired`` (gone from the JWKS).
Rotation publishes the new key ``publish_ahead`` before it signs, so relying parties that cache
the JWKS already know it when the first token signed by it arrives (OpenID Connect Core §10.1.1).

Every write replaces whole files atomically (temporary file, fsync, ``os.replace``) under the
exclusive lock, so uvicorn workers and the CLI may share the directory. Other processes notice
a change through :meth:`KeyRing.refresh`, which costs one ``stat`` when nothing changed.
"""

from __future__ import annotations

import base64
import calendar
import errno
import fcntl
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from joserfc.errors import JoseError, UnsupportedAlgorithmError
from joserfc.jwk import ECKey, JWKRegistry, Key, KeyParameters, OKPKey, RSAKey
from joserfc.jws import JWSAlgModel, JWSRegistry, extract_compact, validate_compact
from joserfc.jwt import Token
from pydantic_core import to_json

from keys.errors import InvalidToken, KeyRingError, NoSigningKey, WrongPassphrase

__all__ = ["SUPPORTED_ALGORITHMS", "CertifiedKey", "KeyInfo", "KeyRing"]

SUPPORTED_ALGORITHMS: tuple[str, ...] = ("RS256", "ES256", "EdDSA")

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
_MANIFEST_FORMAT = "commune-sso-keyring/1"

# RSA-2048 rather than 3072: signing speed matters (every token) and 2048 is acceptable
# through 2030 (NIST SP 800-57 Part 1 Rev. 5, table 4).
_RSA_BITS = 2048

# A SHA-256 RFC 7638 thumbprint is 43 base64url characters. Checking it before building a file
# name from it means a tampered manifest cannot point outside the directory.
_KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")

# Only what sign_jwt emits. Anything else (jku, x5u, jwk, crit, b64: false) in a token claiming
# to be ours is an attack or a bug, and refusing it costs nothing.
_ALLOWED_HEADER_PARAMETERS = frozenset({"alg", "kid", "typ"})

_PUBLISHED_STATES = frozenset({"pending", "active", "retired"})


@dataclass(frozen=True)
class KeyInfo:
    """Public facts about one key. All datetimes are timezone-aware UTC."""

    kid: str
    alg: str
    created_at: datetime
    active_from: datetime
    retire_at: datetime | None
    unpublish_at: datetime | None

    def __post_init__(self) -> None:
        for name in ("created_at", "active_from", "retire_at", "unpublish_at"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"KeyInfo.{name} must be timezone-aware")

    def state(self, now: datetime) -> str:
        """``pending``, ``active``, ``retired`` or ``expired`` at ``now``.

        The later boundary wins: a key whose ``retire_at`` precedes its ``active_from`` (a
        pending key overtaken by another rotation) goes from pending to retired, never active.
        """
        if self.unpublish_at is not None and now >= self.unpublish_at:
            return "expired"
        if self.retire_at is not None and now >= self.retire_at:
            return "retired"
        if now < self.active_from:
            return "pending"
        return "active"

    def is_published(self, now: datetime) -> bool:
        return self.state(now) in _PUBLISHED_STATES


class _OneAlgorithmRegistry(JWSRegistry):
    """A JWS registry that allows exactly one algorithm, looked up without side effects.

    joserfc warns on every use of ``EdDSA`` because RFC 9864 deprecates it in favour of
    ``Ed25519``. We keep ``EdDSA`` on purpose: it is the identifier relying parties and
    OpenID Connect libraries understand today. The warning would fire for every signature.
    """

    def __init__(self, alg: str) -> None:
        super().__init__(algorithms=[alg])
        self._alg_name = alg
        self._alg = self.algorithms[alg]

    def get_alg(self, name: str) -> JWSAlgModel:
        if name != self._alg_name:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self._alg


_REGISTRIES: dict[str, JWSRegistry] = {
    alg: _OneAlgorithmRegistry(alg) for alg in SUPPORTED_ALGORITHMS
}


def _generate_key(alg: str) -> Key:
    if alg == "RS256":
        return RSAKey.generate_key(_RSA_BITS)
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519")
    raise ValueError(f"unsupported algorithm {alg!r}")


def _key_matches_alg(key: Key, alg: str) -> bool:
    if alg == "RS256":
        return isinstance(key, RSAKey)
    if alg == "ES256":
        return isinstance(key, ECKey) and key.curve_name == "P-256"
    if alg == "EdDSA":
        return isinstance(key, OKPKey) and key.curve_name == "Ed25519"
    return False


_KEY_CLASSES: dict[str, type[RSAKey] | type[ECKey] | type[OKPKey]] = {
    "RS256": RSAKey,
    "ES256": ECKey,
    "EdDSA": OKPKey,
}


@dataclass(frozen=True)
class _LoadedKey:
    info: KeyInfo
    private: Key
    public: Key
    public_jwk: Mapping[str, Any]
    signer: _Signer


@dataclass(frozen=True)
class _Snapshot:
    """One consistent view of the key ring; replaced as a whole, never mutated."""

    keys: tuple[_LoadedKey, ...]  # oldest first
    by_kid: Mapping[str, _LoadedKey]
    newest_first: Mapping[str, tuple[_LoadedKey, ...]]  # per alg
    manifest_id: tuple[int, int, int, int]

    @classmethod
    def build(cls, keys: Sequence[_LoadedKey], manifest_id: tuple[int, int, int, int]) -> _Snapshot:
        ordered = tuple(sorted(keys, key=lambda k: k.info.created_at))  # stable: manifest order
        return cls(
            keys=ordered,
            by_kid={k.info.kid: k for k in ordered},
            newest_first={
                alg: tuple(k for k in reversed(ordered) if k.info.alg == alg)
                for alg in SUPPORTED_ALGORITHMS
            },
            manifest_id=manifest_id,
        )


def _manifest_id(st: os.stat_result) -> tuple[int, int, int, int]:
    # Every write is a rename of a new file, so the inode changes even when two writes land in
    # the same mtime tick with the same size.
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _check_aware(now: datetime) -> None:
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC)")


def _format_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _parse_time(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise KeyRingError(f"manifest: {field} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise KeyRingError(f"manifest: {field} is not a timestamp") from error
    if parsed.utcoffset() is None:
        raise KeyRingError(f"manifest: {field} has no time zone")
    return parsed.astimezone(UTC)


def _parse_optional_time(value: object, field: str) -> datetime | None:
    return None if value is None else _parse_time(value, field)


def _info_to_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "kid": info.kid,
        "alg": info.alg,
        "created_at": _format_time(info.created_at),
        "active_from": _format_time(info.active_from),
        "retire_at": _format_time(info.retire_at),
        "unpublish_at": _format_time(info.unpublish_at),
    }


def _info_from_json(data: object) -> KeyInfo:
    if not isinstance(data, dict):
        raise KeyRingError("manifest: key entry is not an object")
    kid = data.get("kid")
    alg = data.get("alg")
    if not isinstance(kid, str) or not _KID_PATTERN.fullmatch(kid):
        raise KeyRingError("manifest: invalid kid")
    if alg not in SUPPORTED_ALGORITHMS:
        raise KeyRingError(f"manifest: key {kid} has unsupported alg {alg!r}")
    return KeyInfo(
        kid=kid,
        alg=alg,
        created_at=_parse_time(data.get("created_at"), "created_at"),
        active_from=_parse_time(data.get("active_from"), "active_from"),
        retire_at=_parse_optional_time(data.get("retire_at"), "retire_at"),
        unpublish_at=_parse_optional_time(data.get("unpublish_at"), "unpublish_at"),
    )


def _missing_algorithms(infos: Sequence[KeyInfo]) -> list[str]:
    have = {info.alg for info in infos}
    return [alg for alg in SUPPORTED_ALGORITHMS if alg not in have]


class _Directory:
    """File-level operations on the key ring directory. Callers hold the lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest = path / MANIFEST_NAME

    def ensure(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A key directory that others can list or enter leaks which keys exist and lets them
        # race our renames; tighten it even if someone created it with the umask's mode.
        # Only when needed: on a read-only mount (every host but the one that rotates keys)
        # chmod fails even when the mode is already right (PITFALLS).
        mode = stat.S_IMODE(os.stat(self.path).st_mode)
        if mode == 0o700:
            return
        try:
            os.chmod(self.path, 0o700)
        except OSError as error:
            raise KeyRingError(
                f"key ring directory {self.path} has mode {mode:04o} and cannot be changed to "
                f"0700 ({error.strerror}): set it to 0700 where it is writable"
            ) from error

    def pem_path(self, kid: str) -> Path:
        return self.path / f"{kid}.pem"

    @contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[None]:
        # flock, not lockf: flock locks belong to the open file description, so two threads of
        # one process exclude each other too, and closing an unrelated descriptor of the same
        # file cannot drop the lock.
        fd = self._open_lock(exclusive=exclusive)
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _open_lock(self, *, exclusive: bool) -> int | None:
        try:
            return os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            if exclusive or error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
        # A read-only directory: nobody can write this ring through it, so a reader needs no
        # lock; one the writing host made is still honoured.
        try:
            return os.open(self.path / LOCK_NAME, os.O_RDONLY)
        except FileNotFoundError:
            return None

    def write_atomic(self, target: Path, data: bytes) -> tuple[int, int, int, int]:
        """Replace ``target`` with ``data`` (mode 0600) so readers see old or new, never half."""
        tmp = self.path / f".{target.name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
                written = _manifest_id(os.fstat(fd))
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._sync_directory()
        return written

    def _sync_directory(self) -> None:
        # Makes the rename itself durable: without it a crash can bring back the old manifest.
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_manifest(self) -> tuple[list[KeyInfo], tuple[int, int, int, int]] | None:
        try:
            with open(self.manifest, "rb") as f:
                manifest_id = _manifest_id(os.fstat(f.fileno()))
                raw = f.read()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
        except ValueError as error:
            raise KeyRingError("manifest.json is not valid JSON") from error
        if not isinstance(data, dict) or data.get("format") != _MANIFEST_FORMAT:
            raise KeyRingError(f"manifest.json is not a {_MANIFEST_FORMAT} manifest")
        entries = data.get("keys")
        if not isinstance(entries, list):
            raise KeyRingError("manifest: keys is not a list")
        infos = [_info_from_json(entry) for entry in entries]
        if len({info.kid for info in infos}) != len(infos):
            raise KeyRingError("manifest: duplicate kid")
        return infos, manifest_id

    def write_manifest(self, infos: Sequence[KeyInfo]) -> tuple[int, int, int, int]:
        body = {"format": _MANIFEST_FORMAT, "keys": [_info_to_json(i) for i in infos]}
        return self.write_atomic(self.manifest, json.dumps(body, indent=2).encode() + b"\n")

    def read_pems(self, infos: Sequence[KeyInfo], skip: Mapping[str, object]) -> dict[str, bytes]:
        pems: dict[str, bytes] = {}
        for info in infos:
            if info.kid in skip:
                continue
            try:
                pems[info.kid] = self.pem_path(info.kid).read_bytes()
            except FileNotFoundError as error:
                raise KeyRingError(f"private key file of {info.kid} is missing") from error
        return pems


def _encrypt_pem(key: Key, passphrase: bytes) -> bytes:
    native = key.private_key
    if native is None or isinstance(native, bytes):  # pragma: no cover - we only make private keys
        raise KeyRingError("not an asymmetric private key")
    return native.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.BestAvailableEncryption(passphrase),
    )


# Decrypted key material by (kid, alg, encrypted PEM, passphrase). Decrypting is the slow part
# of opening a ring (the PKCS#8 key derivation, RSA key validation), and a process opens the same
# ring again: a reload after another host rotated, each app the test suite builds. The ring
# keeps these keys in memory anyway; the bound keeps a long-lived process's rotations in check.
_decrypted: dict[tuple[str, str, bytes, bytes], tuple[Key, Key, Mapping[str, Any]]] = {}
_MAX_DECRYPTED = 64


def _decrypt(info: KeyInfo, pem: bytes, passphrase: bytes) -> _LoadedKey:
    cache_key = (info.kid, info.alg, pem, passphrase)
    material = _decrypted.get(cache_key)
    if material is None:
        material = _decrypt_material(info, pem, passphrase)
        if len(_decrypted) >= _MAX_DECRYPTED:
            _decrypted.clear()
        _decrypted[cache_key] = material
    private, public, public_jwk = material
    return _LoadedKey(
        info=info,
        private=private,
        public=public,
        public_jwk=public_jwk,
        signer=_Signer.of(info, private),
    )


def _decrypt_material(
    info: KeyInfo, pem: bytes, passphrase: bytes
) -> tuple[Key, Key, Mapping[str, Any]]:
    # An unencrypted key file is refused rather than used: it means someone replaced it.
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" not in pem:
        raise KeyRingError(f"private key file of {info.kid} is not an encrypted PKCS#8 PEM")
    parameters: KeyParameters = {"kid": info.kid, "alg": info.alg, "use": "sig"}
    try:
        private: Key = _KEY_CLASSES[info.alg].import_key(pem, parameters, password=passphrase)
    except (ValueError, TypeError) as error:
        raise WrongPassphrase(
            f"cannot decrypt the private key {info.kid}: wrong passphrase or damaged file"
        ) from error
    except JoseError as error:
        raise KeyRingError(
            f"private key file of {info.kid} does not hold an {info.alg} key"
        ) from error
    if not _key_matches_alg(private, info.alg):
        raise KeyRingError(f"private key file of {info.kid} does not hold an {info.alg} key")
    # The kid is a thumbprint (RFC 7638 §3), so a swapped or edited key file cannot pass as
    # another key.
    if private.thumbprint() != info.kid:
        raise KeyRingError(f"private key file of {info.kid} holds a different key")
    public_jwk: dict[str, Any] = {
        **private.as_dict(private=False),
        "kid": info.kid,
        "alg": info.alg,
        "use": "sig",
    }
    public = JWKRegistry.import_key(public_jwk)
    return private, public, public_jwk


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)
# Header segments per typ are cached; typ comes from our code (a handful of values), the bound
# only keeps a caller passing arbitrary values from growing the cache.
_MAX_CACHED_HEADERS = 16


class _Signer:
    """One key's native ``cryptography`` private key and its JWS header segments."""

    def __init__(self, kid: str, alg: str, native: Any) -> None:
        self.kid = kid
        self.alg = alg
        self.native = native
        self._headers: dict[str | None, bytes] = {}

    @classmethod
    def of(cls, info: KeyInfo, private: Key) -> _Signer:
        native = private.private_key
        expected = {
            "RS256": rsa.RSAPrivateKey,
            "ES256": ec.EllipticCurvePrivateKey,
            "EdDSA": ed25519.Ed25519PrivateKey,
        }[info.alg]
        if not isinstance(native, expected):  # pragma: no cover - _decrypt checked the type
            raise KeyRingError(f"private key file of {info.kid} does not hold an {info.alg} key")
        return cls(info.kid, info.alg, native)

    def header_segment(self, typ: str | None) -> bytes:
        segment = self._headers.get(typ)
        if segment is None:
            header: dict[str, str] = {"alg": self.alg, "kid": self.kid}
            if typ is not None:
                header["typ"] = typ
            segment = _b64url(json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode())
            if len(self._headers) < _MAX_CACHED_HEADERS:
                self._headers[typ] = segment
        return segment

    def sign(self, signing_input: bytes) -> bytes:
        if self.alg == "RS256":
            signature: bytes = self.native.sign(signing_input, _PKCS1V15, _SHA256)
            return signature
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.native.sign(signing_input, _ECDSA_SHA256))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        ed25519_signature: bytes = self.native.sign(signing_input)
        return ed25519_signature


# Long enough never to matter: SAML trusts the certificate because metadata names it, not its
# dates (SAML V2.0 Metadata Interoperability Profile §2.5.1); rotation replaces it long before.
_CERTIFICATE_LIFETIME = timedelta(days=20 * 365)
# Key types that can sign an X.509 certificate for XML signatures (EdDSA has no XML-DSig URI that
# SAML software accepts).
_CERTIFIABLE = frozenset({"RS256", "ES256"})


@dataclass(frozen=True)
class CertifiedKey:
    """A signing key with a self-signed X.509 certificate, for XML signatures (SAML 2.0), whose
    verifiers want a certificate rather than a JWK. ``private_key`` is a ``cryptography`` key
    object (an HSM key would behave the same)."""

    kid: str
    alg: str
    private_key: Any
    certificate: x509.Certificate


def _self_signed_certificate(loaded: _LoadedKey) -> x509.Certificate:
    """The same bytes in every process and on every host: subject, serial and dates come from
    the key's manifest entry, and the signature is deterministic (RSA PKCS#1 v1.5; ECDSA with
    RFC 6979 nonces), so metadata served by any worker names the same certificate."""
    info, native = loaded.info, loaded.signer.native
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"commune-sso {info.kid}")])
    digest = hashes.Hash(hashes.SHA256())
    digest.update(info.kid.encode("ascii"))
    serial = (int.from_bytes(digest.finalize()[:16], "big") >> 1) | 1
    not_before = info.created_at.astimezone(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(native.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + _CERTIFICATE_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if info.alg == "ES256":
        return builder.sign(native, hashes.SHA256(), ecdsa_deterministic=True)
    return builder.sign(native, hashes.SHA256())


class KeyRing:
    """The token-signing keys of this IdP (RFC 7517 key set, RFC 7638 kids, RFC 7515 JWS).

    Private keys are decrypted once per load and kept as joserfc key objects, so signing never
    touches the disk. One instance is safe to share between threads: its state is an immutable
    snapshot swapped in one assignment.
    """

    def __init__(self, directory: Path, passphrase: bytes, snapshot: _Snapshot) -> None:
        """Use :meth:`load_or_create`."""
        self._dir = _Directory(directory)
        # Kept so that keys another process rotates in can be decrypted on refresh().
        self._passphrase = passphrase
        self._snapshot = snapshot
        self._reload_lock = threading.Lock()
        # kid -> certificate; a kid names one key forever, so entries never go stale.
        self._certificates: dict[str, x509.Certificate] = {}
        self._jwks_json: tuple[_Snapshot, tuple[str, ...], bytes] | None = None

    @classmethod
    def load_or_create(cls, directory: Path, passphrase: bytes, *, now: datetime) -> KeyRing:
        """Open the ring; on first start create one key per SUPPORTED_ALGORITHMS, active at once.

        An existing ring that lacks an algorithm of SUPPORTED_ALGORITHMS gets a key for it the
        same way. Raises :class:`WrongPassphrase` if existing keys cannot be decrypted.
        """
        _check_aware(now)
        if not isinstance(passphrase, bytes) or not passphrase:
            raise ValueError("the key ring passphrase must be non-empty bytes")
        now = now.astimezone(UTC)
        d = _Directory(Path(directory))
        d.ensure()
        # A complete ring is only read, under a shared lock: hosts that mount it read-only
        # load it too.
        with d.locked(exclusive=False):
            current = d.read_manifest()
            complete = current is not None and not _missing_algorithms(current[0])
            if complete:
                assert current is not None
                pems = d.read_pems(current[0], skip={})
        if complete:
            assert current is not None
            loaded = [_decrypt(info, pems[info.kid], passphrase) for info in current[0]]
            return cls(d.path, passphrase, _Snapshot.build(loaded, current[1]))
        with d.locked(exclusive=True):
            current = d.read_manifest()
            infos = current[0] if current is not None else []
            missing = _missing_algorithms(infos)
            if not missing and current is not None:
                manifest_id = current[1]
            else:
                if infos:
                    # Prove the passphrase before adding keys encrypted with it, or a typo would
                    # leave a ring whose keys need two different passphrases.
                    first = infos[0]
                    _decrypt(first, d.read_pems([first], skip={})[first.kid], passphrase)
                for alg in missing:
                    key = _generate_key(alg)
                    info = KeyInfo(
                        kid=key.thumbprint(),
                        alg=alg,
                        created_at=now,
                        active_from=now,
                        retire_at=None,
                        unpublish_at=None,
                    )
                    d.write_atomic(d.pem_path(info.kid), _encrypt_pem(key, passphrase))
                    infos.append(info)
                manifest_id = d.write_manifest(infos)
            pems = d.read_pems(infos, skip={})
        # Decrypting is the slow part (RSA key validation); do it after releasing the lock.
        loaded = [_decrypt(info, pems[info.kid], passphrase) for info in infos]
        return cls(d.path, passphrase, _Snapshot.build(loaded, manifest_id))

    @property
    def directory(self) -> Path:
        return self._dir.path

    def keys(self) -> list[KeyInfo]:
        """All keys in the manifest, oldest first."""
        return [k.info for k in self._snapshot.keys]

    def _signing_key(self, alg: str, now: datetime) -> _LoadedKey:
        for candidate in self._snapshot.newest_first.get(alg, ()):
            if candidate.info.state(now) == "active":
                return candidate
        raise NoSigningKey(f"no active {alg} key at {now.isoformat()}")

    def sign_jwt(
        self, claims: dict[str, Any], *, alg: str, now: datetime, typ: str | None = None
    ) -> str:
        """Sign ``claims`` as a compact JWS (RFC 7515 §7.1, RFC 7519).

        The protected header holds ``alg``, ``kid`` and, when given, ``typ`` (``at+jwt`` for
        RFC 9068 access tokens, ``logout+jwt`` for back-channel logout tokens). The newest key of
        ``alg`` that is active at ``now`` signs. Raises :class:`NoSigningKey` if there is none.

        Every access token is signed here, so the JWS is built directly (the same bytes
        joserfc's ``jwt.encode`` produces: compact JSON, the header ASCII-escaped, the payload
        UTF-8) with the header segment computed once per key and ``typ``, and the signature
        made with ``cryptography``: RS256 is RSASSA-PKCS1-v1_5 with SHA-256, ES256 the raw
        32-byte ``r || s`` of RFC 7518 §3.4 (not DER), EdDSA Ed25519 (RFC 8037 §3.1).
        """
        _check_aware(now)
        signer = self._signing_key(alg, now).signer
        # A copy, with datetime exp/iat/nbf as NumericDate (RFC 7519 §2), as joserfc does:
        # the caller's claims stay as they were.
        payload = dict(claims)
        for name in ("exp", "iat", "nbf"):
            value = payload.get(name)
            if isinstance(value, datetime):
                payload[name] = calendar.timegm(value.utctimetuple())
        # pydantic-core writes the same bytes as json.dumps(ensure_ascii=False, compact), faster.
        encoded = _b64url(to_json(payload))
        signing_input = signer.header_segment(typ) + b"." + encoded
        return (signing_input + b"." + _b64url(signer.sign(signing_input))).decode("ascii")

    def public_jwks(self, *, now: datetime) -> dict[str, Any]:
        """The JWK Set (RFC 7517 §5) of keys published at ``now``: pending, active and retired.

        Each JWK carries ``kid``, ``alg`` and ``use: "sig"`` and no private member.
        """
        _check_aware(now)
        return {
            "keys": [dict(k.public_jwk) for k in self._snapshot.keys if k.info.is_published(now)]
        }

    def public_jwks_json(self, *, now: datetime) -> bytes:
        """:meth:`public_jwks` encoded, reused while the same keys are published: the JWKS
        endpoint answers with it on every request (issue 15), and the set changes only when a
        key is added, rotated or reaches its publication window's end."""
        _check_aware(now)
        snapshot = self._snapshot
        published = tuple(k.info.kid for k in snapshot.keys if k.info.is_published(now))
        cached = self._jwks_json
        if cached is not None and cached[0] is snapshot and cached[1] == published:
            return cached[2]
        keys = [dict(k.public_jwk) for k in snapshot.keys if k.info.kid in published]
        encoded = to_json({"keys": keys})
        self._jwks_json = (snapshot, published, encoded)
        return encoded

    def _certificate(self, loaded: _LoadedKey) -> x509.Certificate:
        certificate = self._certificates.get(loaded.info.kid)
        if certificate is None:
            certificate = _self_signed_certificate(loaded)
            self._certificates[loaded.info.kid] = certificate
        return certificate

    def certified_signing_key(self, *, alg: str, now: datetime) -> CertifiedKey:
        """The key of ``alg`` that signs at ``now`` with its certificate (RS256 or ES256), for
        XML signatures. Raises :class:`NoSigningKey` if there is none."""
        _check_aware(now)
        if alg not in _CERTIFIABLE:
            raise NoSigningKey(f"{alg} keys are not used for XML signatures")
        loaded = self._signing_key(alg, now)
        return CertifiedKey(
            kid=loaded.info.kid,
            alg=alg,
            private_key=loaded.signer.native,
            certificate=self._certificate(loaded),
        )

    def published_certificates(self, *, alg: str, now: datetime) -> list[x509.Certificate]:
        """Certificates of the ``alg`` keys published at ``now`` (pending, active, retired),
        newest first: SAML metadata announces a rotated key before it signs, as the JWKS
        does (SAML V2.0 Metadata Interoperability Profile §2.5.1, several KeyDescriptors)."""
        _check_aware(now)
        if alg not in _CERTIFIABLE:
            return []
        return [
            self._certificate(loaded)
            for loaded in self._snapshot.newest_first.get(alg, ())
            if loaded.info.is_published(now)
        ]

    def verify_jwt(
        self,
        token: str,
        *,
        now: datetime,
        algorithms: Sequence[str] = SUPPORTED_ALGORITHMS,
    ) -> Token:
        """Verify the signature of one of OUR tokens (RFC 7515 §5.2) against the published keys.

        The header must name a ``kid`` published at ``now``; its ``alg`` must equal that key's
        algorithm and be in ``algorithms``. Taking the algorithm from our key, never from the
        token, is what defeats alg-confusion attacks (RFC 8725 §2.1, §3.1). Returns joserfc's
        ``Token``. Raises :class:`InvalidToken` with a short reason for any problem. Claims
        (``exp``, ``iss``, ``aud``) are the caller's to check.
        """
        _check_aware(now)
        snapshot = self._snapshot
        try:
            raw = token.encode("ascii")
            obj = extract_compact(raw)
        except (JoseError, ValueError, TypeError, AttributeError) as error:
            raise InvalidToken("malformed token") from error
        header = obj.headers()
        if not _ALLOWED_HEADER_PARAMETERS.issuperset(header):
            raise InvalidToken("unexpected header parameter")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("missing kid")
        key = snapshot.by_kid.get(kid)
        if key is None or not key.info.is_published(now):
            raise InvalidToken("unknown kid")
        if header.get("alg") != key.info.alg:
            raise InvalidToken("alg does not match the key")
        if key.info.alg not in algorithms:
            raise InvalidToken("alg not allowed")
        try:
            valid = validate_compact(obj, key.public, registry=_REGISTRIES[key.info.alg])
        except (JoseError, ValueError, TypeError) as error:
            raise InvalidToken("bad signature") from error
        if not valid:
            raise InvalidToken("bad signature")
        try:
            claims = json.loads(obj.payload)
        except (ValueError, TypeError) as error:
            raise InvalidToken("payload is not JSON") from error
        if not isinstance(claims, dict):
            raise InvalidToken("payload is not a JSON object")
        return Token(header, claims)

    def rotate(
        self,
        *,
        now: datetime,
        publish_ahead: timedelta,
        keep_published: timedelta,
        algorithms: Sequence[str] | None = None,
    ) -> list[KeyInfo]:
        """Add a new key per algorithm (default: all) and schedule the current ones out.

        The new key is published at once and signs from ``now + publish_ahead``, so relying
        parties that cache the JWKS (RFC 7517 §5) already have it when it starts signing. Every
        key of that algorithm that would still sign after that moment gets
        ``retire_at = new.active_from`` and ``unpublish_at = retire_at + keep_published``, so
        tokens it signed keep verifying until they expire; ``keep_published`` must therefore be
        at least the longest token lifetime.

        Keys already expired at ``now`` are dropped from the manifest and their private key
        files deleted: they can no longer verify anything and only add exposure.

        Persists to disk (other processes pick it up with :meth:`refresh`) and returns the new
        keys.
        """
        _check_aware(now)
        now = now.astimezone(UTC)
        if publish_ahead < timedelta(0) or keep_published < timedelta(0):
            raise ValueError("publish_ahead and keep_published must not be negative")
        algs = list(SUPPORTED_ALGORITHMS if algorithms is None else dict.fromkeys(algorithms))
        unknown = [alg for alg in algs if alg not in SUPPORTED_ALGORITHMS]
        if unknown:
            raise ValueError(f"unsupported algorithms: {', '.join(unknown)}")

        active_from = now + publish_ahead
        # Key generation (RSA) is slow: do it before taking the lock other processes wait on.
        generated = {alg: _generate_key(alg) for alg in algs}
        new_infos = [
            KeyInfo(
                kid=key.thumbprint(),
                alg=alg,
                created_at=now,
                active_from=active_from,
                retire_at=None,
                unpublish_at=None,
            )
            for alg, key in generated.items()
        ]
        unpublish_at = active_from + keep_published

        d = self._dir
        with self._reload_lock:
            with d.locked(exclusive=True):
                current = d.read_manifest()
                if current is None:
                    raise KeyRingError(f"{d.manifest} has disappeared")
                # The manifest on disk, not our snapshot, is the truth: another process may have
                # rotated since we last looked.
                kept: list[KeyInfo] = []
                pruned: list[KeyInfo] = []
                for info in current[0]:
                    if info.state(now) == "expired":
                        pruned.append(info)
                    elif info.alg in generated and (
                        info.retire_at is None or info.retire_at > active_from
                    ):
                        kept.append(replace(info, retire_at=active_from, unpublish_at=unpublish_at))
                    else:
                        kept.append(info)
                for info in new_infos:
                    d.write_atomic(
                        d.pem_path(info.kid), _encrypt_pem(generated[info.alg], self._passphrase)
                    )
                infos = kept + new_infos
                manifest_id = d.write_manifest(infos)
                # Only once the manifest no longer names them, so no reader looks for them.
                for info in pruned:
                    d.pem_path(info.kid).unlink(missing_ok=True)
                cached = self._snapshot.by_kid
                pems = d.read_pems(infos, skip=cached)
            self._install(infos, pems, cached, manifest_id)
        return new_infos

    def refresh(self) -> None:
        """Re-read manifest.json if another process changed it.

        Costs one ``stat`` when nothing changed; only keys not seen before are decrypted.
        Callers should still call it at most about once a second per process.
        """
        try:
            st = os.stat(self._dir.manifest)
        except FileNotFoundError as error:
            raise KeyRingError(f"{self._dir.manifest} has disappeared") from error
        if _manifest_id(st) == self._snapshot.manifest_id:
            return
        with self._reload_lock:
            d = self._dir
            with d.locked(exclusive=False):
                current = d.read_manifest()
                if current is None:
                    raise KeyRingError(f"{d.manifest} has disappeared")
                infos, manifest_id = current
                if manifest_id == self._snapshot.manifest_id:
                    return  # another thread of this process got here first
                cached = self._snapshot.by_kid
                pems = d.read_pems(infos, skip=cached)
            self._install(infos, pems, cached, manifest_id)

    def _install(
        self,
        infos: Sequence[KeyInfo],
        pems: Mapping[str, bytes],
        cached: Mapping[str, _LoadedKey],
        manifest_id: tuple[int, int, int, int],
    ) -> None:
        loaded: list[_LoadedKey] = []
        for info in infos:
            if info.kid in pems:
                loaded.append(_decrypt(info, pems[info.kid], self._passphrase))
            else:
                # Same kid means same key material (it is a thumbprint); only the timeline moved.
                loaded.append(replace(cached[info.kid], info=info))
        self._snapshot = _Snapshot.build(loaded, manifest_id)
