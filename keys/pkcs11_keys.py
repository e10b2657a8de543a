"""CA signing keys on a PKCS#11 token (an HSM, or SoftHSM2 in tests), named by RFC 7512 URI.

``pkcs11:token=<label>;object=<label>?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234``

The private key never leaves the token: it is generated there with ``CKA_SENSITIVE`` true and
``CKA_EXTRACTABLE`` false. What this module hands out is a :class:`Pkcs11RsaPrivateKey` or
:class:`Pkcs11EcPrivateKey`, subclasses of ``cryptography``'s private key classes whose
``sign`` asks the token. ``cryptography``'s X.509, CRL and OCSP builders call the Python
``sign`` of a key that is not one of its own, so they sign with an HSM key unchanged.

Concurrency. python-pkcs11 calls ``C_Initialize(NULL)``: per PKCS#11 v2.40 §5.4 (C_Initialize)
that tells the library the application will not call it from several threads at once, and
SoftHSM2 then turns its own locking off. So every call into one module goes through one lock
per module (:class:`_Module`). Waiting for it is bounded (:data:`LOCK_TIMEOUT`): a sign fails
with :class:`KeyUnavailable` rather than hang behind a stuck call.

Recovery. When a sign fails because the session, the token or the library state is gone, the
module is finalised and initialised again (``C_Finalize``/``C_Initialize``; the only way to
make SoftHSM2 and many HSM libraries enumerate tokens again), the token is found again by its
label, logged in to, the key found again by its label and checked to be the same key, and the
sign retried once. While the token is absent, signing raises :class:`KeyUnavailable`; once it
is back the same key object signs again, no restart and no new load needed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import unquote, unquote_to_bytes

import pkcs11
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as _padding
from cryptography.utils import Buffer
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from keys.errors import KeyUnavailable, KeyUriError

__all__ = [
    "LOCK_TIMEOUT",
    "Pkcs11EcPrivateKey",
    "Pkcs11RsaPrivateKey",
    "Pkcs11Uri",
    "generate",
    "load",
    "load_or_generate",
    "parse_uri",
]

# Longest wait for another thread's use of the same module. An RSA-4096 sign on a busy HSM
# takes well under a second; a minute of waiting means something is stuck.
LOCK_TIMEOUT = 60.0

_T = TypeVar("_T")

# ---------------------------------------------------------------------------------------------
# RFC 7512 URIs
# ---------------------------------------------------------------------------------------------

# Path attributes we act on; the other RFC 7512 ones (manufacturer, model, slot-*, library-*)
# are refused rather than ignored, so a URI never matches more loosely than it reads.
_PATH_ATTRIBUTES = frozenset({"token", "object", "type", "id", "serial"})
_QUERY_ATTRIBUTES = frozenset({"module-path", "pin-value", "pin-source"})


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` key URI. ``repr`` never shows the PIN."""

    module_path: str
    token: str
    object: str
    key_id: bytes | None = None
    serial: str | None = None
    pin_value: str | None = field(default=None, repr=False)
    pin_source: str | None = None

    def describe(self) -> str:
        return f"PKCS#11 key {self.object!r} on token {self.token!r} (module {self.module_path})"

    def pin(self) -> str:
        """The user PIN, from ``pin-value`` or read from the ``pin-source`` file."""
        if self.pin_value is not None:
            return self.pin_value
        if self.pin_source is None:
            raise KeyUriError(f"{self.describe()}: the URI needs pin-value or pin-source")
        source = self.pin_source
        if source.startswith("file:"):
            source = unquote(source[5:])
            if source.startswith("//"):
                authority, slash, rest = source[2:].partition("/")
                if authority not in ("", "localhost"):
                    raise KeyUriError(f"{self.describe()}: pin-source must be a local file")
                source = slash + rest
        if not source.startswith("/"):
            raise KeyUriError(f"{self.describe()}: pin-source must be an absolute file: URI")
        try:
            # One trailing newline is what editors and `echo` add; it is not part of the PIN.
            return Path(source).read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
        except OSError as error:
            raise KeyUriError(
                f"{self.describe()}: cannot read pin-source {source}: {error.strerror}"
            ) from error


