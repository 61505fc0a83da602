"""Deferred writes: what the engine keeps in memory while the database refuses to write.

The engine must not fail a call, nor lose a row, because the data directory is full (ENOSPC:
SQLite's ``SQLITE_FULL``), the disk reports an I/O error, or the web process holds the write
lock longer than the engine may wait (``SQLITE_BUSY``). Such a write becomes a `PendingWrite`:
its SQL and parameters, queued in order. While anything is queued, later writes of the same
family queue behind it (a CDR's close must not reach the table before its open), and a
background flusher replays the queue, in order, once the database accepts writes again.

The queue is bounded (``limit`` writes, a few hundred bytes each): past the bound a new write is
refused and counted in ``dropped`` by kind, never silently. Refusing the newest rather than
evicting the oldest keeps what is queued self-consistent (every queued close has its open).

Failures are logged at most once per fault kind per minute (`FaultLog`), with the count of the
failures not logged, so a full disk under load writes one line a minute, not one per call.
"""

from __future__ import annotations

import logging
import os
import pathlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("plateau.store")

# SQLite primary result codes (https://www.sqlite.org/rescode.html); the extended code's low byte.
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL = 5, 6, 8, 10, 13
DISK_FULL = "disk full"
LOCKED = "database locked"
IO_ERROR = "i/o error"
READ_ONLY = "read-only"
_FAULT_OF_CODE = {
    _SQLITE_FULL: DISK_FULL, _SQLITE_BUSY: LOCKED, _SQLITE_LOCKED: LOCKED,
    _SQLITE_IOERR: IO_ERROR, _SQLITE_READONLY: READ_ONLY,
}
UNAVAILABLE = "database unavailable"
# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/15/errcodes-appendix.html) of the same
# faults; class 08 (connection exception) and a server shutting down are UNAVAILABLE.
_FAULT_OF_SQLSTATE = {
    "53100": DISK_FULL, "55P03": LOCKED, "40P01": LOCKED, "58030": IO_ERROR, "25006": READ_ONLY,
    "57P01": UNAVAILABLE, "57P02": UNAVAILABLE, "57P03": UNAVAILABLE,
}
DEFAULT_LIMIT = 50_000
LOG_INTERVAL_S = 60.0


def storage_fault(exc: BaseException) -> str | None:
    """The storage fault an SQLite error reports (disk full, locked, I/O), or None for a bug.

    Only these are worth deferring: they pass when space returns or the lock is released. A
    constraint or SQL error would fail again on replay, so it is raised to the caller.
    """
    if hasattr(exc, "sqlstate"):  # psycopg's errors (the PostgreSQL store)
        return _postgres_fault(exc)
    if not isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _FAULT_OF_CODE:
        return _FAULT_OF_CODE[code & 0xFF]
    text = str(exc).lower()
    if "disk is full" in text:
        return DISK_FULL
    if "locked" in text:
        return LOCKED
    if "disk i/o error" in text:
        return IO_ERROR
    return None


def _postgres_fault(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str):
        if state.startswith("08"):
            return UNAVAILABLE
        return _FAULT_OF_SQLSTATE.get(state)
    # No SQLSTATE: the client's own error, such as a connection that was closed under it.
    return UNAVAILABLE if type(exc).__name__ == "OperationalError" else None


@dataclass(frozen=True)
class PendingWrite:
    """One write the database refused: run in one transaction when replayed.

    ``expect_row``: the write must change a row (an UPDATE of a CDR that must exist and still be
    open); on replay, a write that changes nothing is counted as rejected and logged.
    """

    kind: str
    statements: tuple[tuple[str, tuple[Any, ...]], ...]
    durable: bool
    queued_at: float
    expect_row: bool = False


