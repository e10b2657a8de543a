"""Signed audit checkpoints from the outside: `audit checkpoint`, `audit verify` (exit codes,
``--json``, ``--trusted-key``) and the serving process's periodic task, on real databases."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, Table, delete, select, update
from starlette.testclient import TestClient

from commune_sso.app import build_runtime, create_app, load_audit_key
from core.audit import AuditChainHead, AuditEntry, record
from core.audit_checkpoints import (
    AuditCheckpoint,
    latest_checkpoint,
    take_checkpoint_now,
    verify_checkpoints,
)
from core.clock import FixedClock
from core.db import make_session_factory, transaction
from core.settings import Settings
from idp.runtime import IdpRuntime
from tests.cli_runner import Cli, one_line
from tests.conftest import ISSUER

LOG = cast(Table, AuditEntry.__table__)
HEAD = cast(Table, AuditChainHead.__table__)
CHECKPOINT = cast(Table, AuditCheckpoint.__table__)


def add_users(cli: Cli, count: int, start: int = 1) -> None:
    for n in range(start, start + count):
        cli.ok("user", "add", f"can.bo.{n}", "--name", f"Cán bộ {n}")


def write_pem(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def test_checkpoint_command_signs_the_head_once(cli: Cli, tmp_path: Path) -> None:
    assert "nothing to checkpoint" in cli.ok("audit", "checkpoint").stdout
    add_users(cli, 3)

    first = cli.json("audit", "checkpoint")

    assert first["taken"] is True
    checkpoint = first["checkpoint"]
    assert (checkpoint["number"], checkpoint["seq"], checkpoint["algorithm"]) == (1, 3, "ES256")
    assert first["public_key_fingerprint"] == checkpoint["key_fingerprint"]
    assert first["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    # The default audit key: created on first use, encrypted at rest, private to its owner.
    key_file = tmp_path / "keys" / "audit-key.pem"  # beside the key ring the hosts share
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    assert key_file.stat().st_mode & 0o077 == 0

    again = cli.json("audit", "checkpoint")
    assert again["taken"] is False
    assert again["checkpoint"]["number"] == 1
    assert "nothing new since checkpoint #1" in one_line(cli.ok("audit", "checkpoint").stdout)

    add_users(cli, 1, start=4)
    readable = one_line(cli.ok("audit", "checkpoint").stdout)
    assert "checkpoint #2 covers entry 4" in readable


def test_verify_reports_checkpoints_and_the_unprotected_tail(cli: Cli) -> None:
    add_users(cli, 2)
    report = cli.json("audit", "verify")
    assert report["ok"] is True
    assert report["checkpoints"]["checked"] == 0
    assert report["checkpoints"]["unprotected_entries"] == 2

    cli.ok("audit", "checkpoint")
    add_users(cli, 1, start=3)

    report = cli.json("audit", "verify")
    assert report["ok"] is True and report["problems"] == []
    section = report["checkpoints"]
    assert section["ok"] is True and section["checked"] == 1 and section["problems"] == []
    assert section["last"]["seq"] == 2
    assert section["unprotected_entries"] == 1
    assert section["last_age_seconds"] >= 0
    readable = one_line(cli.ok("audit", "verify").stdout)
    assert "audit chain intact: 3 entries" in readable
    assert "checkpoints: 1 verified; the last, #1, covers entry 2" in readable
    assert "not yet checkpointed: 1 entries" in readable


def test_verify_catches_a_cut_tail_the_chain_alone_misses(cli: Cli, engine: Engine) -> None:
    add_users(cli, 4)
    cli.ok("audit", "checkpoint")
    with engine.begin() as connection:
        kept = connection.execute(select(LOG.c.entry_hash).where(LOG.c.seq == 2)).scalar_one()
        connection.execute(delete(LOG).where(LOG.c.seq > 2))
        connection.execute(update(HEAD).values(last_seq=2, last_hash=kept))

    result = cli("audit", "verify", "--json")

    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problems"] == []  # the chain itself looks intact
    assert [(p["number"], p["kind"]) for p in report["checkpoints"]["problems"]] == [
        (1, "truncated")
    ]
    readable = cli("audit", "verify")
    assert readable.exit_code == 2
    assert "checkpoint 1: truncated" in one_line(readable.stdout)

    refused = cli("audit", "checkpoint")
    assert refused.exit_code == 2
    assert "checkpoint refused" in one_line(refused.stderr)


def test_verify_trusts_the_key_the_verifier_names(cli: Cli, tmp_path: Path) -> None:
    add_users(cli, 2)
    taken = cli.json("audit", "checkpoint")
    published = tmp_path / "audit-pub.pem"
    published.write_text(taken["public_key_pem"])
    other = write_pem(tmp_path / "other-pub.pem", ec.generate_private_key(ec.SECP256R1()))

    assert cli.json("audit", "verify", "--trusted-key", str(published))["ok"] is True

    result = cli("audit", "verify", "--trusted-key", str(other), "--json")
    assert result.exit_code == 2
    problems = json.loads(result.stdout)["checkpoints"]["problems"]
    assert [(p["number"], p["kind"]) for p in problems] == [(1, "untrusted_key")]

    missing = cli("audit", "verify", "--trusted-key", str(tmp_path / "nowhere.pem"))
    assert missing.exit_code == 1
    assert "cannot use trusted key" in one_line(missing.stderr)


def test_verify_rejects_a_checkpoint_forged_with_another_key(
    cli: Cli, engine: Engine, database_url: str
) -> None:
    add_users(cli, 2)
    sessions = make_session_factory(engine)
    mallory = ec.generate_private_key(ec.SECP256R1())
    clock = FixedClock()
    assert take_checkpoint_now(session_factory=sessions, clock=clock, key=mallory) is not None

    result = cli("audit", "verify", "--json")

    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["problems"] == []
    assert [p["kind"] for p in report["checkpoints"]["problems"]] == ["untrusted_key"]


# -- the periodic task in the serving process -------------------------------------------------


@pytest.fixture
def fast_runtime(settings: Settings, clock: FixedClock) -> Iterator[tuple[Settings, IdpRuntime]]:
    fast = settings.model_copy(update={"audit_checkpoint_interval": 0.05})
    built = build_runtime(fast, clock)
    yield fast, built
    built.session_factory.kw["bind"].dispose()


def test_the_app_takes_checkpoints_in_the_background(
    fast_runtime: tuple[Settings, IdpRuntime],
) -> None:
    settings, runtime = fast_runtime
    with transaction(runtime.session_factory) as session:
        record(session, clock=runtime.clock, actor="test", action="test.event")

    with TestClient(create_app(settings, runtime=runtime), base_url=ISSUER) as client:
        assert client.get("/.well-known/openid-configuration").status_code == 200
        deadline = time.monotonic() + 10
        checkpoint = None
        while checkpoint is None and time.monotonic() < deadline:
            time.sleep(0.05)
            with runtime.session_factory() as session:
                checkpoint = latest_checkpoint(session)

    assert checkpoint is not None, "the periodic task took no checkpoint"
    assert checkpoint.seq == 1
    key = load_audit_key(settings)  # the default key file the task created
    with runtime.session_factory() as session:
        result = verify_checkpoints(
            session=session, trusted_public_keys=[key.public_key()], clock=runtime.clock
        )
    assert result.ok and result.checked == 1


def test_the_app_loads_the_audit_key_only_when_it_checkpoints(
    settings: Settings, runtime: IdpRuntime
) -> None:
    """Default interval (300 s): starting and stopping the app creates no key and no row."""
    # The session's key ring directory is shared with tests that did make the key there.
    made_before = (settings.resolved_key_dir / "audit-key.pem").exists()
    with TestClient(create_app(settings, runtime=runtime), base_url=ISSUER) as client:
        assert client.get("/.well-known/openid-configuration").status_code == 200
    assert not (settings.var_dir / "keys" / "audit-key.pem").exists()
    assert (settings.resolved_key_dir / "audit-key.pem").exists() == made_before
    with runtime.session_factory() as session:
        assert session.scalars(select(AuditCheckpoint)).all() == []
