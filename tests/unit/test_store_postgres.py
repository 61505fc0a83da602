"""The store on a PostgreSQL server that goes away: call writes wait in order, none is lost."""
from __future__ import annotations

import socket
import threading
import time

from appliance.store import queue_log
from appliance.store.db import Store
from appliance.store.deferred import UNAVAILABLE
from appliance.store.queue_log import QueueEvent
from appliance.store.writes import FALLBACK_BASE
from tests.peers.polling import wait_until
from tests.peers.postgres import PostgresServer

T0 = 1_800_000_000.0


def test_a_postgresql_restart_defers_the_call_writes_in_order_and_loses_none() -> None:
    server = PostgresServer()  # its own server: this test stops it
    server.start()
    try:
        store = Store(server.new_database())
        try:
            first = store.cdr_open("c1", "1001", "Alice", "1002", "internal", T0)
            server.halt()
            # The server is gone: the call's writes are kept in memory, in order, and the call goes on.
            second = store.cdr_open("c2", "1003", "Carol", "1002", "internal", T0 + 1)
            store.cdr_close(first, T0 + 5, "NO ANSWER", "487 Request Terminated")
            queue_log.record(store, QueueEvent(at=T0 + 6, event="ENTER", call_id="c2", queue="support",
                                               caller="1003", position=1))
            status = store.storage_status()
            assert (status.fault, status.pending) == (UNAVAILABLE, 3)
            assert second == first + 1  # the first id this store reserved, right after its first insert
            server.start()
            # The flusher reconnects and replays them.
            wait_until(lambda: store.storage_status().pending == 0, timeout=15.0, what="the deferred writes flushed")
            rows = {c.call_id: c for c in store.cdrs()}
            assert rows["c1"].disposition == "NO ANSWER" and rows["c2"].id == second
            assert rows["c2"].disposition is None
            assert [e.call_id for e in queue_log.events(store, T0, T0 + 10)] == ["c2"]
            # A write after the replay gets an id above the replayed one (it came from the sequence).
            assert store.cdr_open("c3", "1004", "Dan", "1002", "internal", T0 + 7) > second
            assert store.storage_status().dropped == {}
        finally:
            store.close()
    finally:
        server.stop()


def test_a_reconnect_that_hangs_does_not_hold_the_call_writes() -> None:
    """The server's address answers TCP but never speaks (a box that hangs, a half-open failover
    address): a reconnect waits for libpq's connect timeout, and a call write made meanwhile must
    still return at once, deferred. The reconnect used to run under the store's lock, in the
    flusher, and every SIP-loop write then waited the whole connect timeout behind it."""
    server = PostgresServer()  # its own server: this test stops it
    server.start()
    try:
        store = Store(server.new_database())  # connect timeout 5 s
        try:
            first = store.cdr_open("c1", "1001", "Alice", "1002", "internal", T0)
            server.halt()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
                silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                silent.bind(("127.0.0.1", server.port))
                silent.listen(64)  # the kernel completes the handshake; nobody answers the startup packet
                slowest = 0.0
                deadline = time.monotonic() + 2.0
                i = 0
                while time.monotonic() < deadline:  # a call's writes while the reconnect hangs
                    t0 = time.monotonic()
                    if i == 0:
                        store.cdr_close(first, T0 + 5, "NO ANSWER", None)
                    else:
                        store.cdr_open(f"c{i + 1}", "1003", "", "1002", "internal", T0 + i)
                    slowest = max(slowest, time.monotonic() - t0)
                    i += 1
                    time.sleep(0.05)
                pending = store.storage_status().pending
            assert slowest < 0.25, f"a call write waited {slowest:.2f} s behind the reconnect"
            assert pending == i
            server.start()
            wait_until(lambda: store.storage_status().pending == 0, timeout=20.0, what="the deferred writes flushed")
            rows = {c.call_id: c for c in store.cdrs(limit=1000)}
            assert rows["c1"].disposition == "NO ANSWER" and len(rows) == i
        finally:
            store.close()
    finally:
        server.stop()


