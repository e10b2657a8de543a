"""./scripts/serve writes commune-sso.toml, and ./scripts/commune-sso runs the CLI on it from any
directory (issue 19). The scripts run for real in a copy of the checkout's scripts/ whose .venv
holds this environment's Python and entry point (and a pip that installs nothing: the project
is installed already)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "scripts", root / "scripts")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "commune-sso").symlink_to(Path(sys.executable).parent / "commune-sso")
    (bin_dir / "pip").write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    (bin_dir / "pip").chmod(0o755)
    return root


def run(command: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMUNE_SSO_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_serve_writes_the_settings_and_the_wrapper_uses_them(
    checkout: Path, tmp_path: Path
) -> None:
    started = run([str(checkout / "scripts" / "serve"), "--port", "18400", "--help"], cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    assert "./scripts/commune-sso" in started.stderr
    config = tomllib.loads((checkout / "commune-sso.toml").read_text(encoding="utf-8"))
    var_dir = checkout / "var"
    assert config == {
        "var_dir": str(var_dir),
        "database_url": f"sqlite:///{var_dir}/commune-sso.db",
        "key_dir": str(var_dir / "keys"),
        "issuer": "http://127.0.0.1:18400",
    }

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    wrapper = str(checkout / "scripts" / "commune-sso")
    assert run([wrapper, "db", "upgrade"], cwd=elsewhere).returncode == 0
    added = run([wrapper, "user", "add", "an.nv", "--name", "Nguyễn Văn An"], cwd=elsewhere)
    assert added.returncode == 0, added.stderr
    listed = run([wrapper, "user", "list", "--json"], cwd=elsewhere)
    assert [row["username"] for row in json.loads(listed.stdout)] == ["an.nv"]
    assert (var_dir / "commune-sso.db").is_file()
    assert list(elsewhere.iterdir()) == []  # nothing of the service lands where the admin is


def test_serve_keeps_a_file_that_is_no_longer_its_own(checkout: Path, tmp_path: Path) -> None:
    config = checkout / "commune-sso.toml"
    config.write_text('issuer = "https://sso.laocai.gov.vn"\n', encoding="utf-8")
    started = run([str(checkout / "scripts" / "serve"), "--port", "18400", "--help"], cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    assert config.read_text(encoding="utf-8") == 'issuer = "https://sso.laocai.gov.vn"\n'
