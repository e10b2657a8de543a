"""Runs one of the openid-client 6 relying parties of tests/idp/fapi/openid_client/ (Node.js):
it prints the authorization URL, the test signs the official in and hands back the redirect,
and the script prints what it got as its last JSON line."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.idp.oidc_flow import query_of

OPENID_CLIENT = Path(__file__).parent / "openid_client"
# Installed by scripts/test (npm ci of the pinned lock, like axe-core).
OPENID_CLIENT_PREFIX = Path(__file__).resolve().parents[3] / ".cache" / "node-openid-client"


def skip_without_openid_client() -> None:
    if shutil.which("node") is None or not (OPENID_CLIENT_PREFIX / "node_modules").is_dir():
        pytest.skip("node or openid-client (scripts/test installs it) is missing")


def run_openid_client(
    script_name: str, arguments: list[str], sign_in: Callable[[str], str]
) -> dict[str, Any]:
    """Run ``script_name`` with ``arguments``; ``sign_in(authorization_url)`` returns the
    redirect back to the app. The authorization request must have been pushed (RFC 9126 §4:
    only ``client_id`` and ``request_uri`` in the URL)."""
    first, result = run_openid_client_script(script_name, arguments, sign_in)
    assert set(query_of(first["authorization_url"])) == {"client_id", "request_uri"}
    return result


def run_openid_client_script(
    script_name: str, arguments: list[str], sign_in: Callable[[str], str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``script_name``: the first JSON line it prints (``authorization_url`` and whatever
    else the script says of its request) and its result, the last JSON line."""
    script = OPENID_CLIENT_PREFIX / script_name
    shutil.copyfile(OPENID_CLIENT / script_name, script)
    with subprocess.Popen(
        ["node", str(script), *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as node:
        assert node.stdout is not None and node.stdin is not None
        first_line = node.stdout.readline()
        assert first_line, node.stderr.read() if node.stderr else ""
        first: dict[str, Any] = json.loads(first_line)
        node.stdin.write(sign_in(first["authorization_url"]) + "\n")
        node.stdin.flush()
        out, err = node.communicate(timeout=60)
    assert node.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return first, result
