"""The store on a PostgreSQL server that goes away: call writes wait in order, none is lost."""
from __future__ import annotations

import socket
import time

from appliance.store import queue_log
from appliance.store.db import Store
from appliance.store.deferred import UNAVAILABLE
from appliance.store.queue_log import QueueEvent
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
            assert second == first + 1  # the id goes on from the last one this store inserted
            server.start()
            # The flusher reconnects and replays them.
            wait_until(lambda: store.storage_status().pending == 0, timeout=15.0, what="the deferred writes flushed")
            rows = {c.call_id: c for c in store.cdrs()}
            assert rows["c1"].disposition == "NO ANSWER" and rows["c2"].id == second
            assert rows["c2"].disposition is None
            assert [e.call_id for e in queue_log.events(store, T0, T0 + 10)] == ["c2"]
            # A write after the replay gets an id above the replayed one (the sequence followed it).
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
