"""Key custody: token-signing key ring (RFC 7517 JWKs, RFC 7638 kids) and CA signing keys by URI
(encrypted PKCS#8 files, PKCS#11 HSM objects per RFC 7512). Imports nothing from core or idp."""

from keys.errors import (
    InvalidToken,
    KeyRingError,
    KeyUnavailable,
    KeyUriError,
    NoSigningKey,
    SigningKeyError,
    WrongPassphrase,
)
from keys.keyring import SUPPORTED_ALGORITHMS, CertifiedKey, KeyInfo, KeyRing
from keys.passphrase import load_or_create_secret_file
from keys.signing_keys import (
    KEY_ALGORITHMS,
    SigningKey,
    describe_key_uri,
    export_private_key_pem,
    generate_signing_key,
    key_algorithm,
    load_or_generate_signing_key,
    load_signing_key,
)

__all__ = [
    "KEY_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "CertifiedKey",
    "InvalidToken",
    "KeyInfo",
    "KeyRing",
    "KeyRingError",
    "KeyUnavailable",
    "KeyUriError",
    "NoSigningKey",
    "SigningKey",
    "SigningKeyError",
    "WrongPassphrase",
    "describe_key_uri",
    "export_private_key_pem",
    "generate_signing_key",
    "key_algorithm",
    "load_or_create_secret_file",
    "load_or_generate_signing_key",
    "load_signing_key",
]
