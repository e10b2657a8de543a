"""What userinfo and introspection need to know about a token besides its signature, cached
per worker: is its grant revoked or expired, is its official still active, is its jti revoked,
and the userinfo body its scope releases.

Shared apps call those endpoints on every page view; reading the grant, the account and the
revocation table for each call was most of their cost (issue 15). Instead each worker keeps
what it has read, and forgets it when it changes:

* every change to the tables it comes from bumps a version counter and records what changed,
  in the same transaction, whoever writes (idp/token_state_triggers.py);
* a thread reads the counter every :data:`POLL_INTERVAL` seconds (one row; the change rows
  only when it moved) and forgets what changed; on PostgreSQL a second thread LISTENs on a
  dedicated connection and wakes the first at once when a change commits;
* a change committed by this process is applied before the request that made it answers
  (:func:`install_commit_hook`): on one instance a revocation holds "at once", as before.

The cache answers only while it is fresh: if its last completed read started more than
:data:`STALE_AFTER` seconds ago (the database is slow or down, a notification was lost and the
poller stalled), :meth:`TokenStateCache.check` says "unknown" and the caller takes the general
path, which reads the database. So a revoked token is refused on every worker and host within
:data:`STALE_AFTER` (< 1 s) of the commit, whatever happens to the notifications.

Entries come from the general path (:meth:`remember_grant`, :meth:`remember_userinfo`), which
reads the rows anyway; an entry read before a change that the cache has meanwhile applied is
not kept (the version it was read at no longer matches).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, delete, event, select
from sqlalchemy.orm import Session, sessionmaker

from idp.clients import ClientCache
from idp.models import Grant, RevokedAccessToken, TokenStateChange, TokenStateVersion
from idp.token_state_triggers import (
    ACCESS_TOKEN,
    ACCOUNT,
    CLIENT,
    DIRECTORY,
    GRANT,
    NOTIFY_CHANNEL,
    WATCHES,
)

log = logging.getLogger(__name__)

# The counter is read this often (and at once on a notification).
POLL_INTERVAL = 0.5
# The cache answers only if its last completed read began less than this long ago: the bound
# on how long a revoked token can still pass on another worker or host.
STALE_AFTER = 0.9
# More changes than this since the last read (an import disabling officials, a unit merge):
# forget everything instead of reading them all.
MAX_CHANGES_PER_READ = 1000
# Change rows are kept this long; a worker that missed some (stopped for longer) starts over.
CHANGE_RETENTION_SECONDS = 600
PRUNE_INTERVAL = 60.0
# Revoked jtis are read in full this often, which also drops the expired ones.
REVOKED_RELOAD_INTERVAL = 300.0
# The LISTEN connection is re-opened after this long when it breaks (the poller covers).
LISTEN_RETRY_SECONDS = 5.0
LISTENER_APPLICATION_NAME = "commune-sso token-state listener"
# Bounds on memory per worker; past them the oldest entries go.
MAX_GRANTS = 100_000
MAX_ACCOUNTS = 50_000
MAX_USERINFO_BODIES = 8  # per account: one per distinct scope asked


def _watched_writes() -> re.Pattern[str]:
    """The statements, as SQLAlchemy emits them, that fire a trigger of the feed (a login's
    new grant does not: only its revocation does)."""
    statements = []
    for watch in WATCHES:
        if watch.insert:
            statements.append(rf"INSERT\s+INTO\s+{watch.table}\b")
        if watch.update_columns is not None:
            statements.append(rf"UPDATE\s+{watch.table}\b")
        if watch.delete:
            statements.append(rf"DELETE\s+FROM\s+{watch.table}\b")
    return re.compile(r"\s*(?:" + "|".join(statements) + ")", re.IGNORECASE)


_WATCHED_WRITE = _watched_writes()
_TOUCHED = "token_state_touched"
_CONNECTION_INFOS = "token_state_connection_infos"


@dataclass(frozen=True)
class CachedGrant:
    account_id: int
    expires_at: float  # Unix time
    revoked: bool


@dataclass
class CachedAccount:
    active: bool
    subject: str
    username: str
    # Rendered userinfo responses (OIDC Core §5.3.2) by the scope of the token.
    userinfo_bodies: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenCheck:
    """The cache's answer: the token stands (with its official, if it has a grant), or not."""

    usable: bool
    account: CachedAccount | None = None


REFUSED = TokenCheck(usable=False)


