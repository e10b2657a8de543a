"""Password hashing through the passlib API (maintained fork ``libpass``).

argon2id is the only scheme we write. bcrypt, pbkdf2_sha256 and sha512_crypt exist only to
verify hashes imported from older systems; a successful login rehashes them (and argon2 hashes
with weaker parameters) to the current policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from passlib.context import CryptContext

from core.settings import Settings

LEGACY_SCHEMES = ("bcrypt", "pbkdf2_sha256", "sha512_crypt")


@dataclass(frozen=True)
class PasswordCheck:
    ok: bool
    new_hash: str | None = None


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
        self._context = CryptContext(
            schemes=["argon2", *LEGACY_SCHEMES],
            default="argon2",
            deprecated=list(LEGACY_SCHEMES),
            argon2__type="ID",
            argon2__memory_cost=settings.argon2_memory_kib,
            argon2__rounds=settings.argon2_time_cost,
            argon2__parallelism=settings.argon2_parallelism,
        )
        # Verified against when the account does not exist or has no password, so that
        # "unknown user" costs the same time as "wrong password".
        self._dummy_hash = self._context.hash("not-a-real-password")

    def hash(self, password: str) -> str:
        return self._context.hash(password)

    def check(self, password: str, stored_hash: str | None) -> PasswordCheck:
        if not stored_hash:
            self._context.verify(password, self._dummy_hash)
            return PasswordCheck(ok=False)
        try:
            ok, new_hash = self._context.verify_and_update(password, stored_hash)
        except ValueError:
            # bcrypt 5 refuses secrets over 72 bytes, and a malformed stored hash raises too:
            # both are a failed login, never a 500. Spend the same time as a real check.
            self._context.verify(password[:64], self._dummy_hash)
            return PasswordCheck(ok=False)
        return PasswordCheck(ok=bool(ok), new_hash=new_hash)

    def is_recognised_hash(self, stored_hash: str) -> bool:
        return self._context.identify(stored_hash) is not None
