"""How the Store writes what the engine must not lose: now, or deferred while the database refuses.

`record_write` and `insert_row` commit at once when they can; on a storage fault (disk full, I/O
error, the web app's write lock held past ``write_busy_ms``), or while earlier writes are still
deferred, the write joins the ordered queue of appliance/store/deferred.py, and a flusher thread
replays it when the database accepts writes again. A mixin of `Store` (store/db.py), kept apart so
each module stays about one concept.
"""
from __future__ import annotations

import contextlib
import logging
import pathlib
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from appliance.store.deferred import (
    DeferredWrites,
    PendingWrite,
    StorageStatus,
    WalSyncer,
    statements,
    storage_fault,
)
from appliance.store.dialect import Dialect
from appliance.store.errors import StoreError
from appliance.system.liveness import Heartbeat, PartHealth

log = logging.getLogger("plateau.store")

# How long a deferrable write waits for another connection's write lock (the web app's) before it
# is deferred instead: the engine loop must not stall a call for a web transaction.
WRITE_BUSY_MS = 50
FLUSH_INTERVAL_S = 0.25  # how often the flusher retries while writes are deferred
FLUSH_BATCH = 500  # deferred writes replayed per transaction


class DeferredWriting:
    """The Store's deferrable writes; the Store provides the connection, its lock and transactions.

    Also the base of the Store's table mixins (config_tables, registrations, cdr, blocks): the
    stubs below say what they use of the Store, which overrides them.
    """

    path: pathlib.Path | None
    busy_timeout_ms: int
    dialect: Dialect
    db_error: type[Exception]
    integrity_error: type[Exception]
    _lock: threading.RLock
    _conn: Any

    def transaction(self, *, durable: bool = True, read_only: bool = False,
                    busy_ms: int | None = None) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _init_deferred(self, write_busy_ms: int, pending_limit: int) -> None:
        self.write_busy_ms = int(write_busy_ms)
        self.deferred = DeferredWrites(pending_limit)
        self._allocated: dict[str, int] = {}  # table -> highest id handed out to a deferred insert
        self._flusher: threading.Thread | None = None
        self._flusher_lock = threading.Lock()
        self._flusher_beat = Heartbeat()
        self._closing = threading.Event()
        # SQLite's WAL file, fsynced off the loop after a call start; PostgreSQL's own WAL writer
        # does that for a commit made with synchronous_commit off (store/postgres.py).
        self._wal_sync = (WalSyncer(pathlib.Path(f"{self.path}-wal"), self.deferred)
                          if self.path is not None else None)

    def _stop_deferred(self) -> None:
        """At close: fsync what is pending, stop the flusher, one last flush with the full busy timeout."""
        self._closing.set()
        if self._wal_sync is not None:
            self._wal_sync.stop()
        flusher = self._flusher
        if flusher is not None:
            flusher.join(timeout=5.0)
        with self._lock:
            if len(self.deferred):
                self.flush_deferred(busy_ms=self.busy_timeout_ms)
            lost = len(self.deferred)
        if lost:
            log.error("storage: closing with %d deferred write(s) the database never accepted (%s)",
                      lost, self.deferred.status().last_error)

    def record_write(
        self, kind: str, pairs: Sequence[tuple[str, Sequence[Any]]], *, durable: bool = False,
        check: Callable[[list[Any]], None] | None = None, expect_row: bool = False,
        sync_soon: bool = False,
    ) -> bool:
        """Run a write the engine must not lose; True if committed now, False if deferred.

        ``durable`` with ``sync_soon``: where a WAL syncer runs (SQLite), commit without the
        fsync and have the syncer fsync it a moment later, off the caller's thread, as
        `insert_row` does (WalSyncer: group commit; the store's close waits for it). A
        deferred write, and every write on PostgreSQL, keeps ``durable`` as given.

        Deferred (appliance/store/deferred.py) when the database refuses it for a storage fault
        (disk full, I/O error, locked past ``write_busy_ms``), or when earlier writes are still
        deferred: order is kept. ``check`` sees the cursors of a write run now and may raise
        StoreError (the transaction is rolled back); a replayed write has ``expect_row`` instead.
        """
        t0 = time.perf_counter()
        try:
            return self._record_write(kind, statements(*pairs), durable, check, expect_row,
                                      sync_soon and durable and self._wal_sync is not None)
        finally:
            self.deferred.timed(kind, time.perf_counter() - t0)

    def _record_write(
        self, kind: str, frozen: tuple[tuple[str, tuple[Any, ...]], ...], durable: bool,
        check: Callable[[list[Any]], None] | None, expect_row: bool, sync_soon: bool = False,
    ) -> bool:
        if not len(self.deferred):
            with self._lock:
                if not len(self.deferred):
                    try:
                        with self.transaction(durable=durable and not sync_soon,
                                              busy_ms=self.write_busy_ms):
                            cursors = [self.execute(sql, params) for sql, params in frozen]
                            if check is not None:
                                check(cursors)
                        if sync_soon and self._wal_sync is not None:
                            self._wal_sync.request()  # committed NORMAL: fsynced right after
                        return True
                    except self.db_error as exc:
                        fault = storage_fault(exc)
                        if fault is None:
                            raise
                        self.deferred.failed(fault, exc, kind)
        self._defer(PendingWrite(kind, frozen, durable, time.time(), expect_row))
        return False

    def insert_row(self, kind: str, table: str, columns: Sequence[str], values: Sequence[Any], *,
                   durable: bool = False, sync_soon: bool = False) -> int:
        """INSERT one row the engine must not lose and return its id (see `record_write`).

        A deferred insert gets its id here, above every id the table has used (AUTOINCREMENT
        tables never reuse one) and every id handed out before, so later writes can name the
        row before it reaches the table. Only the engine inserts into these tables.
        """
        t0 = time.perf_counter()
        try:
            return self._insert_row(kind, table, columns, values, durable, sync_soon and not durable)
        finally:
            self.deferred.timed(kind, time.perf_counter() - t0)

    def _insert_row(self, kind: str, table: str, columns: Sequence[str], values: Sequence[Any],
                    durable: bool, sync_soon: bool) -> int:
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
               + self.dialect.returning_id)
        if not len(self.deferred):
            with self._lock:
                if not len(self.deferred):
                    try:
                        with self.transaction(durable=durable, busy_ms=self.write_busy_ms):
                            row_id = self.dialect.new_id(self.execute(sql, values))
                        if row_id is None:
                            raise StoreError(f"{table} insert returned no id")
                        # Ids go on from here if the database is unreachable later (PostgreSQL:
                        # no read of its sequence either, unlike a full SQLite disk).
                        self._allocated[table] = max(self._allocated.get(table, 0), int(row_id))
                        if sync_soon and self._wal_sync is not None:
                            # committed NORMAL: the WAL syncer fsyncs it right after
                            self._wal_sync.request()
                        return int(row_id)
                    except self.db_error as exc:
                        fault = storage_fault(exc)
                        if fault is None:
                            raise
                        self.deferred.failed(fault, exc, kind)
        row_id = self._allocate_id(table)
        sql = f"INSERT INTO {table} (id, {', '.join(columns)}) VALUES (?, {', '.join('?' for _ in columns)})"
        pairs: list[tuple[str, Sequence[Any]]] = [(sql, (row_id, *values))]
        if self.dialect.follow_id_sql:
            pairs.append((self.dialect.follow_id_sql.format(table=table), (row_id,)))
        self._defer(PendingWrite(kind, statements(*pairs), durable, time.time()))
        return row_id

    def _allocate_id(self, table: str) -> int:
        with self._lock:
            used = self._allocated.get(table, 0)
            try:
                seq = self._conn.execute(self.dialect.sequence_sql, (table,)).fetchone()
                top = self._conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()
                used = max(used, int(seq[0]) if seq else 0, int(top[0] or 0))
            except self.db_error as exc:  # reads still work on a full disk; if not, ids go on
                if not used:
                    raise StoreError(f"cannot allocate a {table} id: {exc}") from exc
            self._allocated[table] = used + 1
            return used + 1

    def _defer(self, write: PendingWrite) -> None:
        self.deferred.push(write)
        with self._flusher_lock:
            if self._closing.is_set():
                return
            if self._flusher is not None and not self._flusher.is_alive():  # died: start another
                self._flusher_beat.died("store-flusher thread ended with writes pending")
                self._flusher_beat.restarted()
                self._flusher = None
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, name="store-flusher", daemon=True)
                self._flusher.start()

    def parts(self) -> list[PartHealth]:
        """The flusher's liveness for the engine's supervisor, while it runs (it exits when the
        queue is empty, so no flusher is no fault); its beat is its last replay attempt."""
        with self._flusher_lock:
            flusher = self._flusher
        if flusher is None:
            return []
        return [self._flusher_beat.health("store-flusher", flusher.is_alive())]

    def _flush_loop(self) -> None:
        """Replay deferred writes every FLUSH_INTERVAL_S until none is left (or the Store closes)."""
        while not self._closing.wait(FLUSH_INTERVAL_S):
            self._flusher_beat.beat()
            try:
                self.flush_deferred()
            except Exception as exc:  # the flusher must outlive any one bad replay; logged, retried
                self._flusher_beat.died(exc)
                log.exception("storage: replaying deferred writes failed")
            with self._flusher_lock:
                if not len(self.deferred):
                    self._flusher = None
                    return
        with self._flusher_lock:
            self._flusher = None

    def flush_deferred(self, busy_ms: int | None = None) -> bool:
        """Replay deferred writes, oldest first, in batches; True when none is left."""
        while True:
            with self._lock:
                batch = self.deferred.head(FLUSH_BATCH)
                if not batch:
                    return True
                rejected = 0
                try:
                    # Always fsynced: one sync per batch, and a replayed call start is as safe as any.
                    with self.transaction(durable=True,
                                          busy_ms=self.write_busy_ms if busy_ms is None else busy_ms):
                        for write in batch:
                            rejected += not self._replay(write)
                except self.db_error as exc:
                    fault = storage_fault(exc)
                    if fault is None:
                        raise
                    self.deferred.failed(fault, exc, batch[0].kind)
                    return False
                self.deferred.committed(len(batch), rejected)

    def _replay(self, write: PendingWrite) -> bool:
        """Run one deferred write inside the flush transaction; False if refused for good."""
        self.execute("SAVEPOINT deferred_write")
        try:
            changed = [self.execute(sql, params).rowcount for sql, params in write.statements]
            if write.expect_row and not all(changed):
                raise StoreError("it changed no row")
        except (self.integrity_error, StoreError) as exc:
            self.execute("ROLLBACK TO deferred_write")
            self.execute("RELEASE deferred_write")
            log.error("storage: deferred %s write queued at %.3f refused on replay: %s",
                      write.kind, write.queued_at, exc)
            return False
        self.execute("RELEASE deferred_write")
        return True

    def storage_status(self) -> StorageStatus:
        """Deferred writes, faults and losses, for ``/v1/status`` and the health page."""
        status = self.deferred.status()
        try:  # the database server's disk is not ours to see
            status.free_bytes = shutil.disk_usage(self.path.parent).free if self.path else None
        except OSError:
            status.free_bytes = None
        return status