@dataclass
class StorageStatus:
    """The ``storage`` block of ``/v1/status`` and the health page."""

    ok: bool
    fault: str | None  # the current fault, None once the queue has been flushed
    since: float | None  # wall clock of the first failure of the current fault
    last_error: str
    pending: int
    limit: int
    deferred: int  # writes queued since start
    flushed: int  # queued writes committed since start
    dropped: dict[str, int] = field(default_factory=dict)  # refused at the bound, by kind
    rejected: int = 0  # replayed writes the database refused for good (logged)
    failures: dict[str, int] = field(default_factory=dict)  # failed attempts, by fault
    # How long the caller (the engine loop) waited for each kind of write: count, mean_ms, max_ms.
    write_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    free_bytes: int | None = None  # room left on the database's filesystem

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "fault": self.fault, "since": self.since, "last_error": self.last_error,
            "pending": self.pending, "limit": self.limit, "deferred": self.deferred,
            "flushed": self.flushed, "dropped": dict(self.dropped), "rejected": self.rejected,
            "failures": dict(self.failures), "write_ms": {k: dict(v) for k, v in self.write_ms.items()},
            "free_bytes": self.free_bytes,
        }


class FaultLog:
    """At most one log line per fault kind per ``interval`` s, with the count not logged."""

    def __init__(self, interval: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def error(self, fault: str, message: str, *args: Any) -> bool:
        """Log ``message`` for ``fault`` unless one was logged within the interval; True if logged."""
        now = self.clock()
        last = self._last.get(fault)
        if last is not None and now - last < self.interval:
            self._quiet[fault] = self._quiet.get(fault, 0) + 1
            return False
        quiet = self._quiet.pop(fault, 0)
        self._last[fault] = now
        suffix = f" ({quiet} more since the last report)" if quiet else ""
        log.error("storage %s: " + message + "%s", fault, *args, suffix)
        return True


class DeferredWrites:
    """The ordered, bounded queue of refused writes, and the counters behind `StorageStatus`.

    Thread-safe: the engine loop appends while the flusher thread replays.
    """

    def __init__(self, limit: int = DEFAULT_LIMIT, faults: FaultLog | None = None) -> None:
        self.limit = limit
        self.faults = faults or FaultLog()
        self._lock = threading.Lock()
        self._queue: deque[PendingWrite] = deque()
        self.fault: str | None = None
        self.since: float | None = None
        self.last_error = ""
        self.deferred = 0
        self.flushed = 0
        self.rejected = 0
        self.dropped: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self._timing: dict[str, list[float]] = {}  # kind -> [count, total s, max s]

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    def failed(self, fault: str, exc: BaseException, kind: str) -> None:
        """A write (or a replay) failed with a storage ``fault``: count and maybe log it."""
        with self._lock:
            self.failures[fault] = self.failures.get(fault, 0) + 1
            if self.fault is None:
                self.since = time.time()
            self.fault = fault
            self.last_error = str(exc)
            pending = len(self._queue)
        self.faults.error(fault, "%s write refused (%s); %d write(s) kept in memory until it accepts "
                          "writes again", kind, exc, pending + 1)

    def timed(self, kind: str, seconds: float) -> None:
        """A write of ``kind`` kept its caller ``seconds`` (committed or deferred)."""
        with self._lock:
            t = self._timing.setdefault(kind, [0, 0.0, 0.0])
            t[0] += 1
            t[1] += seconds
            t[2] = max(t[2], seconds)

    def push(self, write: PendingWrite) -> bool:
        """Queue a write; False (and counted in ``dropped``) when the queue is at its bound."""
        with self._lock:
            if len(self._queue) >= self.limit:
                self.dropped[write.kind] = self.dropped.get(write.kind, 0) + 1
                dropped = True
            else:
                self._queue.append(write)
                self.deferred += 1
                dropped = False
        if dropped:
            self.faults.error("queue full", "%d writes are waiting; a %s write was dropped", self.limit, write.kind)
        return not dropped

    def head(self, count: int) -> list[PendingWrite]:
        """The oldest ``count`` writes (left in the queue until `committed`)."""
        with self._lock:
            return [self._queue[i] for i in range(min(count, len(self._queue)))]

    def committed(self, count: int, rejected: int = 0) -> None:
        """The oldest ``count`` writes are in the database (``rejected`` of them refused for good)."""
        with self._lock:
            for _ in range(count):
                self._queue.popleft()
            self.flushed += count - rejected
            self.rejected += rejected
            empty = not self._queue
            fault, since = self.fault, self.since
            if empty:
                self.fault = None
                self.since = None
        if empty and fault is not None:
            log.warning("storage recovered from %s after %.1f s: %d deferred write(s) flushed",
                        fault, time.time() - (since or time.time()), self.flushed)

    def status(self) -> StorageStatus:
        with self._lock:
            pending = len(self._queue)
            return StorageStatus(
                ok=self.fault is None and pending == 0 and not self.dropped, fault=self.fault,
                since=self.since, last_error=self.last_error, pending=pending, limit=self.limit,
                deferred=self.deferred, flushed=self.flushed, dropped=dict(self.dropped),
                rejected=self.rejected, failures=dict(self.failures),
                write_ms={k: {"count": n, "mean_ms": round(1e3 * total / n, 3), "max_ms": round(1e3 * top, 3)}
                          for k, (n, total, top) in self._timing.items()},
            )


def statements(*pairs: tuple[str, Sequence[Any]]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """Freeze (sql, params) pairs for a `PendingWrite`."""
    return tuple((sql, tuple(params)) for sql, params in pairs)


class WalSyncer:
    """Fsyncs the WAL file shortly after a commit that must survive a power cut (a call start).

    ``synchronous=FULL`` would fsync inside the commit, on the SIP loop: measured with
    bench/pbx_load.py at 100 calls it took the CDR open from 0.6 ms to 2.1 ms mean (9 ms max) on
    a virtio disk, and more on eMMC. With this thread, at 200 calls: the open 0.5 ms in the loop,
    the window 1.8 ms mean, 8.6 ms max. This thread does the same sync of the WAL file
    (https://www.sqlite.org/pragma.html#pragma_synchronous: FULL in WAL mode adds "a sync
    operation of the WAL file ... after each transaction commit") a moment later, off the loop,
    one fsync for every commit made while the previous one ran (group commit). Linux's fsync
    persists every written page of the file, whichever descriptor wrote it. The WAL header was
    synced when SQLite began reusing the file (NORMAL does that), so after this fsync the commit
    is recovered after a power cut. The window is the time from commit to this fsync's return,
    counted as ``wal_sync`` in the storage status' ``write_ms``.
    """

    def __init__(self, wal: pathlib.Path, stats: DeferredWrites) -> None:
        self.wal = wal
        self.stats = stats
        self._cond = threading.Condition()
        self._since: float | None = None  # perf_counter of the oldest commit not yet synced
        self._stopping = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """A commit was just made: have it fsynced soon."""
        with self._cond:
            if self._stopping:
                return
            if self._since is None:
                self._since = time.perf_counter()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="store-wal-sync", daemon=True)
                self._thread.start()
            self._cond.notify()

    def stop(self) -> None:
        """Sync what is pending and stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._since is None and not self._stopping:
                    self._cond.wait()
                since, self._since = self._since, None
                stopping = self._stopping
            if since is not None:
                self._sync(since)
            if stopping:
                return

    def _sync(self, since: float) -> None:
        try:
            fd = os.open(self.wal, os.O_RDONLY)
        except FileNotFoundError:  # the last connection closed: SQLite checkpointed and synced it
            return
        except OSError as exc:
            self.stats.failed(IO_ERROR, exc, "wal sync")
            return
        try:
            os.fsync(fd)
        except OSError as exc:  # EIO: the disk lost the data; report it, the next sync retries
            self.stats.failed(IO_ERROR, exc, "wal sync")
            return
        finally:
            os.close(fd)
        self.stats.timed("wal_sync", time.perf_counter() - since)
