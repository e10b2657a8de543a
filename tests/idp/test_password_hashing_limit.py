"""A worker process hashes passwords on at most ``password_hashing_concurrency`` threads.

Waits are one-sided: a check that must wait is only required to be still waiting after a while
(a hash takes ~20 ms here), and one that may run is given ample time to finish.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings
from idp.passwords import (
    HASHING_THREAD_PREFIX,
    PasswordCheck,
    PasswordHasher,
    hashing_threads,
    usable_cores,
)

STILL_WAITING_AFTER = 0.5  # seconds; ~25 hashes' time
FINISHES_WITHIN = 30.0


class CheckInThread:
    """A login's password check, run in a thread of its own as request threads run it."""

    def __init__(self, hasher: PasswordHasher, password: str, stored_hash: str) -> None:
        self.result: PasswordCheck | None = None

        def run() -> None:
            self.result = hasher.check(password, stored_hash)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def finished_within(self, seconds: float) -> bool:
        self.thread.join(seconds)
        return not self.thread.is_alive()


def hasher_with(tmp_path: Path, **settings: object) -> PasswordHasher:
    return PasswordHasher(Settings(var_dir=tmp_path / "var", **settings))


def hashing_thread_names(limit: int) -> list[str]:
    prefix = f"{HASHING_THREAD_PREFIX}-{limit}_"
    return [thread.name for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_concurrent_checks_run_on_at_most_the_configured_threads(tmp_path: Path) -> None:
    hasher = hasher_with(tmp_path, password_hashing_concurrency=3)
    stored = hasher.hash("đúng mật khẩu")
    checks = [
        CheckInThread(hasher, "đúng mật khẩu" if n % 2 else "sai mật khẩu", stored)
        for n in range(12)
    ]
    assert all(check.finished_within(FINISHES_WITHIN) for check in checks)
    assert [check.result for check in checks] == [PasswordCheck(ok=bool(n % 2)) for n in range(12)]
    assert 1 <= len(hashing_thread_names(3)) <= 3


def test_a_check_waits_while_every_hashing_thread_is_busy(tmp_path: Path) -> None:
    hasher = hasher_with(tmp_path, password_hashing_concurrency=1)
    stored = hasher.hash("đúng mật khẩu")
    release = threading.Event()
    busy = hashing_threads(1).submit(release.wait, FINISHES_WITHIN)
    try:
        check = CheckInThread(hasher, "đúng mật khẩu", stored)
        assert not check.finished_within(STILL_WAITING_AFTER)
    finally:
        release.set()
    assert busy.result() is True
    assert check.finished_within(FINISHES_WITHIN)
    assert check.result == PasswordCheck(ok=True)
    assert len(hashing_thread_names(1)) == 1


def test_new_hashes_wait_their_turn_too(tmp_path: Path) -> None:
    hasher = hasher_with(tmp_path, password_hashing_concurrency=1)
    release = threading.Event()
    hashing_threads(1).submit(release.wait, FINISHES_WITHIN)
    hashed: list[str] = []
    thread = threading.Thread(target=lambda: hashed.append(hasher.hash("mới")), daemon=True)
    thread.start()
    thread.join(STILL_WAITING_AFTER)
    assert thread.is_alive() and not hashed
    release.set()
    thread.join(FINISHES_WITHIN)
    assert len(hashed) == 1 and hasher.check("mới", hashed[0]).ok


def test_the_limit_defaults_to_the_cores_the_process_may_use(tmp_path: Path) -> None:
    hasher = hasher_with(tmp_path)
    stored = hasher.hash("đúng mật khẩu")
    checks = [CheckInThread(hasher, "đúng mật khẩu", stored) for _ in range(2 * usable_cores())]
    assert all(check.finished_within(FINISHES_WITHIN) for check in checks)
    assert all(check.result == PasswordCheck(ok=True) for check in checks)
    assert 1 <= len(hashing_thread_names(usable_cores())) <= usable_cores()


def test_a_forked_child_hashes_on_threads_of_its_own(tmp_path: Path) -> None:
    hasher = hasher_with(tmp_path, password_hashing_concurrency=2)
    stored = hasher.hash("đúng mật khẩu")  # the parent's hashing threads exist now
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit code only
        os._exit(0 if hasher.check("đúng mật khẩu", stored).ok else 1)
    deadline = time.monotonic() + FINISHES_WITHIN
    while time.monotonic() < deadline:
        finished, status = os.waitpid(child, os.WNOHANG)
        if finished:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    pytest.fail("the forked child's password check never finished (the parent's threads?)")


def test_a_limit_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="password_hashing_concurrency"):
        Settings(var_dir=tmp_path / "var", password_hashing_concurrency=0)
