"""The store's core: the connection (SQLite, or PostgreSQL by URL), transactions, migrations and the `Store` class.

The tables' methods live in the module of their concept, mixed into `Store` (config_tables.py:
settings, extensions, trunks, routes; registrations.py; cdr.py; blocks.py); the other concepts
are module functions over a Store (accounts, contacts, recordings, quality, reports, voicemail,
queue_log, interactions, acd, dialer, web_sessions). Their SQL is written once for SQLite and
PostgreSQL; what differs is the store's `Dialect` (dialect.py). No module outside
appliance/store writes SQL (docs/ARCHITECTURE.md, "The store").

Durability (ARCHITECTURE.md: "every write that matters is committed before it is
acknowledged"): the database runs in WAL mode with ``synchronous=NORMAL``, which
survives an engine crash but may lose the last commits on power loss (SQLite,
https://www.sqlite.org/pragma.html#pragma_synchronous: "WAL mode is always consistent
with synchronous=NORMAL, but WAL mode does lose durability. A transaction committed in
WAL mode with synchronous=NORMAL might roll back following a power loss or system
crash."). Writes whose loss would matter after a power cut (configuration, recordings)
switch the connection to ``synchronous=FULL`` for their commit, so the WAL
is fsynced before the method returns ("an additional sync operation of the WAL file
happens after each transaction commit"); because the WAL is sequential, that fsync
also persists any earlier NORMAL commits. A call's start and end (CDR open and close)
are committed NORMAL in the SIP loop and fsynced by the WAL syncer thread right after
(deferred.WalSyncer; the close was FULL in the loop until issue 14 item 8): a power cut
loses no call start or end older than that fsync, measured at 1.8 ms mean and
8.6 ms max at 200 calls (bench/pbx_load.py, ``wal_sync``; the open itself costs the loop
0.5 ms), while FULL in the loop cost each open 2.1 ms instead of 0.6 ms at 100 calls.
Registrations, answer times and blocks stay NORMAL:
phones re-register, a lost answer time is rewritten by the durable close, and a lost
block is re-earned by the attacker's next failures.

Storage faults (disk full, I/O error, the web app's write lock held past
``write_busy_ms``) never fail a call: the engine's writes go through `record_write` /
`insert_row`, which keep a refused write in order in memory and replay it later
(appliance/store/writes.py, appliance/store/deferred.py).

Threads: one connection per Store, guarded by a lock, so the engine may hand it
between threads; another process (the web app) opens its own Store and WAL lets it
read while the engine writes (``busy_timeout`` covers short write overlaps).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Self

from appliance.store.blocks import BlockTable
from appliance.store.cdr import CdrTable
from appliance.store.config_tables import ConfigTables
from appliance.store.deferred import DEFAULT_LIMIT
from appliance.store import postgres
from appliance.store.dialect import POSTGRESQL, SQLITE, Dialect
from appliance.store.dialect import upsert_sql as portable_upsert
from appliance.store.errors import StoreError
from appliance.store.migrations import MIGRATIONS, SCRIPTS, split_script
from appliance.store.registrations import RegistrationTable
from appliance.store.writes import RESERVE_IDS, WRITE_BUSY_MS

# The upsert in the store's ``?`` text, which `Store.execute` converts (store/acd.py imports it here).
upsert_sql = portable_upsert


class Store(ConfigTables, RegistrationTable, CdrTable, BlockTable):
    """The appliance database. Every public method commits before it returns.

    This module is the connection and transaction core; each table's methods live in the module
    of its concept (config_tables, registrations, cdr, blocks), mixed in here so callers keep one
    `Store`; the other concepts are module functions over a Store (contacts.py, accounts.py...).
    """

    dialect: Dialect = SQLITE
    path: pathlib.Path | None  # the SQLite file; None on PostgreSQL
    location: str  # the file or the URL without its password, for messages
    url: str | None  # the PostgreSQL URL (with its password: never logged), None on SQLite
    # The driver's errors: sqlite3's, or psycopg's on PostgreSQL (PEP 249 names, each module its own).
    db_error: type[Exception] = sqlite3.Error
    integrity_error: type[Exception] = sqlite3.IntegrityError

    def __init__(self, path: pathlib.Path | str, *, busy_timeout_ms: int = 5000,
                 write_busy_ms: int = WRITE_BUSY_MS, pending_limit: int = DEFAULT_LIMIT,
                 reserve_ids: int = RESERVE_IDS, node: str = "") -> None:
        """Open (creating if needed) and migrate ``path``: a SQLite file, or a PostgreSQL URL.

        A file path or ``sqlite:///path`` is SQLite (the file created mode 0600: it holds secrets);
        ``postgresql://...`` is a PostgreSQL database through psycopg (store/postgres.py).
        ``write_busy_ms`` bounds how long a deferrable write (`record_write`) waits for another
        connection's write lock before it is deferred; ``pending_limit`` bounds the deferred queue;
        ``reserve_ids``: on PostgreSQL, the ids kept per table for inserts deferred while the server
        is away (store/writes.py). ``node`` is the engine's name on the site, stamped on the CDR and
        queue-log rows it writes (so a survivor closes a dead node's calls only: appliance/cluster/nodes.py).
        """
        self.node = node
        self.busy_timeout_ms = int(busy_timeout_ms)
        self._lock = threading.RLock()
        self._depth = 0
        self._conn: Any
        if postgres.is_url(path):
            self.dialect = POSTGRESQL
            self.path = None
            self.url = str(path)
            self.location = postgres.redacted(str(path))
            pg = postgres.PgConnection(str(path), connect_timeout_s=busy_timeout_ms / 1000.0,
                                       lock_timeout_ms=busy_timeout_ms)
            self.db_error, self.integrity_error = pg.errors.Error, pg.errors.IntegrityError
            self._conn = pg
            self._init_deferred(write_busy_ms, pending_limit, reserve_ids)
        else:
            self.path = pathlib.Path(str(path).removeprefix("sqlite://"))
            self.url = None
            self.location = str(self.path)
            self._init_deferred(write_busy_ms, pending_limit)
            self._conn = self._open_sqlite(self.path, busy_timeout_ms)
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def _open_sqlite(self, path: pathlib.Path, busy_timeout_ms: int) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000.0,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._enable_wal(conn, busy_timeout_ms / 1000.0)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    # -- connection and transactions -------------------------------------------------

    def _enable_wal(self, conn: sqlite3.Connection, timeout: float) -> None:
        """Switch to WAL (persistent in the file, so usually already on).

        The switch needs an exclusive lock and SQLite returns "database is locked"
        at once, without its busy handler, when another connection is opening the
        same fresh file; so retry until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode.lower() != "wal":
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
                continue
            if mode.lower() != "wal":
                raise StoreError(f"{self.location}: cannot enable WAL (journal_mode={mode})")
            return

    @property
    def shared(self) -> bool:
        """True when several engines may share this store (PostgreSQL): the site's state is here."""
        return self.dialect is POSTGRESQL

    def config_changed(self) -> None:
        """This transaction changed the configuration: the site's other engines reload it when it
        commits (PostgreSQL NOTIFY, store/notify.py); nothing to tell on SQLite (one engine)."""
        if self.dialect.config_notify:
            self.execute(self.dialect.config_notify)

    def close(self) -> None:
        """Flush what was deferred (one last try) and close; the Store cannot be used afterwards."""
        if len(self.deferred) and isinstance(self._conn, postgres.PgConnection):
            # A session the server dropped is reopened in the background: give the last flush one.
            self._conn.wait_open(self.busy_timeout_ms / 1000.0)
        self._stop_deferred()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True, read_only: bool = False,
                    busy_ms: int | None = None) -> Iterator[None]:
        """Group several writes into one transaction (nested calls join the outer one).

        ``BEGIN IMMEDIATE`` takes the write lock at once so a concurrent writer waits
        on ``busy_timeout`` instead of failing at commit. ``durable`` fsyncs the WAL
        on commit (``synchronous=FULL``). ``read_only`` opens a deferred transaction:
        a consistent snapshot that does not block writers. ``busy_ms`` replaces the busy
        timeout for this transaction (a short one for the engine loop's deferrable writes).
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            durable = durable and not read_only
            before, begin, after = self.dialect.transaction_sql(read_only, durable, busy_ms,
                                                                self.busy_timeout_ms)
            for statement in before:
                self._conn.execute(statement)
            try:
                self._conn.execute(begin)
                self._depth = 1
                try:
                    yield
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        # After SQLITE_FULL or an I/O error SQLite may have rolled back already;
                        # a PostgreSQL connection that was lost cannot roll back at all.
                        with contextlib.suppress(self.db_error):
                            self._conn.execute("ROLLBACK")
                    raise
                finally:
                    self._depth = 0
            finally:
                for statement in after:
                    self._conn.execute(statement)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(self.dialect.sql(sql), params).fetchall()  # type: ignore[no-any-return]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement written with ``?`` placeholders; the driver's cursor."""
        return self._conn.execute(self.dialect.sql(sql), params)

    def execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each row (a bulk load: the caller holds the transaction)."""
        self._conn.cursor().executemany(self.dialect.sql(sql), rows)

    def schema_version(self) -> int:
        """Return the number of migrations applied."""
        row = self.query("SELECT MAX(version) FROM schema_version")[0]
        return int(row[0] or 0)

    def _migrate(self) -> None:
        """Apply pending migrations, each in its own transaction.

        The version is re-read after ``BEGIN IMMEDIATE`` (SQLite) or the dialect's migration lock
        (PostgreSQL) so two processes opening a fresh database at once apply each migration once.
        """
        exists = self._conn.execute(self.dialect.table_exists_sql, ("schema_version",)).fetchone()
        if exists:
            # Fast path without the write lock: a reader (the web app) opening while
            # the engine is inside a transaction must not wait for it.
            current = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            if current == len(MIGRATIONS):
                return
        while True:
            with self.transaction():
                if self.dialect.migration_lock:
                    self.execute(self.dialect.migration_lock)
                if not exists:
                    self.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version ("
                        "version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
                    )
                current = int(
                    self.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
                )
                if current > len(MIGRATIONS):
                    raise StoreError(
                        f"{self.location}: schema version {current} is newer than this software "
                        f"({len(MIGRATIONS)}); refusing to open"
                    )
                if current == len(MIGRATIONS):
                    return
                # SQLite's are MIGRATIONS; another engine's are the same scripts in its types.
                script = MIGRATIONS[current] if self.dialect is SQLITE else self.dialect.ddl(SCRIPTS[current])
                for statement in split_script(script):
                    self.execute(statement)
                self.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (current + 1, time.time()),
                )
