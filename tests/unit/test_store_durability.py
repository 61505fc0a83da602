"""The store on a real full filesystem (a small tmpfs) and under another connection's write lock.

No mock: the data directory is a tmpfs mounted with size=, filled by a filler file until the kernel
answers ENOSPC, so SQLite itself reports SQLITE_FULL; the lock is a real BEGIN IMMEDIATE held by a
second sqlite3 connection, as the web app's Flask process does.
"""
from __future__ import annotations

import errno
import logging
import sqlite3
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.media.wavfile import WavRecorder
from appliance.store import queue_log
from appliance.store.db import Store
from appliance.store.deferred import DISK_FULL, LOCKED, FaultLog
from appliance.store.models import Registration
from tests.peers.filesystem import fill, small_tmpfs
from tests.peers.polling import wait_until


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted at the end whatever happens."""
    with small_tmpfs(tmp_path / "small", "4m") as mount:
        yield mount


def _reg(n: int, now: float) -> Registration:
    return Registration(aor=f"sip:{n}@pbx", contact=f"sip:{n}@127.0.0.1:5070", source_host="127.0.0.1",
                        source_port=5070, transport="udp", expires_at=now + 600, user_agent="t",
                        call_id=f"reg-{n}", cseq=1)


def test_a_full_disk_defers_every_call_write_in_order_and_loses_none_when_space_returns(small_fs: Path) -> None:
    store = Store(small_fs / "plateau.db")
    try:
        before = store.cdr_open("call-0", "1001", "A", "1002", "internal", 100.0)
        filler = fill(small_fs)
        t0 = time.monotonic()
        ids = []
        for i in range(1, 6):  # none of these may raise: the calls go on
            cdr = store.cdr_open(f"call-{i}", "1001", "A", "1002", "internal", 100.0 + i)
            store.cdr_answer(cdr, 101.0 + i)
            queue_log.record(store, queue_log.QueueEvent(at=100.0 + i, event="ENTER", call_id=f"call-{i}",
                                                         queue="support"))
            store.save_registration(_reg(i, time.time()))
            store.cdr_close(cdr, 110.0 + i, "ANSWERED", "caller hung up")
            ids.append(cdr)
        store.cdr_close(before, 120.0, "NO ANSWER", "timeout")
        elapsed = time.monotonic() - t0
        status = store.storage_status()
        assert not status.ok and status.fault == DISK_FULL and status.pending >= 25, status
        assert "full" in status.last_error
        assert len(set(ids)) == 5 and before not in ids
        assert elapsed < 1.0, f"{elapsed:.3f} s for 26 deferred writes: the loop must not wait on the disk"
        assert store.get_cdr(ids[0]) is None  # still only in memory
        filler.unlink()
        wait_until(lambda: store.storage_status().pending == 0, timeout=10.0, what="the deferred writes flushed")
        status = store.storage_status()
        assert status.ok and status.fault is None and status.flushed == status.deferred and not status.rejected
        rows = {c.id: c for c in store.cdrs(limit=10)}
        assert rows[before].disposition == "NO ANSWER" and rows[before].duration == 20.0
        for i, cdr in enumerate(ids, start=1):
            row = rows[cdr]
            assert (row.call_id, row.disposition, row.answer, row.billsec) == (
                f"call-{i}", "ANSWERED", 101.0 + i, 9.0)
        entered = queue_log.events(store, 0, 1000)
        assert [e.call_id for e in entered] == [f"call-{i}" for i in range(1, 6)]
        assert len(store.registrations()) == 5
        after = store.cdr_open("call-6", "1001", "A", "1002", "internal", 200.0)  # writes directly again
        assert after > max(ids) and store.get_cdr(after) is not None
    finally:
        store.close()


def test_a_write_lock_held_by_the_web_process_defers_the_cdr_instead_of_stalling_the_call(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "plateau.db")
    web = sqlite3.connect(tmp_path / "plateau.db", isolation_level=None)
    try:
        web.execute("BEGIN IMMEDIATE")
        web.execute("UPDATE settings SET value = value")
        t0 = time.monotonic()
        cdr = store.cdr_open("call-1", "1001", "A", "1002", "internal", 100.0)
        store.cdr_answer(cdr, 101.0)
        store.cdr_close(cdr, 105.0, "ANSWERED", "caller hung up")
        elapsed = time.monotonic() - t0
        assert elapsed < 0.5, f"the CDR writes waited {elapsed:.2f} s for the web's lock"
        assert store.storage_status().fault == LOCKED
        time.sleep(0.6)  # the flusher retries meanwhile, and must not write through the lock
        assert store.storage_status().pending == 3
        [flusher] = store.parts()  # supervised while it runs, beating at each attempt
        assert flusher.name == "store-flusher" and flusher.alive and time.monotonic() - flusher.last_progress < 1.0
        web.execute("COMMIT")
        wait_until(lambda: store.storage_status().pending == 0, timeout=5.0, what="the CDR flushed")
        wait_until(lambda: store.parts() == [], timeout=2.0, what="the flusher to finish")
        row = store.get_cdr(cdr)
        assert row is not None and (row.disposition, row.billsec, row.duration) == ("ANSWERED", 4.0, 5.0)
        assert store.storage_status().ok
    finally:
        web.close()
        store.close()


def test_the_queue_is_bounded_and_what_it_drops_is_counted(tmp_path: Path) -> None:
    store = Store(tmp_path / "plateau.db", pending_limit=3)
    web = sqlite3.connect(tmp_path / "plateau.db", isolation_level=None)
    try:
        web.execute("BEGIN IMMEDIATE")
        for i in range(5):
            queue_log.record(store, queue_log.QueueEvent(at=float(i), event="ENTER", call_id=f"c{i}"))
        status = store.storage_status()
        assert status.pending == 3 and status.dropped == {"queue_log": 2} and not status.ok
        web.execute("COMMIT")
        wait_until(lambda: store.storage_status().pending == 0, timeout=5.0, what="the queue flushed")
        assert [e.call_id for e in queue_log.events(store, 0, 10)] == ["c0", "c1", "c2"]
        assert not store.storage_status().ok  # a loss stays reported until the engine restarts
    finally:
        web.close()
        store.close()


def test_a_deferred_close_of_a_cdr_that_no_longer_exists_is_rejected_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path / "plateau.db")
    web = sqlite3.connect(tmp_path / "plateau.db", isolation_level=None)
    try:
        web.execute("BEGIN IMMEDIATE")
        store.cdr_close(999, 10.0, "ANSWERED", "x")  # no such call record
        web.execute("COMMIT")
        with caplog.at_level(logging.ERROR, logger="plateau.store"):
            wait_until(lambda: store.storage_status().pending == 0, timeout=5.0, what="the replay")
        assert store.storage_status().rejected == 1
        assert "refused on replay" in caplog.text
    finally:
        web.close()
        store.close()


def test_storage_faults_are_logged_once_per_kind_per_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    faults = FaultLog(interval=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger="plateau.store"):
        logged = [faults.error(DISK_FULL, "write %d", i) for i in range(100)]
        assert faults.error(LOCKED, "other kind")
        now[0] = 61.0
        assert faults.error(DISK_FULL, "again")
    assert logged.count(True) == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and "99 more since the last report" in lines[2]


def test_a_call_start_is_fsynced_off_the_caller_right_after_its_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "plateau.db")
    try:
        store.cdr_open("call-1", "1001", "A", "1002", "internal", 100.0)
        synced = wait_until(lambda: store.storage_status().write_ms.get("wal_sync"), timeout=5.0,
                            what="the WAL syncer's fsync of the call start")
        assert synced["count"] >= 1 and synced["max_ms"] < 1000.0
        assert store.storage_status().write_ms["cdr_open"]["count"] == 1
    finally:
        store.close()


def test_a_call_end_is_committed_at_once_and_fsynced_off_the_caller(tmp_path: Path) -> None:
    store = Store(tmp_path / "plateau.db")
    try:
        cid = store.cdr_open("call-1", "1001", "A", "1002", "internal", 100.0)

        def syncs() -> int:
            return int(store.storage_status().write_ms.get("wal_sync", {}).get("count", 0))

        wait_until(lambda: syncs() >= 1, timeout=5.0, what="the fsync of the call start")
        before = syncs()
        store.cdr_close(cid, 130.0, "NO ANSWER", "timeout")
        # Committed before cdr_close returned: another connection reads it (a kill -9 keeps it).
        other = sqlite3.connect(tmp_path / "plateau.db")
        try:
            assert other.execute("SELECT end_at, disposition FROM cdr WHERE id = ?", (cid,)).fetchone() \
                == (130.0, "NO ANSWER")
        finally:
            other.close()
        # ... and fsynced by the WAL syncer, not inside the caller's commit (issue 14 item 8).
        wait_until(lambda: syncs() > before, timeout=5.0, what="the WAL syncer's fsync of the call end")
    finally:
        store.close()


def test_a_wav_recorder_that_meets_a_full_disk_keeps_a_valid_wav_of_what_was_written(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "1m") as mount:
        rec = WavRecorder(mount / "call.wav", 16000, 2)
        frame = np.full((320, 2), 1000, dtype=np.int16)
        with pytest.raises(OSError) as refused:
            for _ in range(10_000):  # 200 s of stereo: far more than 1 MiB
                rec.write(frame)
        assert refused.value.errno == errno.ENOSPC
        seconds = rec.abort()
        size = (mount / "call.wav").stat().st_size
        with wave.open(str(mount / "call.wav"), "rb") as w:
            assert (w.getnchannels(), w.getframerate()) == (2, 16000)
            assert w.getnframes() * 4 == size - 44 and w.getnframes() > 16000  # > 1 s kept
            assert seconds == w.getnframes() / 16000
