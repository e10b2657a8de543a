"""A key ring on a read-only directory: how every host but the one that rotates keys mounts it
(README, several hosts). Tests run as root, which ignores permission bits, so the directory and
its files are made immutable (``chattr +i``): then even root cannot write, create or chmod
there, as on a read-only mount."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keys.errors import KeyRingError
from keys.keyring import KeyRing

PASSPHRASE = b"read-only-ring-passphrase"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


@contextmanager
def immutable(directory: Path) -> Iterator[None]:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    made = subprocess.run(["chattr", "-R", "+i", str(directory)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {made.stderr!r}")
    try:
        with pytest.raises(PermissionError):  # the premise: nothing can be written there
            (directory / "probe").write_bytes(b"")
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", str(directory)], check=True)


def test_an_existing_ring_loads_from_a_read_only_directory(tmp_path: Path) -> None:
    directory = tmp_path / "ring"
    written = KeyRing.load_or_create(directory, PASSPHRASE, now=NOW)
    token = written.sign_jwt({"sub": "a"}, alg="RS256", now=NOW)
    with immutable(directory):
        loaded = KeyRing.load_or_create(directory, PASSPHRASE, now=NOW)
        kids = [info.kid for info in written.keys()]  # noqa: SIM118 (a KeyRing, not a dict)
        assert [info.kid for info in loaded.keys()] == kids  # noqa: SIM118
        assert loaded.verify_jwt(token, now=NOW).claims["sub"] == "a"
        loaded.refresh()


def test_a_read_only_ring_without_a_lock_file_loads(tmp_path: Path) -> None:
    """The lock file is ours, not the ring's: a copied ring may come without it."""
    directory = tmp_path / "ring"
    KeyRing.load_or_create(directory, PASSPHRASE, now=NOW)
    for lock in directory.glob(".lock"):
        lock.unlink()
    with immutable(directory):
        assert KeyRing.load_or_create(directory, PASSPHRASE, now=NOW).keys()


def test_a_read_only_ring_with_a_loose_mode_is_a_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "ring"
    KeyRing.load_or_create(directory, PASSPHRASE, now=NOW)
    os.chmod(directory, 0o755)
    with immutable(directory), pytest.raises(KeyRingError, match="mode 0755 and cannot be"):
        KeyRing.load_or_create(directory, PASSPHRASE, now=NOW)


def test_a_read_only_directory_without_a_ring_is_a_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "ring"
    directory.mkdir(mode=0o700)
    with immutable(directory), pytest.raises(PermissionError):
        KeyRing.load_or_create(directory, PASSPHRASE, now=NOW)
