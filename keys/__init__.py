"""Token-signing key custody (RFC 7517 JWKs, RFC 7638 kids); imports nothing from core or idp."""

from keys.errors import InvalidToken, KeyRingError, NoSigningKey, WrongPassphrase
from keys.keyring import SUPPORTED_ALGORITHMS, KeyInfo, KeyRing
from keys.passphrase import load_or_create_secret_file

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "InvalidToken",
    "KeyInfo",
    "KeyRing",
    "KeyRingError",
    "NoSigningKey",
    "WrongPassphrase",
    "load_or_create_secret_file",
]
