"""Random bearer values we hand out (session ids, codes, refresh tokens, client secrets).

They carry 256 bits of entropy, so a plain SHA-256 digest is a safe way to store them: nothing
to brute-force, and a lookup by digest costs one index probe instead of a password hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_opaque_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def matches_digest(value: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(value), stored_digest)
