"""Secrets kept at rest under the server secret: AES-256-GCM (RFC 5116) with a key derived by
HKDF-SHA256 (RFC 5869) for one purpose, the blob bound by associated data to the row it belongs
to, so a blob copied into another row does not open."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE_BYTES = 12


class SealError(Exception):
    """The blob does not open (server secret changed, row tampered with or copied)."""


def _key(server_secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(server_secret)


def seal(plaintext: bytes, *, server_secret: bytes, purpose: bytes, bound_to: bytes) -> str:
    """Base64 of nonce + ciphertext + tag; ``purpose`` names the use (domain separation),
    ``bound_to`` the row (associated data)."""
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(_key(server_secret, purpose)).encrypt(nonce, plaintext, bound_to)
    return base64.b64encode(nonce + sealed).decode("ascii")


def open_sealed(blob: str, *, server_secret: bytes, purpose: bytes, bound_to: bytes) -> bytes:
    try:
        raw = base64.b64decode(blob.encode("ascii"), validate=True)
        return AESGCM(_key(server_secret, purpose)).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to
        )
    except (ValueError, InvalidTag) as error:
        raise SealError("the sealed value does not open") from error