def parse_uri(uri: str) -> Pkcs11Uri:
    """Parse an RFC 7512 ``pkcs11:`` URI naming one private key. Raises :class:`KeyUriError`."""
    scheme, _, rest = uri.partition(":")
    if scheme.lower() != "pkcs11":
        raise KeyUriError("not a pkcs11: URI")
    if "#" in rest:
        raise KeyUriError("pkcs11: key URIs take no fragment")
    path_part, _, query_part = rest.partition("?")
    path = _split_attributes(path_part, ";", "path")
    query = _split_attributes(query_part, "&", "query")
    unknown = sorted(set(path) - _PATH_ATTRIBUTES) + sorted(set(query) - _QUERY_ATTRIBUTES)
    if unknown:
        raise KeyUriError(f"pkcs11: URI attribute(s) not supported here: {', '.join(unknown)}")

    def text(attributes: dict[str, str], name: str) -> str | None:
        raw = attributes.get(name)
        if raw is None:
            return None
        try:
            return unquote(raw, errors="strict")
        except UnicodeDecodeError as error:
            raise KeyUriError(f"pkcs11: URI attribute {name} is not UTF-8") from error

    token = text(path, "token")
    obj = text(path, "object")
    if not token or not obj:
        raise KeyUriError("a pkcs11: key URI needs both token= and object= (RFC 7512 labels)")
    key_type = text(path, "type")
    if key_type not in (None, "private"):
        raise KeyUriError("a pkcs11: signing key URI names a private key (type=private)")
    module_path = text(query, "module-path")
    if not module_path:
        raise KeyUriError("a pkcs11: key URI needs module-path=/path/to/pkcs11-module.so")
    if not os.path.isabs(module_path):
        # A bare name would be looked up through the dynamic loader's search path.
        raise KeyUriError("pkcs11: module-path must be an absolute path")
    pin_value = text(query, "pin-value")
    pin_source = text(query, "pin-source")
    if pin_value is not None and pin_source is not None:
        raise KeyUriError("a pkcs11: key URI takes pin-value or pin-source, not both")
    raw_id = path.get("id")
    return Pkcs11Uri(
        module_path=module_path,
        token=token,
        object=obj,
        key_id=None if raw_id is None else unquote_to_bytes(raw_id),
        serial=text(path, "serial"),
        pin_value=pin_value,
        pin_source=pin_source,
    )


