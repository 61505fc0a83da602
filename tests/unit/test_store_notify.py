"""Configuration notices between engines on one PostgreSQL store (store/notify.py), on a real server.

Each test has two Stores on one database, as two engines have: one writes the configuration,
the other's `ConfigListener` must hear it, after the commit and never before, and keep hearing
after its session is killed by the server.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from appliance.store import acd
from appliance.store.config_yaml import export_config, import_config
from appliance.store.db import Store
from appliance.store.errors import ConfigError
from appliance.store.models import AgentConfig, Extension, InboundRoute
from appliance.store.notify import ConfigListener, config_listener
from tests.peers.polling import wait_until
from tests.peers.postgres import PostgresServer


class Heard:
    """``on_change`` of the listener: counts the reloads it asks for."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.count += 1

    def value(self) -> int:
        with self.lock:
            return self.count


@contextmanager
def listening(url: str) -> Iterator[tuple[ConfigListener, Heard]]:
    heard = Heard()
    with Store(url) as reader:
        listener = config_listener(reader, heard)
        assert listener is not None
        listener.start()
        try:
            assert listener.connected.wait(5.0)
            yield listener, heard
        finally:
            listener.stop()


def test_no_listener_on_sqlite(tmp_path: Path) -> None:
    with Store(tmp_path / "plateau.db") as store:
        assert config_listener(store, lambda: None) is None
        store.set_setting("site.country", "FR")  # config_changed() is a no-op there


def test_a_change_committed_on_one_store_is_heard_on_the_other_after_the_commit(postgres_url: str) -> None:
    with listening(postgres_url) as (listener, heard), Store(postgres_url) as writer:
        with writer.transaction():
            writer.put_extension(Extension("1090", "New desk", "a-long-secret-1"))
            # Inside the writer's transaction: nothing may be heard before the data is readable.
            with pytest.raises(AssertionError):
                wait_until(lambda: heard.value() > 0, timeout=0.5, what="a notice before the commit")
        wait_until(lambda: heard.value() == 1, timeout=2.0, what="the notice after the commit")
        with Store(postgres_url) as other:  # what the engine reads on the notice is there
            assert other.get_extension("1090") is not None
        # The other configuration writers announce too; each commit is one notice.
        writer.set_setting("site.country", "GB")
        wait_until(lambda: heard.value() == 2, timeout=2.0, what="the setting's notice")
        acd.put_agent(writer, AgentConfig("2090", "New agent", "1234"))
        wait_until(lambda: heard.value() == 3, timeout=2.0, what="the agent's notice")
        # Not configuration: a CDR announces nothing.
        writer.cdr_open("call-1", "1001", "", "1002", "internal", 1.0)
        with pytest.raises(AssertionError):
            wait_until(lambda: heard.value() > 3, timeout=0.5, what="a notice for a CDR")
        assert listener.notices == 3


def test_a_refused_change_is_not_announced(postgres_url: str) -> None:
    with Store(postgres_url) as writer:
        writer.put_extension(Extension("1091", "Desk", "a-long-secret-1"))
        writer.put_inbound_route(InboundRoute("0800", "1091"))
    with listening(postgres_url) as (_listener, heard), Store(postgres_url) as writer:
        with pytest.raises(ConfigError):
            writer.delete_extension("1091")  # an inbound route points at it: rolled back
        with pytest.raises(AssertionError):
            wait_until(lambda: heard.value() > 0, timeout=0.5, what="a notice of a rolled-back change")


def test_a_listener_whose_session_is_killed_listens_again_and_reloads_once(postgres_url: str) -> None:
    with listening(postgres_url) as (listener, heard), Store(postgres_url) as writer:
        first = writer.query("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
        assert len(first) == 1
        writer.query("SELECT pg_terminate_backend(?)", (first[0][0],))
        # Back on a new session: one reload for what may have been missed meanwhile...
        wait_until(lambda: listener.sessions == 2 and listener.connected.is_set(), timeout=5.0,
                   what="the listener's second session")
        wait_until(lambda: heard.value() == 1, timeout=2.0, what="the reload after reconnecting")
        again = writer.query("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
        assert len(again) == 1 and again[0][0] != first[0][0]
        # ...and the next change is heard.
        writer.put_extension(Extension("1092", "After", "a-long-secret-1"))
        wait_until(lambda: heard.value() == 2, timeout=2.0, what="the change after the reconnect")
        assert listener.health()[0].alive and listener.health()[0].deaths == 1


def test_a_listener_outlives_a_server_restart_alive_and_fresh_and_reloads_once_back() -> None:
    server = PostgresServer()  # its own server: this test stops it
    server.start()
    try:
        url = server.new_database()
        with listening(url) as (listener, heard):
            server.halt()
            wait_until(lambda: not listener.connected.is_set(), what="the lost session")
            # Away for longer than the supervisor's staleness bound would allow a silent thread:
            # the thread is alive and beating, so the engine is not restarted for it.
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                part = listener.health()[0]
                assert part.alive and time.monotonic() - part.last_progress < 1.5
                time.sleep(0.2)
            server.start()
            wait_until(lambda: listener.connected.is_set() and heard.value() == 1, timeout=15.0,
                       what="listening again, with one reload")
            with Store(url) as writer:
                writer.set_setting("site.country", "FR")
            wait_until(lambda: heard.value() == 2, timeout=2.0, what="the next change")
    finally:
        server.stop()


def test_a_config_import_is_one_notice(postgres_url: str) -> None:
    """`plateau config import` replaces the whole configuration in one transaction: the other
    engines hear it once, when it commits (PostgreSQL folds the transaction's notices)."""
    with Store(postgres_url) as source:
        for n in range(1001, 1021):
            source.put_extension(Extension(str(n), f"Desk {n}", "a-long-secret-1"))
        text = export_config(source)
    with listening(postgres_url) as (listener, heard), Store(postgres_url) as writer:
        import_config(writer, text)
        wait_until(lambda: heard.value() == 1, timeout=2.0, what="the import's notice")
        with pytest.raises(AssertionError):
            wait_until(lambda: heard.value() > 1, timeout=0.5, what="a second notice")
        assert listener.notices == 1
