"""Password hashing through the passlib API (maintained fork ``libpass``).

argon2id is the only scheme we write. bcrypt, pbkdf2_sha256 and sha512_crypt exist only to
verify hashes imported from older systems; a successful login rehashes them (and argon2 hashes
with weaker parameters) to the current policy.

Hashing is CPU- and memory-bound, so a worker process computes password hashes on at most as
many threads as it has cores (``password_hashing_concurrency``; Keycloak limits its argon2
hashing the same way, keycloak/keycloak#28477). A burst of logins then waits its turn instead of
hashing on every request thread at once (up to the thread pool's 40): that would slow every other
request of the worker down and leave an argon2id buffer (19 MiB by default) in the allocator of
each of those threads. Dedicated threads, not just a semaphore, because glibc keeps a freed
buffer in the arena of the thread that used it: only a bounded set of hashing threads bounds the
memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from passlib.context import CryptContext

from core.settings import Settings

Result = TypeVar("Result")

LEGACY_SCHEMES = ("bcrypt", "pbkdf2_sha256", "sha512_crypt")


@dataclass(frozen=True)
class PasswordCheck:
    ok: bool
    new_hash: str | None = None


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, e.g. under taskset or a cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


HASHING_THREAD_PREFIX = "password-hashing"

# One set of hashing threads per process and limit, shared by every PasswordHasher in it (the
# limit is per process; tests build many).
_hashing_threads: dict[int, ThreadPoolExecutor] = {}
_hashing_threads_lock = threading.Lock()


def _forget_the_parents_hashing_threads() -> None:
    """A forked child has none of its parent's threads, and the lock may have been held."""
    global _hashing_threads_lock
    _hashing_threads.clear()
    _hashing_threads_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_the_parents_hashing_threads)


def hashing_threads(limit: int) -> ThreadPoolExecutor:
    with _hashing_threads_lock:
        if limit not in _hashing_threads:
            _hashing_threads[limit] = ThreadPoolExecutor(
                max_workers=limit, thread_name_prefix=f"{HASHING_THREAD_PREFIX}-{limit}"
            )
        return _hashing_threads[limit]


# argon2id parameters → the hash of a constant no account has; see PasswordHasher._dummy_hash.
_dummy_hashes: dict[tuple[int, int, int], str] = {}


class PasswordHasher:
    def __init__(self, settings: Settings) -> None:
        self._concurrency = settings.password_hashing_concurrency or usable_cores()
        self._context = CryptContext(
            schemes=["argon2", *LEGACY_SCHEMES],
            default="argon2",
            deprecated=list(LEGACY_SCHEMES),
            argon2__type="ID",
            argon2__memory_cost=settings.argon2_memory_kib,
            argon2__rounds=settings.argon2_time_cost,
            argon2__parallelism=settings.argon2_parallelism,
        )
        self._parameters = (
            settings.argon2_memory_kib,
            settings.argon2_time_cost,
            settings.argon2_parallelism,
        )
        if self._parameters not in _dummy_hashes:
            _dummy_hashes[self._parameters] = self._on_hashing_thread(
                self._context.hash, "not-a-real-password"
            )

    def _on_hashing_thread(self, work: Callable[..., Result], *args: object) -> Result:
        """Run ``work`` on one of the process's hashing threads; wait for a free one. Looked up
        on each call: after a fork, the parent's threads are not in this process."""
        return hashing_threads(self._concurrency).submit(work, *args).result()

    def hash(self, password: str) -> str:
        return self._on_hashing_thread(self._context.hash, password)

    def check(self, password: str, stored_hash: str | None) -> PasswordCheck:
        return self._on_hashing_thread(self._check, password, stored_hash)

    @property
    def _dummy_hash(self) -> str:
        """Verified against when the account does not exist or has no password, so that
        "unknown user" costs the same time as "wrong password". Made by the first hasher with
        these parameters and kept for the process (tests build thousands of runtimes)."""
        return _dummy_hashes[self._parameters]

    def _check(self, password: str, stored_hash: str | None) -> PasswordCheck:
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