class TokenStateCache:
    def __init__(
        self, session_factory: sessionmaker[Session], client_cache: Callable[[], ClientCache]
    ) -> None:
        self._engine: Engine = session_factory.kw["bind"]
        self._client_cache = client_cache  # the runtime's current one
        self.version: int | None = None  # last applied; None until the first read
        self._synced_at = float("-inf")  # monotonic start of the last completed read
        self._grants: dict[str, CachedGrant] = {}
        self._accounts: dict[int, CachedAccount] = {}
        self._revoked_jtis: frozenset[str] = frozenset()
        self._revoked_loaded_at = float("-inf")
        self._pruned_at = float("-inf")
        self._sync_lock = threading.Lock()  # one read of the feed at a time
        self._write_lock = threading.Lock()  # every change to the dicts (readers do not lock)
        self._feed: TokenStateFeed | None = None

    # ---- the request side (event loop; no locks, no database) ------------------------------

    def is_fresh(self) -> bool:
        return time.monotonic() - self._synced_at < STALE_AFTER

    def check(self, *, grant_id: str | None, jti: str, now: float) -> TokenCheck | None:
        """Whether a verified, unexpired access token still stands, as of at most
        :data:`STALE_AFTER` seconds ago; None when the cache cannot tell (not fresh, or the
        grant or its official not cached yet): ask the database."""
        if not self.is_fresh():
            return None
        if jti in self._revoked_jtis:
            return REFUSED
        if grant_id is None:
            return TokenCheck(usable=True)
        grant = self._grants.get(grant_id)
        if grant is None:
            return None
        if grant.revoked or now >= grant.expires_at:
            return REFUSED
        account = self._accounts.get(grant.account_id)
        if account is None:
            return None
        return TokenCheck(usable=True, account=account) if account.active else REFUSED

    # ---- filled by the general path (worker threads) ---------------------------------------

    def remember_grant(self, grant: Grant, *, read_at_version: int | None) -> None:
        """Keep a grant and its official as the general path read them (with the grant's
        joined account), if no change was applied since ``read_at_version``, the version the
        cache had before the read."""
        account = grant.account
        with self._write_lock:
            if read_at_version is None or read_at_version != self.version:
                return
            self._grants[grant.grant_id] = CachedGrant(
                account_id=grant.account_id,
                expires_at=grant.expires_at.timestamp(),
                revoked=grant.revoked_at is not None,
            )
            if grant.account_id not in self._accounts:
                self._accounts[grant.account_id] = CachedAccount(
                    active=account.is_active, subject=account.subject, username=account.username
                )
            _bound(self._grants, MAX_GRANTS)
            _bound(self._accounts, MAX_ACCOUNTS)

    def remember_userinfo(
        self, account_id: int, scope: str, body: bytes, *, read_at_version: int | None
    ) -> None:
        with self._write_lock:
            if read_at_version is None or read_at_version != self.version:
                return
            account = self._accounts.get(account_id)
            if account is None:
                return
            bodies = dict(account.userinfo_bodies)
            bodies[scope] = body
            _bound(bodies, MAX_USERINFO_BODIES)
            account.userinfo_bodies = bodies  # replaced whole: readers never see it half-made

    # ---- reading the feed ------------------------------------------------------------------

    def sync(self) -> None:
        """Read the counter (and what changed since the last read) and forget what changed.
        Raises what the database raises; the cache then goes stale by itself."""
        started = time.monotonic()
        with self._sync_lock, self._engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            version = connection.execute(
                select(TokenStateVersion.version).where(TokenStateVersion.id == 1)
            ).scalar_one()
            reload_revoked = started - self._revoked_loaded_at >= REVOKED_RELOAD_INTERVAL
            if self.version is None or version < self.version:
                self._start_over(connection, version, started)
            elif version > self.version:
                changes = connection.execute(
                    select(TokenStateChange.version, TokenStateChange.kind, TokenStateChange.key)
                    .where(TokenStateChange.version > self.version)
                    .order_by(TokenStateChange.version)
                    .limit(MAX_CHANGES_PER_READ + 1)
                ).all()
                # Versions are consecutive and each has a row: a gap means rows were pruned.
                if (
                    not changes
                    or changes[0].version != self.version + 1
                    or len(changes) > MAX_CHANGES_PER_READ
                ):
                    self._start_over(connection, version, started)
                else:
                    self._apply(connection, changes, reload_revoked=reload_revoked)
            elif reload_revoked:
                self._revoked_jtis = self._read_revoked(connection)
                self._revoked_loaded_at = started
            if started - self._pruned_at >= PRUNE_INTERVAL:
                self._pruned_at = started
                self._prune(connection)
            self._synced_at = max(self._synced_at, started)

    def _start_over(self, connection: Connection, version: int, started: float) -> None:
        revoked = self._read_revoked(connection)
        with self._write_lock:
            self._grants = {}
            self._accounts = {}
            self._revoked_jtis = revoked
            self._revoked_loaded_at = started
            self.version = version
        self._client_cache().forget_all()

    def _apply(
        self, connection: Connection, changes: Iterable[Any], *, reload_revoked: bool
    ) -> None:
        revoked = self._read_revoked(connection) if reload_revoked else None
        with self._write_lock:
            added_jtis: set[str] = set()
            for change in changes:
                if change.kind == GRANT:
                    self._grants.pop(change.key, None)
                elif change.kind == ACCOUNT:
                    self._accounts.pop(int(change.key), None)
                elif change.kind == DIRECTORY:
                    for account in self._accounts.values():
                        account.userinfo_bodies = {}
                    self._client_cache().forget_reaches()
                elif change.kind == ACCESS_TOKEN:
                    added_jtis.add(change.key)
                elif change.kind == CLIENT:
                    self._client_cache().forget(change.key)
                self.version = change.version
            if revoked is not None:
                self._revoked_jtis = revoked | added_jtis
                self._revoked_loaded_at = time.monotonic()
            elif added_jtis:
                self._revoked_jtis = self._revoked_jtis | added_jtis

    def _read_revoked(self, connection: Connection) -> frozenset[str]:
        """The jtis of revoked access tokens that have not expired yet."""
        now = datetime.now(UTC)
        jtis = select(RevokedAccessToken.jti).where(RevokedAccessToken.expires_at > now)
        return frozenset(connection.execute(jtis).scalars())

    def _prune(self, connection: Connection) -> None:
        before = int(time.time()) - CHANGE_RETENTION_SECONDS
        connection.execute(delete(TokenStateChange).where(TokenStateChange.changed_at < before))

    def sync_after_local_commit(self) -> None:
        """A transaction of this process changed a watched table: apply it before the
        request that made it answers. When that read fails, the cache stops answering until
        a read succeeds (a change of ours is never left unapplied)."""
        if self._feed is None:
            return
        try:
            self.sync()
        except Exception:
            self._synced_at = float("-inf")
            log.warning("token state not read after a local change", exc_info=True)

    # ---- the feed's threads ----------------------------------------------------------------

    def start(self) -> None:
        """Start reading the feed (the app's lifespan calls this in each serving process)."""
        if self._feed is None:
            self._feed = TokenStateFeed(self, self._engine)
            self._feed.start()

    def stop(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.stop()
        self._synced_at = float("-inf")
        self.version = None

    def wake(self) -> None:
        if self._feed is not None:
            self._feed.wake()


def _bound(entries: dict[Any, Any], limit: int) -> None:
    while len(entries) > limit:
        del entries[next(iter(entries))]


class TokenStateFeed:
    """The poller thread, and on PostgreSQL the LISTEN thread that wakes it."""

    def __init__(self, cache: TokenStateCache, engine: Engine) -> None:
        self._cache = cache
        self._engine = engine
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._threads = [threading.Thread(target=self._poll, name="token-state-poll", daemon=True)]
        if engine.dialect.name == "postgresql":
            self._threads.append(
                threading.Thread(target=self._listen, name="token-state-listen", daemon=True)
            )
        self._listener: psycopg.Connection[Any] | None = None

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._woken.set()
        for thread in self._threads:
            thread.join(5.0)

    def wake(self) -> None:
        self._woken.set()

    def _poll(self) -> None:
        failing = False
        while not self._stopping.is_set():
            self._woken.clear()
            try:
                self._cache.sync()
                failing = False
            except Exception:
                if not failing:  # once per outage, not twice a second
                    log.warning(
                        "token state not read; tokens are checked in the database", exc_info=True
                    )
                failing = True
            self._woken.wait(POLL_INTERVAL)

    def _listen(self) -> None:
        url = self._engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    dsn,
                    autocommit=True,
                    connect_timeout=5,
                    application_name=LISTENER_APPLICATION_NAME,
                ) as connection:
                    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.wake()  # anything committed while we were not listening
                    while not self._stopping.is_set():
                        for _notification in connection.notifies(timeout=1.0, stop_after=1):
                            self.wake()
            except psycopg.Error:
                if self._stopping.is_set():
                    return
                log.warning(
                    "token state notifications lost; polling every %s s until they are back",
                    POLL_INTERVAL,
                    exc_info=True,
                )
                self._stopping.wait(LISTEN_RETRY_SECONDS)


def install_commit_hook(session_factory: sessionmaker[Session], cache: TokenStateCache) -> None:
    """After a commit of this process that wrote to a watched table, read the feed at once.

    Statements are noted per pooled connection (whatever runs them: the ORM, Core, text);
    the session remembers the connections its transaction used and asks them at its end.
    """
    engine: Engine = session_factory.kw["bind"]

    @event.listens_for(engine, "after_cursor_execute")
    def _note_write(connection: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if _WATCHED_WRITE.match(statement):
            connection.info[_TOUCHED] = True

    @event.listens_for(session_factory, "after_begin")
    def _remember_connection(session: Session, _transaction: Any, connection: Connection) -> None:
        session.info.setdefault(_CONNECTION_INFOS, []).append(connection.info)

    def _touched(session: Session) -> bool:
        infos = session.info.pop(_CONNECTION_INFOS, [])
        return any([info.pop(_TOUCHED, False) for info in infos])

    @event.listens_for(session_factory, "after_commit")
    def _after_commit(session: Session) -> None:
        if _touched(session):
            cache.sync_after_local_commit()

    @event.listens_for(session_factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        _touched(session)
