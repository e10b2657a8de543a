"""CA signing keys named by URI: encrypted PKCS#8 files and PKCS#11 (HSM) objects.

Settings name a key by URI (CONVENTIONS §8):

``file:/abs/path/key.pem``, ``file:relative/key.pem`` (relative to the working directory)
    The private key as PKCS#8 PEM, encrypted with the passphrase (PBES2,
    ``BestAvailableEncryption``), mode 0600, written atomically and never over an existing file.

``pkcs11:token=<label>;object=<label>?module-path=<lib.so>&pin-value=<pin>`` (RFC 7512)
    A non-extractable private key on an HSM token; ``pin-source=file:/path`` instead of
    ``pin-value`` keeps the PIN out of the settings. See :mod:`keys.pkcs11_keys`.

Whatever the URI, the key comes back as a ``cryptography`` private key object, so
``x509.CertificateBuilder().sign(key, hashes.SHA256())`` and friends do not care where it lives.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keys.errors import KeyUriError

if TYPE_CHECKING:
    from keys.pkcs11_keys import Pkcs11Uri

__all__ = [
    "KEY_ALGORITHMS",
    "SigningKey",
    "describe_key_uri",
    "export_private_key_pem",
    "generate_signing_key",
    "key_algorithm",
    "load_or_generate_signing_key",
    "load_signing_key",
    "signs_in_process",
]

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

KEY_ALGORITHMS: tuple[str, ...] = (
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
    "ec-p256",
    "ec-p384",
    "ed25519",
)

_RSA_BITS = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
_EC_CURVES: dict[str, type[ec.EllipticCurve]] = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1}
_ENCRYPTED_PEM_MARKER = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


def generate_signing_key(uri: str, *, algorithm: str, passphrase: str | None) -> SigningKey:
    """Create a new key of ``algorithm`` (one of :data:`KEY_ALGORITHMS`) at ``uri``.

    Raises :class:`KeyUriError` if a key already exists there: replacing a CA key by accident
    orphans every certificate it issued. ``passphrase`` encrypts a file key; PKCS#11 keys take
    their PIN from the URI and ignore it.
    """
    _check_algorithm(algorithm)
    parsed = _parse(uri)
    if isinstance(parsed, Path):
        return _generate_file_key(parsed, algorithm=algorithm, passphrase=passphrase)
    from keys import pkcs11_keys

    return pkcs11_keys.generate(parsed, algorithm=algorithm)


def signs_in_process(uri: str) -> bool:
    """Whether the key at ``uri`` signs in this process (a ``file:`` key: microseconds, never
    waits) rather than on a device (``pkcs11:``: a round trip behind the module's lock, which a
    caller on an event loop must not wait for)."""
    return uri.partition(":")[0].lower() == "file"


def load_signing_key(uri: str, *, passphrase: str | None) -> SigningKey:
    """The key at ``uri``. Raises :class:`KeyUriError` if it is missing or cannot be opened."""
    parsed = _parse(uri)
    if isinstance(parsed, Path):
        return _load_file_key(parsed, passphrase=passphrase)
    from keys import pkcs11_keys

    return pkcs11_keys.load(parsed)


def load_or_generate_signing_key(uri: str, *, algorithm: str, passphrase: str | None) -> SigningKey:
    """The key at ``uri``, generated first if there is none.

    An existing key of another algorithm is refused (:class:`KeyUriError`): the settings and
    the key disagree, and guessing which one is right is the operator's call.
    """
    _check_algorithm(algorithm)
    parsed = _parse(uri)
    if isinstance(parsed, Path):
        if parsed.exists():
            key = _load_file_key(parsed, passphrase=passphrase)
        else:
            try:
                return _generate_file_key(parsed, algorithm=algorithm, passphrase=passphrase)
            except _AlreadyExists:
                # Another process created it between our check and our write: use theirs.
                key = _load_file_key(parsed, passphrase=passphrase)
    else:
        from keys import pkcs11_keys

        key = pkcs11_keys.load_or_generate(parsed, algorithm=algorithm)
    found = key_algorithm(key)
    if found != algorithm:
        raise KeyUriError(
            f"{describe_key_uri(uri)} holds an {found} key, but {algorithm} is configured"
        )
    return key


def export_private_key_pem(uri: str, *, passphrase: str | None, export_passphrase: str) -> bytes:
    """The private key as PKCS#8 PEM encrypted with ``export_passphrase``, to keep a root offline.

    PKCS#11 keys are generated non-extractable: :class:`KeyUriError`.
    """
    if not export_passphrase:
        raise KeyUriError("an export passphrase is required to export a private key")
    parsed = _parse(uri)
    if not isinstance(parsed, Path):
        raise KeyUriError(
            f"{describe_key_uri(uri)} is a non-extractable HSM key: it cannot be exported"
        )
    key = _load_file_key(parsed, passphrase=passphrase)
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.BestAvailableEncryption(export_passphrase.encode()),
    )


def describe_key_uri(uri: str) -> str:
    """A human description of ``uri`` for logs and the CLI; PINs and pin sources are left out."""
    try:
        parsed = _parse(uri)
    except KeyUriError:
        scheme = uri.split(":", 1)[0] if ":" in uri else ""
        return f"invalid key URI (scheme {scheme!r})" if scheme else "invalid key URI"
    if isinstance(parsed, Path):
        return f"key file {parsed}"
    return parsed.describe()


def key_algorithm(key: SigningKey) -> str:
    """The :data:`KEY_ALGORITHMS` name of ``key`` (``rsa-3072``, ``ec-p256``, ...)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}.get(
            key.curve.name, f"ec-{key.curve.name}"
        )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise TypeError(f"not a signing key: {type(key).__name__}")


