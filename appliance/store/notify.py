"""Configuration change notices between the engines of one site: PostgreSQL LISTEN/NOTIFY.

A store write that changes the configuration (config_tables.py, acd.py's agents and queues,
dialer.py's campaigns, and so config_yaml.py's import) calls `Store.config_changed` inside its
own transaction, which runs the dialect's ``NOTIFY plateau_config``. PostgreSQL delivers it at
commit and never before ("if a NOTIFY is executed inside a transaction, the notify events are
not delivered until and unless the transaction is committed", and several identical notices of
one transaction are folded into one: https://www.postgresql.org/docs/15/sql-notify.html), so an
engine that hears a notice always reads the data it announces.

`ConfigListener` is the other end: a thread with a session of its own (a LISTEN session only
hears while it waits, and the Store's session runs the engine's queries), calling ``on_change``
once per burst of notices. When that session is lost (a server restart, a failover, the
backend terminated) the thread opens another with a growing delay, and calls ``on_change``
once when it is back: a change may have been committed while nobody listened.

On SQLite there is one engine per database and so nothing to tell: `config_listener` returns None.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from appliance.store import postgres
from appliance.store.db import Store
from appliance.system.liveness import Heartbeat, PartHealth

log = logging.getLogger("plateau.store")

CHANNEL = "plateau_config"  # the channel of POSTGRESQL.config_notify (store/dialect.py)
WAIT_S = 0.5  # one wait for notices: also how often the thread shows it is alive
BURST_S = 0.05  # after a notice, how long more notices of the same burst are gathered
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0  # delay before opening the session again, doubling


class ListenSession(Protocol):
    """A database session that hears the notices of one channel (store/postgres.py `PgListener`)."""

    def wait(self, timeout: float, burst: float) -> int:
        """Notices heard within ``timeout`` s (and ``burst`` s after the first); raises when lost."""
        ...

    def close(self) -> None: ...


class ConfigListener:
    """The thread that turns notices on `CHANNEL` into calls of ``on_change`` (in this thread)."""

    def __init__(self, open_session: Callable[[], ListenSession], on_change: Callable[[], None],
                 where: str = "the database") -> None:
        self.open_session = open_session
        self.on_change = on_change
        self.where = where
        self.connected = threading.Event()  # set while a session listens (tests wait on it)
        self.sessions = 0  # sessions opened since start
        self.notices = 0  # bursts of notices heard
        self._stopping = threading.Event()
        self._beat = Heartbeat()
        self._thread: threading.Thread | None = None
        self._session: ListenSession | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-config-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=WAIT_S * 4 + 1.0)

    def health(self) -> list[PartHealth]:
        """The thread's liveness for the engine's supervisor; its beat is its last wait."""
        thread = self._thread
        if thread is None:
            return []
        return [self._beat.health("store-config-listener", thread.is_alive())]

    def _run(self) -> None:
        delay = RETRY_MIN_S
        while not self._stopping.is_set():
            self._beat.beat()
            try:
                session = self.open_session()  # at most PgListener's connect timeout (5 s)
            except Exception as exc:  # any failure to connect: logged, retried with a longer delay
                self._beat.died(exc)
                log.warning("configuration notices: cannot listen on %s (%s); again in %.1f s",
                            self.where, exc, delay)
                self._pause(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            self.sessions += 1
            if self.sessions > 1:
                log.warning("configuration notices: listening again on %s; reloading once", self.where)
                self._changed()  # what was committed while the session was down
            self.connected.set()
            try:
                self._listen(session)
            except Exception as exc:  # the session was lost: open another
                self._beat.died(exc)
                log.warning("configuration notices: session on %s lost (%s)", self.where, exc)
            finally:
                self.connected.clear()
                try:
                    session.close()
                except Exception as exc:  # closing a broken session may fail too; nothing to keep
                    log.debug("configuration notices: close failed: %s", exc)
            self._beat.beat()

    def _pause(self, seconds: float) -> None:
        """Wait before the next try, beating: a database that is away is no reason for the
        supervisor to withhold the watchdog (calls go on; the engine's writes are deferred)."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            self._beat.beat()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stopping.wait(min(WAIT_S, left))

    def _listen(self, session: ListenSession) -> None:
        while not self._stopping.is_set():
            heard = session.wait(WAIT_S, BURST_S)
            self._beat.beat()
            if heard:
                self.notices += 1
                self._changed()

    def _changed(self) -> None:
        try:
            self.on_change()
        except Exception:  # the listener must outlive a failed reload; the next notice retries
            log.exception("configuration notices: reload failed")


def config_listener(store: Store, on_change: Callable[[], None]) -> ConfigListener | None:
    """A listener (not started) for the configuration changes of ``store``'s site; None on SQLite."""
    if store.url is None or not store.dialect.config_notify:
        return None
    url = store.url
    return ConfigListener(lambda: postgres.PgListener(url, CHANNEL), on_change, store.location)
