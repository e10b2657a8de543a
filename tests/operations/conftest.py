from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def commune_sso_executable() -> Path:
    # TODO: the built wheel in a fresh venv
    return Path(sys.executable).parent / "commune-sso"
