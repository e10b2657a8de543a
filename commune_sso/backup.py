"""Backup and restore of one deployment: the database, the encrypted keys, and a manifest.

What a backup directory holds (mode 0700, every file 0600)::

    manifest.json        format, time, version, Alembic revision, audit log head, the
                         non-secret settings, and every file below with its SHA-256 and size
    database.pgdump      PostgreSQL: ``pg_dump --format=custom`` (one consistent snapshot)
    database.sqlite3     SQLite: the online backup API (consistent while the server runs)
    keyring/             the token-signing key ring, as on disk (encrypted PKCS#8 files)
    ca-keys/             the CA key directory, when it exists (encrypted PKCS#8 files)
    audit-key.pem        the audit checkpoint key, when it is a ``file:`` key

Never in it: the key passphrase, the server secret, the database password (nor the development
secret files ``<var_dir>/dev-*``). The keys stay encrypted with the passphrase the operator
keeps apart; a backup without that passphrase restores nothing usable, which is the point.
PKCS#11 keys never leave the HSM: their URIs are recorded, not the keys. The outgoing mail
directory and the import spool are transient and left out.

The SHA-256 digests detect a damaged or incomplete copy; they are not a signature (whoever can
rewrite the files can rewrite the manifest). Tampering with the audit log itself is caught by
``audit verify`` and its signed checkpoints, which restore runs.

Restore checks everything it can before it changes anything: digests, the passphrase (it must
decrypt every backed-up key), a known schema revision, and that the targets are empty (or
``force``). Then the database is restored in one transaction, the key directories are written
beside their targets and renamed into place, the schema is upgraded, CA key paths are moved to
the current CA key directory, and ``audit verify`` runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import Engine, exists, inspect, select, table, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ca_admin.models import Authority, TimeStampingUnit
from commune_sso import database, secrets_setup
from commune_sso.app import audit_key_uri
from core import audit, audit_checkpoints
from core.clock import Clock
from core.db import make_engine, make_session_factory, transaction
from core.errors import ConfigurationError
from core.settings import Settings
from keys.errors import SigningKeyError
from keys.signing_keys import load_signing_key

__all__ = [
    "FORMAT",
    "BackupRefused",
    "BackupResult",
    "RestoreResult",
    "create_backup",
    "restore_backup",
]

FORMAT = "commune-sso-backup/1"
MANIFEST = "manifest.json"
PG_DUMP_FILE = "database.pgdump"
SQLITE_FILE = "database.sqlite3"
KEYRING_DIR = "keyring"
CA_KEYS_DIR = "ca-keys"
AUDIT_KEY_FILE = "audit-key.pem"
# The key ring's flock(2) target (keys/keyring.py): coordination, not state.
_KEYRING_LOCK = ".lock"
NOT_INCLUDED = [
    "the key passphrase (COMMUNE_SSO_KEY_PASSPHRASE): keep it apart; the keys are encrypted "
    "with it",
    "the server secret (COMMUNE_SSO_SECRET_KEY) and the database password",
    "keys inside a PKCS#11 HSM (only their URIs are recorded)",
    "the outgoing mail directory and the import spool (transient)",
]
# A manifest names files by these relative paths only: nothing can point outside the backup.
_SAFE_PATH = re.compile(r"(?:[A-Za-z0-9._-]+/)?[A-Za-z0-9_-][A-Za-z0-9._-]*")


class BackupRefused(Exception):
    """A backup or restore that cannot go ahead; the message is one line for the operator."""


@dataclass(frozen=True)
class BackupResult:
    directory: Path
    manifest: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), **self.manifest}


@dataclass
class RestoreResult:
    backend: str
    backup_revision: str | None
    revision: str | None
    audit_head: dict[str, Any] | None
    restored: list[str] = field(default_factory=list)
    moved_aside: list[str] = field(default_factory=list)
    ca_key_uris_rewritten: int = 0
    audit_ok: bool = False
    audit_checked: int = 0
    audit_checkpoints: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "backup_revision": self.backup_revision,
            "revision": self.revision,
            "audit_head": self.audit_head,
            "restored": self.restored,
            "moved_aside": self.moved_aside,
            "ca_key_uris_rewritten": self.ca_key_uris_rewritten,
            "audit_verified": self.audit_ok,
            "audit_entries_checked": self.audit_checked,
            "audit_checkpoints_checked": self.audit_checkpoints,
            "warnings": self.warnings,
        }


# --------------------------------------------------------------------------------------------
# Backup


@contextmanager
def _database_reachable() -> Iterator[None]:
    """An unreachable database is a one-line refusal, not a traceback."""
    try:
        yield
    except OperationalError as error:
        cause = str(error.orig or error).strip().splitlines()
        raise BackupRefused(
            f"cannot use the database (COMMUNE_SSO_DATABASE_URL): {cause[0] if cause else error}"
        ) from None


def create_backup(*, settings: Settings, directory: Path, clock: Clock) -> BackupResult:
    """Write a backup of the configured deployment into ``directory`` (new or empty)."""
    with _database_reachable():
        return _create_backup(settings=settings, directory=directory, clock=clock)


def _create_backup(*, settings: Settings, directory: Path, clock: Clock) -> BackupResult:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BackupRefused(f"{directory} is not an empty directory; choose a new one")
    url = make_url(settings.resolved_database_url)
    backend = _backend(url)
    created_dir = not directory.exists()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    try:
        # The database first: keys only ever get added, so keys copied afterwards cover every
        # key the dumped rows can name.
        if backend == "postgresql":
            _pg_dump(url, directory / PG_DUMP_FILE)
        else:
            _sqlite_backup(url, directory / SQLITE_FILE)
        revision, head = _database_facts(settings.resolved_database_url)
        warnings: list[str] = []
        audit_uri = audit_key_uri(settings)
        audit_path = _file_uri_path(audit_uri)
        _copy_keyring(settings.resolved_key_dir, directory / KEYRING_DIR, skip=audit_path)
        ca_key_dir = settings.resolved_ca_key_dir.absolute()
        if ca_key_dir.is_dir():
            _copy_tree(ca_key_dir, directory / CA_KEYS_DIR)
        ca_uris = _ca_key_uris(settings.resolved_database_url)
        outside = [
            uri
            for uri in ca_uris
            if uri.startswith("file:") and not uri.startswith(f"file:{ca_key_dir}/")
        ]
        for uri in outside:
            warnings.append(f"CA key outside the CA key directory not included: {uri}")
        if audit_path is not None:
            if audit_path.is_file():
                _copy_file(audit_path, directory / AUDIT_KEY_FILE)
            else:
                warnings.append(f"audit key file {audit_path} does not exist yet; not included")
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "created_at": clock.now().isoformat(),
            "commune_sso_version": _version(),
            "backend": backend,
            "alembic_revision": revision,
            "audit_head": head,
            "settings": {
                "issuer": settings.issuer,
                "environment": settings.environment,
                "database": url.set(password=None).render_as_string(hide_password=False),
                "key_dir": str(settings.resolved_key_dir.absolute()),
                "ca_key_dir": str(ca_key_dir),
                "audit_key_uri": audit_uri,
                "audit_key_algorithm": settings.audit_key_algorithm,
            },
            "ca_key_uris": ca_uris,
            "files": _file_list(directory),
            "not_included": NOT_INCLUDED,
            "warnings": warnings,
        }
        _write_private(directory / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
    except BaseException:
        # Never leave a half-written backup that looks like a real one.
        if created_dir:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for child in directory.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return BackupResult(directory=directory, manifest=manifest)


def _backend(url: URL) -> str:
    if url.get_backend_name() == "postgresql":
        return "postgresql"
    if url.get_backend_name() == "sqlite":
        return "sqlite"
    raise BackupRefused(f"cannot back up a {url.get_backend_name()} database")


def _version() -> str:
    try:
        return metadata.version("commune-sso")
    except metadata.PackageNotFoundError:
        return "unknown"


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _copy_file(source: Path, target: Path) -> None:
    _write_private(target, source.read_bytes())


def _copy_tree(source: Path, target: Path, *, skip: Path | None = None) -> None:
    target.mkdir(mode=0o700)
    for child in sorted(source.iterdir()):
        if child.name == _KEYRING_LOCK or not child.is_file():
            continue
        if skip is not None and child.absolute() == skip.absolute():
            continue
        _copy_file(child, target / child.name)


def _copy_keyring(source: Path, target: Path, *, skip: Path | None) -> None:
    if not (source / "manifest.json").is_file():
        raise BackupRefused(f"no key ring in {source} (COMMUNE_SSO_KEY_DIR)")
    # A shared flock, as the key ring's readers take it: a rotation in another process cannot
    # write a manifest naming a key file we have not copied.
    with _shared_lock(source / _KEYRING_LOCK):
        _copy_tree(source, target, skip=skip)


@contextmanager
def _shared_lock(path: Path) -> Iterator[None]:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        yield  # no lock file (or unreadable): nobody else writes this ring through keys/
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)


def _file_list(directory: Path) -> list[dict[str, Any]]:
    files = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        files.append(
            {
                "path": path.relative_to(directory).as_posix(),
                "sha256": _sha256(path),
                "size": path.stat().st_size,
            }
        )
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_uri_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("file:")).absolute() if uri.startswith("file:") else None


def _database_facts(database_url: str) -> tuple[str | None, dict[str, Any] | None]:
    """The Alembic revision and the audit log head (last entry's number and hash)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
            row = connection.execute(
                select(audit.AuditChainHead.last_seq, audit.AuditChainHead.last_hash)
            ).first()
    finally:
        engine.dispose()
    head = None if row is None else {"seq": int(row[0]), "hash": str(row[1])}
    return revision, head


def _ca_key_uris(database_url: str) -> list[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(Authority.key_uri, Authority.ocsp_key_uri)).all()
            # The time-stamping units' keys live in the CA key directory too; a database at a
            # revision older than the TSA (0032) has no such table.
            tsa_uris = (
                connection.execute(select(TimeStampingUnit.key_uri)).scalars().all()
                if inspect(connection).has_table(TimeStampingUnit.__tablename__)
                else []
            )
    finally:
        engine.dispose()
    return sorted({uri for row in rows for uri in row if uri} | set(tsa_uris))


# --- PostgreSQL tools


def _pg_tool(name: str) -> str:
    """The newest ``name`` (pg_dump, pg_restore, psql) on PATH or in /usr/lib/postgresql/*/bin:
    pg_dump refuses a server newer than itself, and a newer client reads older servers."""
    candidates = [Path(p) for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}")]
    on_path = shutil.which(name)
    if on_path is not None:
        candidates.append(Path(on_path))
    best: tuple[tuple[int, ...], str] | None = None
    for candidate in candidates:
        try:
            # An argument list, no shell; the program is a PostgreSQL binary we located.
            out = subprocess.run(  # noqa: S603
                [str(candidate), "--version"], capture_output=True, text=True, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
        match = re.search(r"(\d+)(?:\.(\d+))?", out)
        if match is None:
            continue
        version = tuple(int(part) for part in match.groups() if part is not None)
        if best is None or version > best[0]:
            best = (version, str(candidate))
    if best is None:
        raise BackupRefused(
            f"{name} not found on PATH or in /usr/lib/postgresql/*/bin; install the PostgreSQL "
            "client (Debian: postgresql-client)"
        )
    return best[1]


# libpq's environment variables for the query parameters a SQLAlchemy URL may carry.
_LIBPQ_QUERY_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


def _libpq_env(url: URL) -> dict[str, str]:
    """The connection as libpq environment variables: the password goes in PGPASSWORD, never
    on a command line that every local user can read in /proc."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    given = {
        "PGHOST": url.host,
        "PGPORT": None if url.port is None else str(url.port),
        "PGUSER": url.username,
        "PGPASSWORD": url.password if isinstance(url.password, str) else None,
        "PGDATABASE": url.database,
    }
    for name, value in url.query.items():
        if name in _LIBPQ_QUERY_ENV:
            given[_LIBPQ_QUERY_ENV[name]] = value if isinstance(value, str) else value[-1]
    env.update({k: v for k, v in given.items() if v})
    return env


def _run(command: list[str], *, env: dict[str, str], what: str, **options: Any) -> None:
    # An argument list, no shell: paths and URLs are never parsed by a shell.
    completed = subprocess.run(  # noqa: S603
        command, env=env, capture_output=True, text=True, **options
    )
    if completed.returncode != 0:
        lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
        # psql prints NOTICEs before the line that made it stop; the error is what matters.
        errors = [line for line in lines if "ERROR" in line or "FATAL" in line]
        detail = (errors or lines or [f"exit code {completed.returncode}"])[0]
        raise BackupRefused(f"{what} failed: {detail}")


def _pg_dump(url: URL, target: Path) -> None:
    # Created 0600 before pg_dump writes into it.
    _write_private(target, b"")
    _run(
        [_pg_tool("pg_dump"), "--format=custom", "--no-password", f"--file={target}"],
        env=_libpq_env(url),
        what="pg_dump",
    )


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupRefused("the SQLite database is in memory; nothing to back up or restore")
    return Path(url.database)


def _sqlite_backup(url: URL, target: Path) -> None:
    source_path = _sqlite_path(url)
    if not source_path.is_file():
        raise BackupRefused(f"no SQLite database at {source_path}")
    _write_private(target, b"")
    # mode=ro: a mistyped path must not create an empty database to back up.
    source = sqlite3.connect(f"{source_path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()


# --------------------------------------------------------------------------------------------
# Restore


def restore_backup(
    *, settings: Settings, directory: Path, clock: Clock, force: bool = False, actor: str
) -> RestoreResult:
    """Restore the backup in ``directory`` into the deployment the current settings name."""
    with _database_reachable():
        return _restore_backup(
            settings=settings, directory=directory, clock=clock, force=force, actor=actor
        )


def _restore_backup(
    *, settings: Settings, directory: Path, clock: Clock, force: bool, actor: str
) -> RestoreResult:
    manifest = read_verified_manifest(directory)
    backend = manifest["backend"]
    url = make_url(settings.resolved_database_url)
    if _backend(url) != backend:
        raise BackupRefused(
            f"the backup holds a {backend} database but COMMUNE_SSO_DATABASE_URL names a "
            f"{_backend(url)} one"
        )
    passphrase = _check_passphrase(settings, directory)
    _check_revision_known(settings.resolved_database_url, manifest.get("alembic_revision"))

    key_dir = settings.resolved_key_dir.absolute()
    ca_key_dir = settings.resolved_ca_key_dir.absolute()
    has_ca_keys = (directory / CA_KEYS_DIR).is_dir()
    audit_target = _file_uri_path(audit_key_uri(settings))
    has_audit_key = (directory / AUDIT_KEY_FILE).is_file()
    result = RestoreResult(
        backend=backend,
        backup_revision=manifest.get("alembic_revision"),
        revision=None,
        audit_head=manifest.get("audit_head"),
    )
    if has_audit_key and audit_target is None:
        result.warnings.append(
            "the backup's audit key file was not restored: COMMUNE_SSO_AUDIT_KEY_URI names a "
            "PKCS#11 key"
        )
    if not has_audit_key and manifest["settings"]["audit_key_uri"].startswith("pkcs11:"):
        result.warnings.append(
            f"the audit key stays in the HSM: {manifest['settings']['audit_key_uri']}"
        )

    # Refusals before any change.
    if not force:
        occupied = []
        if not _database_is_empty(settings.resolved_database_url):
            occupied.append("the database holds data")
        if _has_files(key_dir):
            occupied.append(f"key directory {key_dir} is not empty")
        if has_ca_keys and _has_files(ca_key_dir):
            occupied.append(f"CA key directory {ca_key_dir} is not empty")
        if has_audit_key and audit_target is not None and audit_target.exists():
            occupied.append(f"audit key {audit_target} exists")
        if occupied:
            raise BackupRefused(
                f"refusing to overwrite: {'; '.join(occupied)} (use --force to replace)"
            )

    # Database: all or nothing.
    if backend == "postgresql":
        _pg_restore(url, directory / PG_DUMP_FILE)
    else:
        _sqlite_restore(url, directory / SQLITE_FILE)
    result.restored.append(f"database ({backend}, revision {result.backup_revision})")

    # Key directories: written beside the target, then renamed into place.
    audit_inside_keyring = audit_target is not None and audit_target.parent == key_dir
    # An audit key the backup does not carry (an HSM key now, a file key then) stays put.
    keep = (
        [audit_target.name] if audit_target and audit_inside_keyring and not has_audit_key else []
    )
    _restore_dir(directory / KEYRING_DIR, key_dir, result, clock=clock, keep=keep)
    result.restored.append(f"key ring -> {key_dir}")
    if has_ca_keys:
        _restore_dir(directory / CA_KEYS_DIR, ca_key_dir, result, clock=clock, keep=[])
        result.restored.append(f"CA keys -> {ca_key_dir}")
    if has_audit_key and audit_target is not None:
        _restore_file(directory / AUDIT_KEY_FILE, audit_target, result, clock=clock)
        result.restored.append(f"audit key -> {audit_target}")

    # Schema: a backup from an older release is brought to this release's head.
    database.upgrade(settings.resolved_database_url)
    result.revision, head = _database_facts(settings.resolved_database_url)
    if head != manifest.get("audit_head"):
        result.warnings.append(
            f"the restored audit log head {head} differs from the backup's "
            f"{manifest.get('audit_head')}"
        )

    factory = make_session_factory(make_engine(settings.resolved_database_url))
    try:
        audit.install(factory)
        old_ca_dir = manifest["settings"]["ca_key_dir"]
        with transaction(factory) as session:
            if old_ca_dir != str(ca_key_dir):
                result.ca_key_uris_rewritten = _move_ca_key_uris(
                    session, old=old_ca_dir, new=str(ca_key_dir)
                )
            audit.record(
                session,
                clock=clock,
                actor=actor,
                action="backup.restored",
                details={
                    "created_at": manifest["created_at"],
                    "backup_revision": result.backup_revision,
                    "audit_head": manifest.get("audit_head"),
                    "ca_key_uris_rewritten": result.ca_key_uris_rewritten,
                },
            )
        _verify_audit(settings, factory, clock, passphrase, result)
    finally:
        factory.kw["bind"].dispose()
    return result


def read_verified_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, once every file it lists is present with its size and SHA-256."""
    try:
        manifest = json.loads((directory / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise BackupRefused(f"{directory} is not a backup: no {MANIFEST}") from None
    except (OSError, ValueError) as error:
        raise BackupRefused(f"{directory / MANIFEST} cannot be read: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupRefused(f"{directory / MANIFEST} is not a {FORMAT} manifest")
    files = manifest.get("files")
    if not isinstance(files, list) or manifest.get("backend") not in ("postgresql", "sqlite"):
        raise BackupRefused(f"{directory / MANIFEST} is incomplete")
    listed = set()
    for entry in files:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not _SAFE_PATH.fullmatch(path) or ".." in path:
            raise BackupRefused(f"{directory / MANIFEST} names an unsafe path: {path!r}")
        target = directory / path
        if not target.is_file():
            raise BackupRefused(f"backup incomplete: {path} is missing")
        if target.stat().st_size != entry.get("size") or _sha256(target) != entry.get("sha256"):
            raise BackupRefused(
                f"backup damaged or tampered with: {path} does not match its digest"
            )
        listed.add(path)
    # Files the manifest does not list would be restored unchecked: refuse them too.
    for path in directory.rglob("*"):
        name = path.relative_to(directory).as_posix()
        if path.is_file() and name != MANIFEST and name not in listed:
            raise BackupRefused(f"backup has a file its manifest does not list: {name}")
    database_file = PG_DUMP_FILE if manifest["backend"] == "postgresql" else SQLITE_FILE
    for required in (database_file, f"{KEYRING_DIR}/manifest.json"):
        if required not in listed:
            raise BackupRefused(f"backup incomplete: {required} is missing")
    return manifest


def _key_files(directory: Path) -> Iterator[Path]:
    for sub in (KEYRING_DIR, CA_KEYS_DIR):
        if (directory / sub).is_dir():
            yield from sorted((directory / sub).glob("*.pem"))
    if (directory / AUDIT_KEY_FILE).is_file():
        yield directory / AUDIT_KEY_FILE


def _check_passphrase(settings: Settings, directory: Path) -> str:
    """Every backed-up key must open with the current passphrase, or nothing is restored."""
    try:
        passphrase = secrets_setup.key_passphrase(settings).decode("utf-8")
    except ConfigurationError as error:
        raise BackupRefused(str(error)) from None
    for path in _key_files(directory):
        try:
            load_signing_key(f"file:{path.absolute()}", passphrase=passphrase)
        except SigningKeyError:
            name = path.relative_to(directory).as_posix()
            raise BackupRefused(
                f"COMMUNE_SSO_KEY_PASSPHRASE does not decrypt the backed-up key {name}: set it "
                "to the passphrase of the backed-up deployment"
            ) from None
    return passphrase


def _check_revision_known(database_url: str, revision: str | None) -> None:
    if revision is None:
        return
    scripts = ScriptDirectory.from_config(database.alembic_config(database_url))
    try:
        known = scripts.get_revision(revision)
    except (CommandError, RevisionError):
        known = None
    if known is None:
        raise BackupRefused(
            f"the backup's schema revision {revision} is unknown to this commune-sso release "
            f"({_version()}); restore with the release that made the backup or a newer one"
        )


def _has_files(directory: Path) -> bool:
    return directory.is_dir() and any(p.name != _KEYRING_LOCK for p in directory.iterdir())


# Rows the migrations themselves write: the schema version, the audit chain's genesis head
# (once the head moves, the audit log has rows too) and the token state counter (version 0
# until a watched table changes, idp/token_state_triggers.py).
_SCHEMA_ROWS = frozenset({"alembic_version", "audit_chain_head", "idp_token_state"})


def _user_tables(engine: Engine) -> list[str]:
    return [name for name in inspect(engine).get_table_names() if name not in _SCHEMA_ROWS]


def _database_is_empty(database_url: str) -> bool:
    """No rows in any table: a new database, or one only `db upgrade` has touched."""
    url = make_url(database_url)
    if _backend(url) == "sqlite" and not _sqlite_path(url).exists():
        return True
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return not any(
                connection.execute(select(exists().select_from(table(name)))).scalar()
                for name in _user_tables(engine)
            )
    finally:
        engine.dispose()


# A target that only `db upgrade` has touched (or, with --force, any target) is emptied in the
# same transaction as the restore: if the restore fails, the old schema and rows are still there.
_DROP_EVERYTHING = """
DO $$
DECLARE r record;
BEGIN
  -- Extensions first (pg_trgm, for the certificate search): their functions cannot be dropped
  -- one by one, and the dump creates the extension again.
  FOR r IN SELECT extname FROM pg_extension
           WHERE extnamespace = current_schema()::regnamespace LOOP
    EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);
  END LOOP;
  FOR r IN SELECT viewname FROM pg_views WHERE schemaname = current_schema() LOOP
    EXECUTE format('DROP VIEW IF EXISTS %I CASCADE', r.viewname);
  END LOOP;
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
    EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename);
  END LOOP;
  FOR r IN SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() LOOP
    EXECUTE format('DROP SEQUENCE IF EXISTS %I CASCADE', r.sequencename);
  END LOOP;
  -- Trigger functions (the live-officials counts) outlive their tables and would clash with
  -- the dump's CREATE FUNCTION.
  FOR r IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
           WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind = 'f' LOOP
    EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.signature);
  END LOOP;
END $$;
"""


def _pg_restore(url: URL, dump: Path) -> None:
    env = _libpq_env(url)
    with tempfile.TemporaryDirectory(prefix="commune-sso-restore-") as work:
        script = Path(work) / "restore.sql"
        # Objects are created by whoever restores; grants are the target's business.
        _run(
            [
                _pg_tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                f"--file={script}",
                str(dump),
            ],
            env=env,
            what="pg_restore",
        )
        drop = Path(work) / "drop.sql"
        drop.write_text(_DROP_EVERYTHING)
        _run(
            [
                _pg_tool("psql"),
                "--no-password",
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
                "--set=ON_ERROR_STOP=1",
                f"--file={drop}",
                f"--file={script}",
            ],
            env=env,
            what="restoring the PostgreSQL database",
        )


def _sqlite_restore(url: URL, copy: Path) -> None:
    target = _sqlite_path(url).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.restoring")
    staged.unlink(missing_ok=True)
    _write_private(staged, copy.read_bytes())
    # A journal left from the replaced database would be replayed into the restored one.
    for suffix in ("-wal", "-shm", "-journal"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    os.replace(staged, target)


def _aside(path: Path, clock: Clock) -> Path:
    return path.with_name(f"{path.name}.before-restore-{clock.now():%Y%m%dT%H%M%S}")


def _restore_dir(
    source: Path, target: Path, result: RestoreResult, *, clock: Clock, keep: list[str]
) -> None:
    """Copy ``source`` to ``target`` through a sibling directory renamed into place; with
    --force an old directory that differs is kept beside it (a restore never destroys keys)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.restoring")
    shutil.rmtree(staged, ignore_errors=True)
    _copy_tree(source, staged)
    for name in keep:  # a file of another kind living in the same directory (the audit key)
        if (target / name).is_file():
            _copy_file(target / name, staged / name)
    if target.exists():
        if _has_files(target) and _contents(target) != _contents(staged):
            aside = _aside(target, clock)
            os.replace(target, aside)
            result.moved_aside.append(str(aside))
        else:
            shutil.rmtree(target)
    os.replace(staged, target)


def _contents(directory: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in directory.iterdir()
        if p.is_file() and p.name != _KEYRING_LOCK
    }


def _restore_file(source: Path, target: Path, result: RestoreResult, *, clock: Clock) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if target.is_file() and target.read_bytes() == source.read_bytes():
        return
    if target.exists():
        aside = _aside(target, clock)
        os.replace(target, aside)
        result.moved_aside.append(str(aside))
    staged = target.with_name(f".{target.name}.restoring")
    staged.unlink(missing_ok=True)
    _copy_file(source, staged)
    os.replace(staged, target)


def _move_ca_key_uris(session: Session, *, old: str, new: str) -> int:
    """CA key file URIs are absolute: point those under the backed-up CA key directory at the
    current one (pkcs11: and other file: URIs are left as they are)."""
    prefix = f"file:{old}/"
    changed = 0
    for authority in session.scalars(select(Authority)).all():
        for column in ("key_uri", "ocsp_key_uri"):
            uri = getattr(authority, column)
            if uri is not None and uri.startswith(prefix):
                new_uri = f"file:{new}/{uri.removeprefix(prefix)}"
                session.execute(
                    update(Authority).where(Authority.id == authority.id).values({column: new_uri})
                )
                changed += 1
    for unit in session.scalars(select(TimeStampingUnit)).all():
        if unit.key_uri.startswith(prefix):
            session.execute(
                update(TimeStampingUnit)
                .where(TimeStampingUnit.id == unit.id)
                .values(key_uri=f"file:{new}/{unit.key_uri.removeprefix(prefix)}")
            )
            changed += 1
    return changed


def _verify_audit(
    settings: Settings,
    factory: sessionmaker[Session],
    clock: Clock,
    passphrase: str,
    result: RestoreResult,
) -> None:
    """What `audit verify` checks, with the keys it trusts by default."""
    trusted: list[audit_checkpoints.PublicKey] = []
    for path in settings.audit_trusted_public_keys:
        try:
            trusted.append(audit_checkpoints.load_public_key_pem(path.read_bytes()))
        except (OSError, ValueError) as error:
            result.warnings.append(f"cannot use trusted audit key {path}: {error}")
    try:
        trusted.append(
            load_signing_key(audit_key_uri(settings), passphrase=passphrase).public_key()
        )
    except SigningKeyError as error:
        result.warnings.append(f"audit key not loaded: {error}")
    with transaction(factory) as session:
        chain = audit.verify(session)
        checkpoints = audit_checkpoints.verify_checkpoints(
            session=session, trusted_public_keys=trusted, clock=clock
        )
    result.audit_ok = chain.ok and checkpoints.ok
    result.audit_checked = chain.checked
    result.audit_checkpoints = checkpoints.checked
    if not result.audit_ok:
        problems = [f"entry {p.seq}: {p.kind}" for p in chain.problems]
        problems += [f"checkpoint {p.number}: {p.kind}" for p in checkpoints.problems]
        result.warnings.append("audit verify failed: " + "; ".join(problems[:5]))
