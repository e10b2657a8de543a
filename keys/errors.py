"""Errors raised by the key ring.

They are internal: the web layer maps them to protocol errors (an invalid ``id_token_hint`` is
``invalid_request``, a missing signing key is a 500 and a page to the operator).
"""

from __future__ import annotations


class KeyRingError(Exception):
    """The key ring cannot do what was asked (damaged files, bad configuration, ...)."""


class NoSigningKey(KeyRingError):
    """No key of the requested algorithm is active at the given moment."""


class InvalidToken(KeyRingError):
    """A JWS is not one of ours: malformed, unknown ``kid``, wrong ``alg`` or bad signature.

    ``reason`` is short and safe to log; it never contains key material.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WrongPassphrase(KeyRingError):
    """The private keys on disk cannot be decrypted with the configured passphrase."""


class SigningKeyError(Exception):
    """A CA signing key named by URI (``file:`` or ``pkcs11:``, RFC 7512) cannot be used.

    Messages are safe to log: they never contain a PIN or a passphrase.
    """


class KeyUriError(SigningKeyError):
    """The key URI, its secret or the key it names is wrong: a configuration error.

    Examples: malformed URI, missing or wrong passphrase/PIN, no key at the URI (or one already
    there when generating), a PKCS#11 key asked to export its private part.
    """


class KeyUnavailable(SigningKeyError):
    """The key is configured correctly but cannot be reached now (HSM token absent, device gone).

    Transient: the same key object signs again once the token is back, without a restart.
    """