def test_two_engines_writing_cdrs_at_once_and_through_a_restart_never_share_an_id() -> None:
    """Two stores on one database, as two engines: ids of deferred inserts come from the database
    (reserved from the sequence), not from each engine's own counter, so the replays never clash."""
    server = PostgresServer()  # its own server: this test stops it
    server.start()
    try:
        url = server.new_database()
        one, two = Store(url), Store(url)
        try:
            opened: dict[str, list[int]] = {"one": [], "two": []}

            def calls(store: Store, node: str, count: int, at: float) -> None:
                for i in range(count):
                    cdr = store.cdr_open(f"{node}-{at}-{i}", "1001", "", "1002", "internal", at + i)
                    opened[node].append(cdr)
                    store.cdr_answer(cdr, at + i + 0.5)
                    store.cdr_close(cdr, at + i + 1, "ANSWERED", None)

            # At once, the server up: each insert takes the sequence's next id.
            threads = [threading.Thread(target=calls, args=(s, n, 50, T0)) for s, n in ((one, "one"), (two, "two"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            server.halt()
            # The server away: both engines defer call starts, each naming the rows by the id it holds.
            calls(one, "one", 5, T0 + 100)
            calls(two, "two", 5, T0 + 100)
            assert one.storage_status().pending == two.storage_status().pending == 15
            server.start()
            for store in (one, two):
                wait_until(lambda s=store: s.storage_status().pending == 0, timeout=15.0,  # type: ignore[misc]
                           what="the deferred writes flushed")
                assert store.storage_status().rejected == 0  # no replay hit another engine's row
            ids = opened["one"] + opened["two"]
            assert len(set(ids)) == len(ids) == 110
            rows = one.cdrs(limit=200)
            assert sorted(c.id for c in rows) == sorted(ids)
            assert all(c.disposition == "ANSWERED" for c in rows)
            # The sequence was never pushed up by a replayed id: the next call gets a small id.
            assert max(ids) < one.cdr_open("after", "1001", "", "1002", "internal", T0 + 200) < FALLBACK_BASE
        finally:
            one.close()
            two.close()
    finally:
        server.stop()


def test_an_outage_longer_than_the_reserve_goes_on_with_node_qualified_ids() -> None:
    server = PostgresServer()
    server.start()
    try:
        url = server.new_database()
        one, two = Store(url, reserve_ids=2), Store(url, reserve_ids=2)
        try:
            first = [s.cdr_open(f"first-{i}", "1001", "", "1002", "internal", T0) for i, s in enumerate((one, two))]
            server.halt()
            deferred = [s.cdr_open(f"{n}-{i}", "1001", "", "1002", "internal", T0 + i)
                        for i in range(4) for n, s in (("one", one), ("two", two))]
            # Two reserved ids each, then ids past FALLBACK_BASE keyed by each store's own reservation.
            assert len(set(deferred)) == 8 and sum(i >= FALLBACK_BASE for i in deferred) == 4
            assert max(deferred) < 2 ** 53
            server.start()
            for store in (one, two):
                wait_until(lambda s=store: s.storage_status().pending == 0, timeout=15.0,  # type: ignore[misc]
                           what="the deferred writes flushed")
                assert store.storage_status().rejected == 0
            assert sorted(c.id for c in one.cdrs(limit=20)) == sorted(first + deferred)
            assert one.cdr_open("after", "1001", "", "1002", "internal", T0 + 9) < FALLBACK_BASE
        finally:
            one.close()
            two.close()
    finally:
        server.stop()


def test_an_engine_store_reserves_its_ids_at_start_so_a_server_lost_before_any_call_loses_nothing() -> None:
    server = PostgresServer()
    server.start()
    try:
        url = server.new_database()
        store = Store(url)
        try:
            store.reserve_deferred_ids()  # what the engine does once its store is open
            server.halt()
            first = store.cdr_open("c1", "1001", "", "1002", "internal", T0)  # no insert before: deferred
            store.cdr_close(first, T0 + 5, "NO ANSWER", "487 Request Terminated")
            assert store.storage_status().pending == 2
            server.start()
            wait_until(lambda: store.storage_status().pending == 0, timeout=15.0, what="the deferred writes flushed")
            assert [(c.id, c.disposition) for c in store.cdrs()] == [(first, "NO ANSWER")]
            assert store.storage_status().rejected == 0
        finally:
            store.close()
    finally:
        server.stop()
