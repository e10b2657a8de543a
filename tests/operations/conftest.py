from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def commune_sso_executable(fresh_venv: Path) -> Path:
    """The operations tests run what ships: the wheel's entry point in a fresh venv."""
    return fresh_venv / "bin" / "commune-sso"
