"""CA keys by URI (``keys.signing_keys``), loaded once per process, and how each one signs.

File and PKCS#11 keys are both ``cryptography`` private keys, so every builder here signs with
either; the store only caches them (loading a scrypt-encrypted PKCS#8 file costs ~100 ms, a
PKCS#11 login a round trip to the token).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from keys.signing_keys import SigningKey, generate_signing_key, load_signing_key

CA_KEY_ALGORITHMS = ("rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384")


@dataclass(frozen=True)
class SignatureParameters:
    """Arguments for ``builder.sign(key, algorithm, rsa_padding=...)``."""

    algorithm: hashes.SHA256 | hashes.SHA384
    rsa_padding: padding.PSS | padding.PKCS1v15 | None


def signature_parameters(key: SigningKey, scheme: str) -> SignatureParameters:
    """SHA-256 for RSA and P-256, SHA-384 for P-384; RSASSA-PSS when the CA is set up for it."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest: hashes.SHA256 | hashes.SHA384 = (
            hashes.SHA384() if key.curve.key_size >= 384 else hashes.SHA256()
        )
        return SignatureParameters(digest, None)
    if isinstance(key, rsa.RSAPrivateKey):
        if scheme == "pss":
            # RFC 4055 §3.1 / RFC 8017: salt as long as the digest, MGF1 with the same hash.
            return SignatureParameters(
                hashes.SHA256(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            )
        return SignatureParameters(hashes.SHA256(), padding.PKCS1v15())
    raise ValueError(f"unsupported CA key type {type(key).__name__}")


class CaKeyStore:
    """Loaded CA keys by URI, shared by every request of the process."""

    def __init__(self, passphrase: str | None) -> None:
        self._passphrase = passphrase
        self._keys: dict[str, SigningKey] = {}
        self._lock = threading.Lock()

    def get(self, uri: str) -> SigningKey:
        key = self._keys.get(uri)
        if key is None:
            with self._lock:
                key = self._keys.get(uri)
                if key is None:
                    key = load_signing_key(uri, passphrase=self._passphrase)
                    self._keys[uri] = key
        return key

    def loaded(self, uri: str) -> SigningKey | None:
        """The key if it is loaded already, else None: never opens a file or a token (a caller
        on the event loop must not wait for either)."""
        return self._keys.get(uri)

    def generate(self, uri: str, *, algorithm: str) -> SigningKey:
        key = generate_signing_key(uri, algorithm=algorithm, passphrase=self._passphrase)
        with self._lock:
            self._keys[uri] = key
        return key
