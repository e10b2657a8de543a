"""Several hosts on one database share one audit key: by default it lives in the key ring
directory they share, and a host whose audit key did not sign the chain's latest checkpoint
refuses to start, naming COMMUNE_SSO_AUDIT_KEY_URI (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commune_sso.app import audit_key_uri, check_audit_key, load_audit_key
from core import audit_checkpoints
from core.db import make_engine, make_session_factory
from core.errors import ConfigurationError
from core.settings import Settings
from tests.cli_runner import KEY_PASSPHRASE, SECRET_KEY, Cli, cli_env
from tests.commune_sso.test_startup_errors import assert_startup_failure, taken_port
from tests.keys.test_keyring_read_only import immutable


def host(database_url: str, tmp_path: Path, name: str, **extra: str) -> Cli:
    return Cli(
        cli_env(
            var_dir=tmp_path / f"var-{name}",
            database_url=database_url,
            key_dir=tmp_path / f"keys-{name}",
            key_passphrase=KEY_PASSPHRASE,
            secret_key=SECRET_KEY,
            **extra,
        )
    )


def serve(cli: Cli) -> object:
    # A proxy in front: the issuer's port is not the one taken here.
    behind_proxy = Cli({**cli.env, "COMMUNE_SSO_BEHIND_PROXY": "true"})
    with taken_port() as sock:  # past the checks, serve stops at the bind instead of serving
        return behind_proxy("serve", "--port", str(sock.getsockname()[1]))


def settings_of(cli: Cli) -> Settings:
    env = cli.env
    return Settings(
        var_dir=Path(str(env["COMMUNE_SSO_VAR_DIR"])),
        database_url=env["COMMUNE_SSO_DATABASE_URL"],
        key_dir=Path(str(env["COMMUNE_SSO_KEY_DIR"])),
        key_passphrase=KEY_PASSPHRASE,
        secret_key=SECRET_KEY,
        audit_key_uri=env.get("COMMUNE_SSO_AUDIT_KEY_URI"),
        audit_trusted_public_keys=json.loads(
            env.get("COMMUNE_SSO_AUDIT_TRUSTED_PUBLIC_KEYS") or "[]"
        ),
    )


def test_the_default_audit_key_lives_in_the_key_ring_directory(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", key_dir=tmp_path / "ring")
    assert audit_key_uri(settings) == f"file:{(tmp_path / 'ring' / 'audit-key.pem').absolute()}"
    # An instance that made its key at the earlier default keeps using it.
    earlier = tmp_path / "var" / "keys" / "audit-key.pem"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"")
    assert audit_key_uri(settings) == f"file:{earlier.absolute()}"


def test_a_host_with_another_audit_key_refuses_to_start(database_url: str, tmp_path: Path) -> None:
    first = host(database_url, tmp_path, "a")
    first.ok("user", "add", "nguyen.van.an", "--name", "Nguyễn Văn An")
    taken = first.json("audit", "checkpoint")
    assert taken["taken"]
    assert (tmp_path / "keys-a" / "audit-key.pem").exists()  # beside the key ring
    assert not (tmp_path / "var-a" / "keys" / "audit-key.pem").exists()

    second = host(database_url, tmp_path, "b")  # a key ring (and audit key) of its own
    result = serve(second)
    assert_startup_failure(result, "did not sign the audit log's latest checkpoint #1")  # type: ignore[arg-type]
    assert "COMMUNE_SSO_AUDIT_KEY_URI" in " ".join(result.stderr.split())  # type: ignore[attr-defined]

    # The same key (the shared ring, or the URI) is accepted...
    shared = tmp_path / "keys-a" / "audit-key.pem"
    same = host(database_url, tmp_path, "c", audit_key_uri=f"file:{shared}")
    engine = make_engine(database_url)
    try:
        factory = make_session_factory(engine)
        check_audit_key(settings_of(same), factory)
        with pytest.raises(ConfigurationError, match="COMMUNE_SSO_AUDIT_KEY_URI"):
            check_audit_key(settings_of(second), factory)
        # ...and so is a new key once the earlier one is listed as trusted (a replaced key).
        pem = tmp_path / "audit-a.pem"
        key = load_audit_key(settings_of(first))
        pem.write_text(audit_checkpoints.public_key_pem(key.public_key()))
        replaced = host(
            database_url, tmp_path, "b", audit_trusted_public_keys=json.dumps([str(pem)])
        )
        check_audit_key(settings_of(replaced), factory)
    finally:
        engine.dispose()


def test_a_read_only_key_dir_without_an_audit_key_is_one_clear_line(
    database_url: str, tmp_path: Path
) -> None:
    cli = host(database_url, tmp_path, "ro")
    cli.ok("keys", "list")  # the ring exists, written by "the host that rotates keys"
    key_dir = tmp_path / "keys-ro"
    assert not (key_dir / "audit-key.pem").exists()
    with immutable(key_dir):
        result = serve(cli)
    assert_startup_failure(result, f"cannot create the audit key {key_dir / 'audit-key.pem'}")  # type: ignore[arg-type]
    assert "COMMUNE_SSO_AUDIT_KEY_URI" in " ".join(result.stderr.split())  # type: ignore[attr-defined]
