"""`commune-sso backup` of a running instance and `commune-sso restore` into a fresh one, on
SQLite and PostgreSQL: the audit log verifies, an official logs in through the real login form,
OCSP answers `good` for a certificate issued before the backup; and the refusals (tampered
backup, occupied target, wrong passphrase) change nothing."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory
from asn1crypto import tsp as asn1_tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from commune_sso.app import create_app
from commune_sso.database import alembic_config
from core.settings import Settings
from tests.ca_admin.conftest import People, people  # noqa: F401
from tests.cli_runner import KEY_PASSPHRASE, SECRET_KEY, Cli, assert_clean_failure, cli_env
from tests.commune_sso.test_ca_cli import FAST, ORGANISATION, issue
from tests.conftest import ISSUER, OFFICIAL_PASSWORD, RP_REDIRECT, _admin_dsn
from tests.idp.oidc_flow import authorize_params, exchange_code, log_in, pkce_pair, query_of

OFFICIAL = "nguyen.van.an"


def instance_env(root: Path, database_url: str, **extra: str) -> dict[str, str | None]:
    settings = {"key_passphrase": KEY_PASSPHRASE, "secret_key": SECRET_KEY, **extra}
    return cli_env(
        var_dir=root / "var", database_url=database_url, key_dir=root / "keys", **settings
    )


def instance_settings(root: Path, database_url: str) -> Settings:
    return Settings(
        issuer=ISSUER,
        var_dir=root / "var",
        database_url=database_url,
        key_dir=root / "keys",
        key_passphrase=KEY_PASSPHRASE,
        secret_key=SECRET_KEY,
    )


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty database (no schema at all) on the same backend as ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'fresh' / 'var' / 'commune-sso.db'}"
        return
    name = f"sso_restore_{os.getpid()}_{tmp_path.name[-20:]}".replace("-", "_")
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _ocsp_status(web: TestClient, certificate: x509.Certificate, issuer: x509.Certificate) -> str:
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
        .build()
    )
    response = web.post(
        "/ca/ocsp",
        content=request.public_bytes(Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert response.status_code == 200, response.text
    answer = ocsp.load_der_ocsp_response(response.content)
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    (signer,) = answer.certificates
    signer.verify_directly_issued_by(issuer)
    public_key = signer.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert answer.signature_hash_algorithm is not None
    public_key.verify(
        answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm)
    )
    return answer.certificate_status.name


def _log_in(web: TestClient, client_id: str, secret: str) -> dict[str, object]:
    verifier, challenge = pkce_pair()
    redirected = log_in(web, authorize_params(client_id, challenge), OFFICIAL, OFFICIAL_PASSWORD)
    assert redirected.headers["location"].startswith(RP_REDIRECT), redirected.headers
    code = query_of(redirected.headers["location"])["code"]
    tokens = exchange_code(web, client_id, secret, code, verifier)
    assert tokens.status_code == 200, tokens.text
    body: dict[str, object] = tokens.json()
    return body


def test_backup_of_a_running_instance_restores_into_a_fresh_one(
    cli: Cli,
    people: People,  # noqa: F811 - officials and admins in the source database
    database_url: str,
    fresh_database_url: str,
    tmp_path: Path,
) -> None:
    # The source instance: the `cli` fixture's var dir and key ring, the people's database.
    cli.ok("user", "set-password", OFFICIAL, input=f"{OFFICIAL_PASSWORD}\n")
    client = cli.json(
        "client", "add", "--name", "Văn bản", "--redirect-uri", RP_REDIRECT, "--first-party"
    )
    cli.ok("ca", "init", "--organisation", ORGANISATION, *FAST)
    cli.ok("ca", "tsa", "init")
    serial = issue(cli, tmp_path)
    certificate = x509.load_pem_x509_certificate(cli.json("ca", "show", serial)["pem"].encode())
    issuing = x509.load_pem_x509_certificate(
        cli.json("ca", "export-chain")["certificates"][0]["pem"].encode()
    )
    checkpoint = cli.json("audit", "checkpoint")
    assert checkpoint["taken"] is True

    source = instance_settings(tmp_path, database_url)
    backup_dir = tmp_path / "backup"
    with TestClient(create_app(source), base_url=ISSUER, follow_redirects=False) as web:
        # Backed up while it serves, and it keeps serving.
        assert _ocsp_status(web, certificate, issuing) == "GOOD"
        made = cli.json("backup", str(backup_dir))
        assert _ocsp_status(web, certificate, issuing) == "GOOD"

    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    assert made["backend"] == backend
    assert made["audit_head"]["seq"] >= checkpoint["checkpoint"]["seq"]
    assert made["alembic_revision"]
    names = {f["path"] for f in made["files"]}
    database_file = "database.sqlite3" if backend == "sqlite" else "database.pgdump"
    assert {database_file, "keyring/manifest.json", "audit-key.pem"} <= names
    assert any(name.startswith("ca-keys/") for name in names)
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    for path in backup_dir.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path
        if path.is_file():
            content = path.read_bytes()
            assert KEY_PASSPHRASE.encode() not in content and SECRET_KEY.encode() not in content

    fresh_root = tmp_path / "fresh"
    fresh = Cli(instance_env(fresh_root, fresh_database_url))
    restored = fresh.json("restore", str(backup_dir))
    assert restored["audit_verified"] is True
    assert restored["audit_head"] == made["audit_head"]
    assert restored["audit_checkpoints_checked"] >= 1
    # Root, issuing, OCSP and TSA keys were under the old CA key directory; now under the new.
    assert restored["ca_key_uris_rewritten"] >= 4
    assert restored["moved_aside"] == []
    verified = fresh.json("audit", "verify")
    assert verified["ok"] is True and verified["checkpoints"]["problems"] == []
    assert (fresh_root / "var" / "ca-keys").is_dir()
    assert fresh.json("ca", "show", serial)["status"] == "good"

    restored_app = create_app(instance_settings(fresh_root, fresh_database_url))
    with TestClient(restored_app, base_url=ISSUER, follow_redirects=False) as web:
        tokens = _log_in(web, client["client_id"], client["client_secret"])
        assert tokens["id_token"]
        assert _ocsp_status(web, certificate, issuing) == "GOOD"
        # The TSA key opens at its new path: a time-stamp is granted.
        query = asn1_tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": {"algorithm": "sha256"},
                    "hashed_message": bytes(32),
                },
            }
        ).dump()
        stamped = web.post(
            "/tsa", content=query, headers={"Content-Type": "application/timestamp-query"}
        )
        assert asn1_tsp.TimeStampResp.load(stamped.content)["status"]["status"].native == "granted"
    # Signing a CRL proves the issuing CA key opens at its new path.
    assert fresh.json("ca", "crl")["crl_number"] >= 1


@pytest.fixture
def small_backup(cli: Cli, tmp_path: Path) -> Path:
    """A backup of an instance with one official, its key ring and a signed checkpoint."""
    cli.ok("user", "add", OFFICIAL, "--name", "Nguyễn Văn An", "--password-stdin",
           input=f"{OFFICIAL_PASSWORD}\n")  # fmt: skip
    cli.ok("keys", "list")
    cli.ok("audit", "checkpoint")
    directory = tmp_path / "backup"
    cli.ok("backup", str(directory))
    return directory


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_tampered_or_incomplete_backup_is_refused(
    small_backup: Path, fresh_database_url: str, tmp_path: Path
) -> None:
    fresh_root = tmp_path / "fresh"
    fresh = Cli(instance_env(fresh_root, fresh_database_url))
    key_file = next((small_backup / "keyring").glob("*.pem"))
    original = key_file.read_bytes()
    key_file.write_bytes(original[:-10] + b"AAAAAAAAA\n")
    result = fresh("restore", str(small_backup))
    assert result.exit_code == 2
    assert_clean_failure(result, "does not match its digest")
    key_file.write_bytes(original)
    (small_backup / "database.sqlite3").unlink(missing_ok=True)
    (small_backup / "database.pgdump").unlink(missing_ok=True)
    assert_clean_failure(fresh("restore", str(small_backup)), "backup incomplete")
    # Nothing was created for the fresh instance.
    assert not (fresh_root / "keys").exists()
    assert not (fresh_root / "var" / "commune-sso.db").exists()


def test_an_occupied_target_is_refused_without_force(
    cli: Cli, small_backup: Path, tmp_path: Path
) -> None:
    cli.ok("user", "add", "tran.thi.binh", "--name", "Trần Thị Bình")
    cli.ok("keys", "rotate", "--alg", "ES256")
    before_keys = _tree(tmp_path / "keys")
    before_tail = cli.json("audit", "tail")
    result = cli("restore", str(small_backup))
    assert result.exit_code == 2
    assert_clean_failure(result, "refusing to overwrite: the database holds data")
    assert "use --force" in " ".join(result.stderr.split())
    assert _tree(tmp_path / "keys") == before_keys
    assert cli.json("audit", "tail") == before_tail
    cli.ok("user", "disable", "tran.thi.binh")  # still there

    # --force replaces the database (the later account is gone) and keeps the old key ring
    # aside; the audit key, the same as in the backup, is left alone.
    forced = cli.json("restore", str(small_backup), "--force")
    assert forced["audit_verified"] is True
    assert len(forced["moved_aside"]) == 1 and "keys.before-restore" in forced["moved_aside"][0]
    assert _tree(Path(forced["moved_aside"][0])) == before_keys
    assert cli.json("audit", "tail", "-n", "1")[0]["action"] == "backup.restored"
    assert_clean_failure(cli("user", "disable", "tran.thi.binh"), "No account with that username")
    cli.ok("audit", "verify")


def test_a_new_host_after_db_upgrade_counts_as_empty(
    small_backup: Path, fresh_database_url: str, tmp_path: Path
) -> None:
    fresh = Cli(instance_env(tmp_path / "fresh", fresh_database_url))
    fresh.ok("db", "upgrade")
    restored = fresh.json("restore", str(small_backup))
    assert restored["audit_verified"] is True and restored["moved_aside"] == []
    fresh.ok("user", "disable", OFFICIAL)
    fresh.ok("audit", "verify")


def test_a_wrong_passphrase_is_refused_naming_the_setting(
    small_backup: Path, fresh_database_url: str, tmp_path: Path
) -> None:
    fresh_root = tmp_path / "fresh"
    wrong = Cli(
        instance_env(fresh_root, fresh_database_url, key_passphrase="another-passphrase-98765")
    )
    result = wrong("restore", str(small_backup))
    assert result.exit_code == 2
    assert_clean_failure(result, "COMMUNE_SSO_KEY_PASSPHRASE does not decrypt the backed-up key")
    assert not (fresh_root / "keys").exists()
    assert not (fresh_root / "var" / "commune-sso.db").exists()


def test_an_older_backup_is_upgraded_on_restore(
    database_url: str, fresh_database_url: str, tmp_path: Path
) -> None:
    # The source is made at 0009; the target, made by `db upgrade` at head and still empty,
    # is replaced by the older schema, which is then upgraded.
    older = Cli(instance_env(tmp_path / "fresh", fresh_database_url))
    older.ok("db", "upgrade", "0009")
    older.ok("keys", "list")  # the key ring
    older.ok("backup", str(tmp_path / "backup"))
    target = Cli(instance_env(tmp_path / "target", database_url))
    restored = target.json("restore", str(tmp_path / "backup"))
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert (restored["backup_revision"], restored["revision"]) == ("0009", head)
    assert restored["audit_verified"] is True


def test_an_unreachable_database_is_one_line(
    small_backup: Path, database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        (tmp_path / "a-directory.db").mkdir()  # SQLite cannot open it
        missing = f"sqlite:///{tmp_path / 'a-directory.db'}"
    else:
        missing = make_url(database_url).set(port=1).render_as_string(hide_password=False)
    unreachable = Cli(instance_env(tmp_path / "other", missing))
    result = unreachable("restore", str(small_backup))
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert_clean_failure(result, "cannot use the database (COMMUNE_SSO_DATABASE_URL)")


def test_backup_refuses_a_directory_in_use(small_backup: Path, cli: Cli) -> None:
    result = cli("backup", str(small_backup))
    assert result.exit_code == 2
    assert_clean_failure(result, "is not an empty directory")
