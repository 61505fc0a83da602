"""How the Store writes what the engine must not lose: now, or deferred while the database refuses.

`record_write` and `insert_row` commit at once when they can; on a storage fault (disk full, I/O
error, the web app's write lock held past ``write_busy_ms``), or while earlier writes are still
deferred, the write joins the ordered queue of appliance/store/deferred.py, and a flusher thread
replays it when the database accepts writes again. A mixin of `Store` (store/db.py), kept apart so
each module stays about one concept.
"""
from __future__ import annotations

import collections
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
# A shared store (PostgreSQL, several engines) keeps this many ids per table, reserved from the
# table's sequence while the server answers, for the inserts it defers while the server is away:
# topped up when half are used (one round trip per RESERVE_IDS // 2 inserts).
RESERVE_IDS = 1000
# Past the reserve (a long outage), a deferred insert's id is FALLBACK_BASE + key * FALLBACK_SPAN
# + n, where key is the first id this store ever reserved for the table: that id was handed to
# this store alone, so no other engine has the same key, and the sequence itself never climbs to
# 2**52. Below 2**53, so a browser's JavaScript still reads it exactly.
FALLBACK_BASE, FALLBACK_SPAN, FALLBACK_KEYS = 2 ** 52, 2 ** 20, 2 ** 32
# The tables the engine inserts into with `insert_row` (cdr.py, recordings.py, interactions.py).
ENGINE_INSERT_TABLES = ("cdr", "recordings", "interactions")


class DeferredWriting:
    """The Store's deferrable writes; the Store provides the connection, its lock and transactions.

    Also the base of the Store's table mixins (config_tables, registrations, cdr, blocks): the
    stubs below say what they use of the Store, which overrides them.
    """

    path: pathlib.Path | None
    node: str  # this engine's name on the site, stamped on the rows it owns (CDR, queue log)
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

    def config_changed(self) -> None:
        raise NotImplementedError

    def _init_deferred(self, write_busy_ms: int, pending_limit: int, reserve_ids: int = RESERVE_IDS) -> None:
        self.write_busy_ms = int(write_busy_ms)
        self.deferred = DeferredWrites(pending_limit)
        self._allocated: dict[str, int] = {}  # table -> highest id handed out to a deferred insert
        self.reserve_ids = int(reserve_ids)
        self._reserved: dict[str, collections.deque[int]] = {}  # table -> ids from its sequence (shared)
        self._fallback: dict[str, list[int]] = {}  # table -> [key, last n] past the reserve (shared)
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

        A deferred insert gets its id here, so later writes can name the row before it reaches the
        table. One engine (SQLite): above every id the table has used (AUTOINCREMENT tables never
        reuse one) and every id handed out before; only the engine inserts into these tables.
        Several engines (PostgreSQL): one this store reserved from the table's sequence while the
        server answered, which no other engine can hold (then FALLBACK_BASE, see above).
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
                        self._allocated[table] = max(self._allocated.get(table, 0), int(row_id))
                        if self.dialect.reserve_ids_sql:
                            self._top_up_reserve(table)
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
        self._defer(PendingWrite(kind, statements((sql, (row_id, *values))), durable, time.time()))
        return row_id

    def reserve_deferred_ids(self) -> None:
        """The engine's store, at start: reserve the ids of its deferrable inserts now, so a
        server lost before the first call still leaves every call start its id. Not done by every
        Store open (the web app opens one per request); a no-op on SQLite."""
        if self.dialect.reserve_ids_sql:
            with self._lock:
                for table in ENGINE_INSERT_TABLES:
                    self._top_up_reserve(table)

    def _top_up_reserve(self, table: str) -> None:
        """Keep `reserve_ids` ids of `table`'s sequence for deferred inserts (the server answers now)."""
        reserve = self._reserved.setdefault(table, collections.deque())
        if len(reserve) > self.reserve_ids // 2:
            return
        try:
            rows = self.execute(self.dialect.reserve_ids_sql.format(table=table),
                                (self.reserve_ids - len(reserve),)).fetchall()
        except self.db_error as exc:
            if storage_fault(exc) is None:
                raise
            return  # the server went away after the insert: the next insert tries again
        reserve.extend(int(r[0]) for r in rows)
        if reserve:
            self._fallback.setdefault(table, [reserve[0], 0])

    def _allocate_id(self, table: str) -> int:
        if self.dialect.reserve_ids_sql:
            return self._allocate_shared_id(table)
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

    def _allocate_shared_id(self, table: str) -> int:
        """An id no other engine on the database holds: reserved, else node-qualified (see above)."""
        with self._lock:
            reserve = self._reserved.get(table)
            if reserve:
                return reserve.popleft()
            fallback = self._fallback.get(table)
            if fallback is None:  # nothing reserved yet: the server was away since the first insert
                raise StoreError(f"cannot allocate a {table} id: no id of its sequence is reserved")
            key, n = fallback
            if key >= FALLBACK_KEYS or n + 1 >= FALLBACK_SPAN:
                raise StoreError(f"cannot allocate a {table} id: the ids kept for an outage are used up")
            fallback[1] = n + 1
            return FALLBACK_BASE + key * FALLBACK_SPAN + n + 1

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