# ---------------------------------------------------------------------------------------------
# URIs
# ---------------------------------------------------------------------------------------------


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in KEY_ALGORITHMS:
        raise ValueError(
            f"unsupported key algorithm {algorithm!r}; expected one of {', '.join(KEY_ALGORITHMS)}"
        )


def _parse(uri: str) -> Path | Pkcs11Uri:
    scheme, sep, rest = uri.partition(":")
    if not sep:
        raise KeyUriError("a key URI starts with file: or pkcs11:")
    scheme = scheme.lower()
    if scheme == "file":
        return _parse_file_uri(rest)
    if scheme == "pkcs11":
        from keys import pkcs11_keys

        return pkcs11_keys.parse_uri(uri)
    raise KeyUriError(f"unsupported key URI scheme {scheme!r}; expected file: or pkcs11:")


def _parse_file_uri(rest: str) -> Path:
    # RFC 8089: file:/abs, file:///abs and file://localhost/abs; we also take file:relative,
    # resolved against the working directory now, so a later chdir cannot move the key.
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise KeyUriError("file: key URIs must name a local file (no host)")
        rest = slash + path
    if "?" in rest or "#" in rest:
        raise KeyUriError("file: key URIs take no query or fragment")
    path = unquote(rest, errors="strict")
    if not path or "\0" in path:
        raise KeyUriError("file: key URI has no path")
    return Path(os.path.abspath(path))


# ---------------------------------------------------------------------------------------------
# File keys
# ---------------------------------------------------------------------------------------------


class _AlreadyExists(KeyUriError):
    pass


def _passphrase_bytes(path: Path, passphrase: str | None) -> bytes:
    if not passphrase:
        raise KeyUriError(f"key file {path} needs a passphrase (it is stored encrypted)")
    return passphrase.encode()


def _new_private_key(algorithm: str) -> SigningKey:
    if algorithm in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[algorithm])
    if algorithm in _EC_CURVES:
        return ec.generate_private_key(_EC_CURVES[algorithm]())
    return ed25519.Ed25519PrivateKey.generate()


def _generate_file_key(path: Path, *, algorithm: str, passphrase: str | None) -> SigningKey:
    secret = _passphrase_bytes(path, passphrase)
    if path.exists():
        raise _AlreadyExists(f"key file {path} already exists; refusing to replace a key")
    if not path.parent.is_dir():
        raise KeyUriError(f"directory {path.parent} of key file {path} does not exist")
    key = _new_private_key(algorithm)
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.BestAvailableEncryption(secret),
    )
    _create_file(path, pem)
    return key


def _create_file(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600) atomically; fail if it exists (same scheme as keys/keyring.py).

    The data goes to a temporary file that is fsynced, then linked to ``path``: link(2), unlike
    rename(2), never replaces an existing file, so two processes generating at once cannot
    overwrite each other's key, and a reader never sees half a file.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise KeyUriError(f"cannot write key file {path}: {error.strerror}") from error
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask could only remove bits; be exact
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError as error:
            raise _AlreadyExists(
                f"key file {path} already exists; refusing to replace a key"
            ) from error
        except OSError as error:
            raise KeyUriError(f"cannot write key file {path}: {error.strerror}") from error
    finally:
        tmp.unlink(missing_ok=True)
    # Makes the new name durable: without it a crash could lose a key already used to sign.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _load_file_key(path: Path, *, passphrase: str | None) -> SigningKey:
    secret = _passphrase_bytes(path, passphrase)
    try:
        pem = path.read_bytes()
    except FileNotFoundError as error:
        raise KeyUriError(f"key file {path} does not exist") from error
    except OSError as error:
        raise KeyUriError(f"cannot read key file {path}: {error.strerror}") from error
    # An unencrypted key file is refused rather than used: it means someone replaced it.
    if _ENCRYPTED_PEM_MARKER not in pem:
        raise KeyUriError(f"key file {path} is not an encrypted PKCS#8 PEM private key")
    try:
        key = serialization.load_pem_private_key(pem, password=secret)
    except (ValueError, TypeError) as error:
        raise KeyUriError(
            f"cannot decrypt key file {path}: wrong passphrase or damaged file"
        ) from error
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise KeyUriError(f"key file {path} holds a {type(key).__name__}, not a signing key")
    return key