def _split_attributes(part: str, separator: str, where: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    if not part:
        return attributes
    for item in part.split(separator):
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise KeyUriError(f"pkcs11: URI {where} attribute without a value")
        if name in attributes:
            raise KeyUriError(f"pkcs11: URI attribute {name} given twice")
        attributes[name] = value
    return attributes


# ---------------------------------------------------------------------------------------------
# Modules and token sessions
# ---------------------------------------------------------------------------------------------

# Failures that mean "what we held is gone": the session, the login, the object handle, the
# token or the library's own state. Anything else (bad mechanism, bad data) is a real error and
# is not retried.
_GONE = (
    pkcs11.SessionHandleInvalid,
    pkcs11.SessionClosed,
    pkcs11.TokenNotPresent,
    pkcs11.TokenNotRecognised,
    pkcs11.DeviceRemoved,
    pkcs11.DeviceError,
    pkcs11.ObjectHandleInvalid,
    pkcs11.KeyHandleInvalid,
    pkcs11.SlotIDInvalid,
    pkcs11.UserNotLoggedIn,
    pkcs11.GeneralError,  # SoftHSM2's answer to C_GetSlotList once a token directory vanished
    pkcs11.NoSuchToken,  # SoftHSM2 enumerates tokens only in C_Initialize
)


def _is_gone(error: BaseException) -> bool:
    if isinstance(error, _GONE):
        return True
    # python-pkcs11 has no class for CKR_CRYPTOKI_NOT_INITIALIZED: a plain PKCS11Error.
    return type(error) is pkcs11.PKCS11Error and "not initialized" in str(error)


class _Gone(Exception):
    """Internal: the token or the key could not be found; reinitialise and try once more."""


@dataclass
class _TokenSession:
    session: Any  # pkcs11.Session
    pin_digest: bytes


class _Module:
    """One loaded PKCS#11 library: its lock, its logged-in sessions, its generation.

    ``generation`` changes each time the library is reinitialised; a key whose cached object
    handle is from an older generation finds its key again.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.generation = 0
        self._lib: Any = None
        self._sessions: dict[tuple[str, str | None], _TokenSession] = {}

    def lib(self) -> Any:
        if self._lib is None:
            try:
                # python-pkcs11 caches one lib object per path and process; SoftHSM2 reads
                # SOFTHSM2_CONF in C_Initialize, so a reinitialised module sees the current one.
                self._lib = pkcs11.lib(self.path)
            except pkcs11.PKCS11Error as error:
                raise KeyUriError(f"cannot load PKCS#11 module {self.path}: {error}") from error
        return self._lib

    def reset(self) -> None:
        """Finalise and initialise the library: drops every session, enumerates tokens anew."""
        self._sessions.clear()
        self.generation += 1
        lib = self.lib()
        try:
            lib.reinitialize()
        except pkcs11.PKCS11Error:
            # Finalize failed (already finalised, device gone): initialising is what matters.
            try:
                lib.initialize()
            except pkcs11.PKCS11Error as error:
                raise KeyUnavailable(
                    f"PKCS#11 module {self.path} cannot be initialised: {error}"
                ) from error

    def session(self, uri: Pkcs11Uri) -> Any:
        """The logged-in read/write session on the token of ``uri``, opened if needed.

        PKCS#11 login state belongs to the token, not to a session (v2.40 §5.6), so all keys of
        one token share one session and one login.
        """
        pin = uri.pin()
        pin_digest = hashlib.sha256(pin.encode()).digest()
        key = (uri.token, uri.serial)
        current = self._sessions.get(key)
        if current is not None:
            if not hmac.compare_digest(current.pin_digest, pin_digest):
                raise KeyUriError(
                    f"{uri.describe()}: wrong PIN (token {uri.token!r} is already logged in "
                    "with a different PIN in this process)"
                )
            return current.session
        lib = self.lib()
        criteria: dict[str, Any] = {"token_label": uri.token}
        if uri.serial is not None:
            criteria["token_serial"] = uri.serial.encode()
        try:
            token = lib.get_token(**criteria)
        except pkcs11.MultipleTokensReturned as error:
            raise KeyUriError(f"{uri.describe()}: several tokens are labelled {uri.token!r}") from (
                error
            )
        except pkcs11.NoSuchToken as error:
            raise _Gone(f"no token labelled {uri.token!r} is present") from error
        try:
            session = token.open(rw=True, user_pin=pin)
        except (pkcs11.PinIncorrect, pkcs11.PinLenRange, pkcs11.PinInvalid) as error:
            raise KeyUriError(f"{uri.describe()}: wrong PIN") from error
        except pkcs11.PinLocked as error:
            raise KeyUriError(f"{uri.describe()}: the user PIN is locked") from error
        self._sessions[key] = _TokenSession(session=session, pin_digest=pin_digest)
        return session

    def run(self, uri: Pkcs11Uri, action: Callable[[], _T], *, absent_message: str) -> _T:
        """Run ``action`` under the module lock; if what it needs is gone, reset and retry once.

        Raises :class:`KeyUnavailable` with ``absent_message`` if it still fails.
        """
        if not self.lock.acquire(timeout=LOCK_TIMEOUT):
            raise KeyUnavailable(
                f"{uri.describe()}: the PKCS#11 module stayed busy for {LOCK_TIMEOUT:.0f} s"
            )
        try:
            last: BaseException | None = None
            for attempt in range(2):
                if attempt:
                    self.reset()
                try:
                    return action()
                except _Gone as error:
                    last = error
                except pkcs11.PKCS11Error as error:
                    if not _is_gone(error):
                        raise
                    last = error
            detail = str(last) or type(last).__name__
            raise KeyUnavailable(f"{uri.describe()}: {absent_message} ({detail})") from last
        finally:
            self.lock.release()


_modules: dict[str, _Module] = {}
_modules_lock = threading.Lock()


def _module(path: str) -> _Module:
    with _modules_lock:
        module = _modules.get(path)
        if module is None:
            module = _modules[path] = _Module(path)
        return module


# ---------------------------------------------------------------------------------------------
# Finding and generating keys
# ---------------------------------------------------------------------------------------------

_CURVES: dict[str, tuple[str, type[ec.EllipticCurve]]] = {
    "ec-p256": ("secp256r1", ec.SECP256R1),
    "ec-p384": ("secp384r1", ec.SECP384R1),
}
_RSA_BITS = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}
# DER of the named-curve ECParameters (RFC 5480 §2.1.1) → curve.
_CURVE_BY_PARAMS: dict[bytes, type[ec.EllipticCurve]] = {
    encode_named_curve_parameters(name): curve for name, curve in _CURVES.values()
}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _search(session: Any, uri: Pkcs11Uri, object_class: ObjectClass) -> list[Any]:
    attrs: dict[Attribute, Any] = {Attribute.CLASS: object_class, Attribute.LABEL: uri.object}
    if uri.key_id is not None:
        attrs[Attribute.ID] = uri.key_id
    return list(session.get_objects(attrs))


def _find(session: Any, uri: Pkcs11Uri) -> tuple[Any, PublicKey]:
    """The private key object of ``uri`` and its public key. Raises :class:`KeyUriError`."""
    found = _search(session, uri, ObjectClass.PRIVATE_KEY)
    if not found:
        raise KeyUriError(f"{uri.describe()}: no private key with that label on the token")
    if len(found) > 1:
        raise KeyUriError(f"{uri.describe()}: several private keys have that label; add id=")
    private = found[0]
    key_type = private[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        # An RSA private key object carries its modulus and public exponent.
        numbers = rsa.RSAPublicNumbers(
            int.from_bytes(private[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(private[Attribute.MODULUS], "big"),
        )
        return private, numbers.public_key()
    if key_type == KeyType.EC:
        curve = _CURVE_BY_PARAMS.get(bytes(private[Attribute.EC_PARAMS]))
        if curve is None:
            raise KeyUriError(f"{uri.describe()}: EC curve not supported (P-256, P-384 are)")
        # The EC point lives on the public key object (CKA_EC_POINT, a DER OCTET STRING).
        publics = [
            p
            for p in _search(session, uri, ObjectClass.PUBLIC_KEY)
            if p[Attribute.ID] == private[Attribute.ID]
        ]
        if len(publics) != 1:
            raise KeyUriError(f"{uri.describe()}: no matching public key object on the token")
        point = _der_octet_string(bytes(publics[0][Attribute.EC_POINT]))
        return private, ec.EllipticCurvePublicKey.from_encoded_point(curve(), point)
    raise KeyUriError(f"{uri.describe()}: key type {key_type!r} is not supported (RSA, EC are)")


def _der_octet_string(der: bytes) -> bytes:
    # PKCS#11 v2.40 §2.3.3: CKA_EC_POINT is DER-encoding of ANSI X9.62 ECPoint value Q.
    if len(der) < 2 or der[0] != 0x04:
        raise KeyUriError("CKA_EC_POINT is not a DER OCTET STRING")
    length = der[1]
    offset = 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(der[2 : 2 + n], "big")
        offset = 2 + n
    value = der[offset : offset + length]
    if len(value) != length or offset + length != len(der):
        raise KeyUriError("CKA_EC_POINT is not a DER OCTET STRING")
    return value


def _public_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _wrap(
    uri: Pkcs11Uri, private: Any, public: PublicKey
) -> Pkcs11RsaPrivateKey | Pkcs11EcPrivateKey:
    handle = _KeyHandle(uri, _module(uri.module_path), private, public)
    if isinstance(public, rsa.RSAPublicKey):
        return Pkcs11RsaPrivateKey(handle, public)
    return Pkcs11EcPrivateKey(handle, public)


def load(uri: Pkcs11Uri) -> Pkcs11RsaPrivateKey | Pkcs11EcPrivateKey:
    """The key named by ``uri`` (see :func:`keys.signing_keys.load_signing_key`)."""
    module = _module(uri.module_path)

    def find() -> tuple[Any, PublicKey]:
        return _find(module.session(uri), uri)

    private, public = module.run(uri, find, absent_message="token not present")
    return _wrap(uri, private, public)


def generate(uri: Pkcs11Uri, *, algorithm: str) -> Pkcs11RsaPrivateKey | Pkcs11EcPrivateKey:
    """Generate a non-extractable key pair labelled ``object`` on the token of ``uri``."""
    if algorithm not in _RSA_BITS and algorithm not in _CURVES:
        raise KeyUriError(f"{uri.describe()}: {algorithm} keys are not supported on PKCS#11")
    module = _module(uri.module_path)

    def make() -> tuple[Any, PublicKey]:
        session = module.session(uri)
        if _search(session, uri, ObjectClass.PRIVATE_KEY) or _search(
            session, uri, ObjectClass.PUBLIC_KEY
        ):
            raise KeyUriError(
                f"{uri.describe()}: a key with that label already exists; refusing to add another"
            )
        # CKA_ID links the private key, public key and later certificate objects (PKCS#11
        # v2.40 §4.4); random so that two keys with different labels never share one.
        key_id = uri.key_id if uri.key_id is not None else os.urandom(16)
        private_template = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }
        public_template = {
            Attribute.TOKEN: True,
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: False,
            Attribute.WRAP: False,
        }
        common: dict[str, Any] = {
            "id": key_id,
            "label": uri.object,
            "store": True,
            "capabilities": MechanismFlag.SIGN | MechanismFlag.VERIFY,
            "public_template": public_template,
            "private_template": private_template,
        }
        if algorithm in _RSA_BITS:
            session.generate_keypair(KeyType.RSA, _RSA_BITS[algorithm], **common)
        else:
            parameters = session.create_domain_parameters(
                KeyType.EC,
                {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[algorithm][0])},
                local=True,
            )
            parameters.generate_keypair(**common)
        return _find(session, uri)

    private, public = module.run(uri, make, absent_message="token not present")
    return _wrap(uri, private, public)


def load_or_generate(uri: Pkcs11Uri, *, algorithm: str) -> Pkcs11RsaPrivateKey | Pkcs11EcPrivateKey:
    """The key named by ``uri``, generated first if the token has none with that label."""
    module = _module(uri.module_path)
    # Held across the check and the generation, so no other thread of ours generates between.
    if not module.lock.acquire(timeout=LOCK_TIMEOUT):
        raise KeyUnavailable(
            f"{uri.describe()}: the PKCS#11 module stayed busy for {LOCK_TIMEOUT:.0f} s"
        )
    try:

        def exists() -> bool:
            return bool(_search(module.session(uri), uri, ObjectClass.PRIVATE_KEY))

        if module.run(uri, exists, absent_message="token not present"):
            return load(uri)
        return generate(uri, algorithm=algorithm)
    finally:
        module.lock.release()


# ---------------------------------------------------------------------------------------------
# Key objects
# ---------------------------------------------------------------------------------------------


class _KeyHandle:
    """The token side of one key: signs raw, finds the key again after a reset."""

    def __init__(self, uri: Pkcs11Uri, module: _Module, private: Any, public: PublicKey) -> None:
        self.uri = uri
        self.module = module
        self._public_der = _public_der(public)
        self._private: Any = private
        self._generation = module.generation

    def _object(self) -> Any:
        # Called with the module lock held.
        if self._private is not None and self._generation == self.module.generation:
            return self._private
        self._private = None
        try:
            private, public = _find(self.module.session(self.uri), self.uri)
        except KeyUriError as error:
            # It was there when loaded: someone deleted it or swapped the token. Not a
            # configuration error of ours, and retrying later may work.
            raise KeyUnavailable(str(error)) from error
        if _public_der(public) != self._public_der:
            raise KeyUnavailable(
                f"{self.uri.describe()}: the token now holds a different key under that label"
            )
        self._private = private
        self._generation = self.module.generation
        return private

    def sign(self, data: bytes, mechanism: Mechanism, mechanism_param: Any = None) -> bytes:
        def attempt() -> bytes:
            private = self._object()
            try:
                signature: bytes = private.sign(
                    data, mechanism=mechanism, mechanism_param=mechanism_param
                )
            except BaseException:
                self._private = None  # find the key again next time, whatever went wrong
                raise
            return signature

        return self.module.run(
            self.uri, attempt, absent_message="token not present or not responding; retry later"
        )


def _unsupported(what: str) -> NoReturn:
    raise KeyUriError(f"{what} is not possible with a non-extractable PKCS#11 (HSM) key")


def _digest(
    data: Buffer, algorithm: hashes.HashAlgorithm | utils.Prehashed
) -> tuple[bytes, hashes.HashAlgorithm]:
    if isinstance(algorithm, utils.Prehashed):
        if len(data) != algorithm.digest_size:
            raise ValueError("the prehashed digest has the wrong length for its hash algorithm")
        return bytes(data), algorithm._algorithm
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize(), algorithm


# DigestInfo prefixes (RFC 8017 §9.2, note 1): DER of the AlgorithmIdentifier and the OCTET
# STRING header, followed by the digest.
_DIGEST_INFO_PREFIX: dict[str, bytes] = {
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_PKCS11_HASH: dict[str, tuple[Mechanism, pkcs11.MGF]] = {
    "sha224": (Mechanism.SHA224, pkcs11.MGF.SHA224),
    "sha256": (Mechanism.SHA256, pkcs11.MGF.SHA256),
    "sha384": (Mechanism.SHA384, pkcs11.MGF.SHA384),
    "sha512": (Mechanism.SHA512, pkcs11.MGF.SHA512),
}

# Why hash on the host and sign with the raw mechanisms (CKM_RSA_PKCS with our DigestInfo,
# CKM_RSA_PKCS_PSS and CKM_ECDSA over the digest) rather than CKM_SHA256_RSA_PKCS & co: only the
# digest crosses to the HSM (a CRL of 200,000 entries is megabytes; a network HSM would get
# them all), one mechanism per key type covers every hash, and Prehashed works.


class Pkcs11RsaPrivateKey(rsa.RSAPrivateKey):
    """An RSA key on a PKCS#11 token; signs PKCS#1 v1.5 and PSS (RFC 8017 §8)."""

    def __init__(self, handle: _KeyHandle, public: rsa.RSAPublicKey) -> None:
        self._handle = handle
        self._public = public

    def __repr__(self) -> str:
        return f"<Pkcs11RsaPrivateKey {self._handle.uri.describe()}>"

    @property
    def uri(self) -> Pkcs11Uri:
        return self._handle.uri

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def sign(
        self,
        data: bytes,
        padding: _padding.AsymmetricPadding,
        algorithm: hashes.HashAlgorithm | utils.Prehashed | utils.NoDigestInfo,
    ) -> bytes:
        if isinstance(algorithm, utils.NoDigestInfo):
            # The caller built the DigestInfo (or wants none): PKCS#1 v1.5 over data as is.
            if not isinstance(padding, _padding.PKCS1v15):
                raise ValueError("NoDigestInfo goes with PKCS1v15 padding only")
            return self._handle.sign(bytes(data), Mechanism.RSA_PKCS)
        digest, hash_algorithm = _digest(data, algorithm)
        name = hash_algorithm.name
        if name not in _PKCS11_HASH:
            raise ValueError(f"unsupported hash for an HSM RSA signature: {name}")
        if isinstance(padding, _padding.PKCS1v15):
            return self._handle.sign(_DIGEST_INFO_PREFIX[name] + digest, Mechanism.RSA_PKCS)
        if isinstance(padding, _padding.PSS):
            mgf = padding.mgf
            if not isinstance(mgf, _padding.MGF1):
                raise ValueError("PSS with an HSM key supports MGF1 only")
            mgf_hash = mgf._algorithm.name
            if mgf_hash not in _PKCS11_HASH:
                raise ValueError(f"unsupported MGF1 hash for an HSM RSA signature: {mgf_hash}")
            salt_length = self._salt_length(padding, hash_algorithm)
            param = (_PKCS11_HASH[name][0], _PKCS11_HASH[mgf_hash][1], salt_length)
            return self._handle.sign(digest, Mechanism.RSA_PKCS_PSS, param)
        raise ValueError(f"unsupported RSA padding for an HSM key: {type(padding).__name__}")

    def _salt_length(self, pss: _padding.PSS, hash_algorithm: hashes.HashAlgorithm) -> int:
        # cryptography exposes the PSS parameters only as private attributes.
        salt = pss._salt_length
        if isinstance(salt, int):
            return salt
        if salt is _padding.PSS.DIGEST_LENGTH:
            return hash_algorithm.digest_size
        if salt is _padding.PSS.MAX_LENGTH:
            # RFC 8017 §9.1.1: emLen - hLen - 2, emLen = ceil((modBits - 1) / 8).
            return (self.key_size - 1 + 7) // 8 - hash_algorithm.digest_size - 2
        raise ValueError("PSS salt length AUTO is for verification only")

    def decrypt(self, ciphertext: bytes, padding: _padding.AsymmetricPadding) -> bytes:
        _unsupported("decryption")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _unsupported("reading the private numbers")

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _unsupported("exporting the private key")

    def __copy__(self) -> Pkcs11RsaPrivateKey:
        return self  # immutable from the outside; copies would share the token anyway

    def __deepcopy__(self, memo: dict[int, Any]) -> Pkcs11RsaPrivateKey:
        return self


class Pkcs11EcPrivateKey(ec.EllipticCurvePrivateKey):
    """An EC key on a PKCS#11 token; signs ECDSA, DER-encoded (RFC 3279 §2.2.3)."""

    def __init__(self, handle: _KeyHandle, public: ec.EllipticCurvePublicKey) -> None:
        self._handle = handle
        self._public = public

    def __repr__(self) -> str:
        return f"<Pkcs11EcPrivateKey {self._handle.uri.describe()}>"

    @property
    def uri(self) -> Pkcs11Uri:
        return self._handle.uri

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise ValueError("an HSM EC key signs ECDSA only")
        digest, _ = _digest(data, signature_algorithm.algorithm)
        raw = self._handle.sign(digest, Mechanism.ECDSA)
        # PKCS#11 returns r || s, each as long as the group order (v2.40 §2.3.1).
        half = len(raw) // 2
        r = int.from_bytes(raw[:half], "big")
        s = int.from_bytes(raw[half:], "big")
        return utils.encode_dss_signature(r, s)

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        _unsupported("key exchange")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _unsupported("reading the private numbers")

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _unsupported("exporting the private key")

    def __copy__(self) -> Pkcs11EcPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Pkcs11EcPrivateKey:
        return self
