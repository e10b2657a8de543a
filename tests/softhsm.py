"""A throwaway SoftHSM2 token for the whole test session (PKCS#11 / HSM signing keys).

Use the ``softhsm_token`` fixture; make it visible to a test directory with
``from tests.softhsm import softhsm_token  # noqa: F401`` in that directory's conftest.py.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the library is initialised, and python-pkcs11 loads each
module once per process. The fixture therefore sets it for the whole session, before any test
can load the module, and keeps it set until the session ends.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parent.parent
MODULE_PATH = "/usr/lib/softhsm/libsofthsm2.so"
SCRIPT = REPO / "scripts" / "softhsm-throwaway"


@dataclass(frozen=True)
class SoftHsmToken:
    """One initialised token in a throwaway SoftHSM2 token directory."""

    module_path: str
    token_label: str
    pin: str
    so_pin: str
    conf_path: Path
    token_root: Path  # SoftHSM2's directories.tokendir

    def uri(self, object_label: str, *, pin: str | None = None, token: str | None = None) -> str:
        """An RFC 7512 URI for ``object_label`` on this token, with the PIN as ``pin-value``."""
        return (
            f"pkcs11:token={quote(token or self.token_label, safe='')};"
            f"object={quote(object_label, safe='')}"
            f"?module-path={quote(self.module_path, safe='/')}"
            f"&pin-value={quote(self.pin if pin is None else pin, safe='')}"
        )

    def add_token(self, label: str) -> Path:
        """Initialise one more token (same PINs) in the token directory; return its directory.

        The running library sees it after its next C_Initialize, which the key code does by
        itself when a token it is asked for is missing.
        """
        before = set(self.token_root.iterdir())
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                self.pin,
                "--so-pin",
                self.so_pin,
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "SOFTHSM2_CONF": str(self.conf_path)},
        )
        (new,) = set(self.token_root.iterdir()) - before
        return new


def _require_softhsm() -> None:
    missing = [
        what
        for what, present in (
            (MODULE_PATH, os.path.exists(MODULE_PATH)),
            ("softhsm2-util", _on_path("softhsm2-util")),
        )
        if not present
    ]
    if missing:
        # Not a skip: CI must prove the HSM path works, and ./scripts/test installs softhsm2.
        pytest.fail(
            f"SoftHSM2 is missing ({', '.join(missing)}): run ./scripts/test, which installs the "
            "softhsm2 package, or `apt-get install softhsm2`",
            pytrace=False,
        )


def _on_path(command: str) -> bool:
    return any(
        os.access(os.path.join(d, command), os.X_OK)
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d
    )


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsmToken]:
    """A SoftHSM2 token labelled ``commune-sso-test`` with PIN 1234, for the whole session."""
    _require_softhsm()
    directory = tmp_path_factory.mktemp("softhsm")
    label, pin, so_pin = "commune-sso-test", "1234", "12345678"
    result = subprocess.run(
        [str(SCRIPT), "init", str(directory), label, pin, so_pin],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"scripts/softhsm-throwaway failed: {result.stderr}", pytrace=False)
    name, _, value = result.stdout.strip().partition("=")
    assert name == "SOFTHSM2_CONF", result.stdout
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = value
    try:
        yield SoftHsmToken(
            module_path=MODULE_PATH,
            token_label=label,
            pin=pin,
            so_pin=so_pin,
            conf_path=Path(value),
            token_root=directory / "tokens",
        )
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
