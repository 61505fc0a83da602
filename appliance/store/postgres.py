"""The Store's PostgreSQL connection: psycopg 3, one session per Store, opened from a URL.

`Store` (db.py) opens a ``postgresql://`` URL here and a file path as SQLite; everything it does
after that goes through the same few calls on either connection (``execute``, ``close``,
``in_transaction``), with the SQL converted by the store's `Dialect` (dialect.py, POSTGRESQL).

The session is in autocommit mode and `Store.transaction` writes BEGIN and COMMIT itself, as it
does on SQLite (``isolation_level=None``): a read outside a transaction sees the last commit, and
nested store calls join one transaction. psycopg is imported only when a PostgreSQL URL is
opened, so the embedded SQLite appliance does not pay for it.

What SQLite's store does that has no PostgreSQL counterpart, or another one:
- WAL mode and ``synchronous=NORMAL/FULL``: the server's WAL, with ``synchronous_commit`` off
  for a non-durable commit (``SET LOCAL``, the PostgreSQL meaning of NORMAL: the server may lose
  the last commits if it crashes, never consistency; its WAL writer flushes them within
  ``3 * wal_writer_delay``, https://www.postgresql.org/docs/15/wal-async-commit.html) and on for a
  durable one. That WAL writer is also why the store's WAL-sync thread is not started here.
- ``busy_timeout``: ``lock_timeout`` (``SET LOCAL`` for a deferrable write's short wait).
- ``BEGIN IMMEDIATE``: plain BEGIN; row locks are taken by the statements themselves.
- The file snapshot, restore and integrity check of dbfile.py: SQLite files only (pg_dump's job).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from appliance.store.errors import StoreError

log = logging.getLogger("plateau.store")
REOPEN_INTERVAL_S = 0.25  # between reconnect attempts while the server is away

URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(target: object) -> bool:
    """Is `target` a PostgreSQL URL (as `plateau run --db` takes it) rather than a file path?"""
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def redacted(url: str) -> str:
    """`url` without its password, for error messages and logs."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}"


class PgConnection:
    """A psycopg connection with the surface `Store` uses of sqlite3's."""

    def __init__(self, url: str, *, connect_timeout_s: float, lock_timeout_ms: int) -> None:
        import psycopg  # here, not at the top: see the module docstring

        self.errors = psycopg
        self._url = url
        self._connect_timeout_s = max(2, int(connect_timeout_s))  # libpq's least is 2 s
        self._lock_timeout_ms = int(lock_timeout_ms)
        self._closed = False
        self._reopen_lock = threading.Lock()
        self._reopener: threading.Thread | None = None
        try:
            self._conn = self._open()
        except psycopg.Error as exc:  # unreachable, refused, no such database: say which one
            raise StoreError(f"{redacted(url)}: cannot connect: {exc}".strip()) from exc

    def _open(self) -> Any:
        import psycopg

        return psycopg.connect(
            self._url, autocommit=True, connect_timeout=self._connect_timeout_s,
            # The session's defaults; a transaction overrides them with SET LOCAL.
            options=f"-c lock_timeout={self._lock_timeout_ms} -c synchronous_commit=on",
        )

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run `sql` (in psycopg's ``%s`` style); without params it goes as one simple query,
        which may hold several statements (a BEGIN with its SET LOCALs: one round trip).

        A connection the server dropped (a restart, a failover) is opened again by a thread of
        its own, never here: the caller holds the Store's lock, and the SIP loop's next write
        would wait on that lock for the whole connect timeout (an unreachable host answers no
        SYN). Until the new session is up every statement fails at once with psycopg's
        OperationalError, a storage fault ("database unavailable"): the Store defers its write
        (store/writes.py) and the flusher replays it once the session is back.
        """
        conn = self._conn
        if conn.broken:
            self._reopen_soon()
            raise self.errors.OperationalError("the connection to the server was lost; reconnecting")
        return conn.execute(sql, params)  # type: ignore[arg-type]

    def _reopen_soon(self) -> None:
        with self._reopen_lock:
            if self._reopener is None and not self._closed:
                self._reopener = threading.Thread(target=self._reopen, name="pg-reconnect", daemon=True)
                self._reopener.start()

    def _reopen(self) -> None:
        """Open a new session until one is up (or the Store closes), then hand it over."""
        try:
            while not self._closed:
                try:
                    fresh = self._open()
                except self.errors.Error as exc:
                    log.debug("reconnect to %s failed: %s", redacted(self._url), exc)
                    time.sleep(REOPEN_INTERVAL_S)
                    continue
                if self._closed:
                    fresh.close()
                    return
                old, self._conn = self._conn, fresh  # one reference swap: a statement sees one or the other
                old.close()
                return
        finally:
            with self._reopen_lock:
                self._reopener = None

    def wait_open(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a dropped session to be opened again (at close, before the
        last flush); True if the session is up."""
        if self._conn.broken:
            self._reopen_soon()
        deadline = time.monotonic() + timeout_s
        while self._conn.broken and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self._conn.broken

    @property
    def in_transaction(self) -> bool:
        from psycopg import pq

        if self._conn.broken:  # lost with the server: nothing left to roll back
            return False
        return self._conn.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        self._closed = True
        self._conn.close()


class PgListener:
    """A session of its own that LISTENs on one channel (store/notify.py `ConfigListener`).

    TCP keepalives make a peer that vanished without closing (a dead box, a cut link) a lost
    session within about 10 s, instead of a listener waiting for ever on a socket nobody writes.
    """

    def __init__(self, url: str, channel: str, *, connect_timeout_s: int = 5) -> None:
        import psycopg

        if not channel.isidentifier():  # LISTEN takes an identifier, not a parameter
            raise StoreError(f"{channel!r} is not a channel name")
        self._conn = psycopg.connect(url, autocommit=True, connect_timeout=max(2, connect_timeout_s),
                                     keepalives=1, keepalives_idle=5, keepalives_interval=2,
                                     keepalives_count=2)
        try:
            self._conn.execute(f"LISTEN {channel}")
        except BaseException:
            self._conn.close()
            raise

    @property
    def backend_pid(self) -> int:
        """The server process of this session (what pg_terminate_backend takes)."""
        return int(self._conn.info.backend_pid)

    def wait(self, timeout: float, burst: float) -> int:
        """Notices heard within `timeout` s, and those arriving within `burst` s after the first."""
        heard = sum(1 for _ in self._conn.notifies(timeout=timeout, stop_after=1))
        if heard:
            heard += sum(1 for _ in self._conn.notifies(timeout=burst))
        return heard

    def close(self) -> None:
        self._conn.close()
