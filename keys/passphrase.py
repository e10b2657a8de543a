"""Development secrets kept in files: the key ring passphrase and the server secret.

Production reads both from settings; in development they are generated on first start so
that nobody commits a placeholder value.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def load_or_create_secret_file(path: Path, *, nbytes: int = 32) -> str:
    """Return the secret stored in ``path``; create it if missing.

    A new secret is ``secrets.token_urlsafe(nbytes)`` in a file of mode 0600; missing parent
    directories are created with mode 0700. Creation is race-free: several workers starting at
    once all end up with the same value.
    """
    if nbytes < 16:
        raise ValueError("a secret needs at least 16 random bytes")
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass

    _make_private_dirs(path.parent)
    secret = secrets.token_urlsafe(nbytes)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            os.fchmod(f.fileno(), 0o600)  # the umask could only remove bits; be exact
            f.write(secret + "\n")
            f.flush()
            os.fsync(f.fileno())
        # link() never replaces an existing file, unlike rename(): if another process won the
        # race we keep its value, so every worker decrypts the key ring with the same secret.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text(encoding="ascii").strip()
    if not secret:
        raise ValueError(f"secret file {path} is empty: delete it to generate a new secret")
    return secret


def _make_private_dirs(directory: Path) -> None:
    # os.makedirs(mode=...) applies the mode to the last component only; create each missing
    # one ourselves and leave existing parents (a home directory, /var) untouched.
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)
