"""Durability of the engine's records with real phones: a full data directory, and the web's write lock.

The data directory is a real small tmpfs filled to ENOSPC by a filler file during a queue call
between two pjsua2 phones; the lock is a BEGIN IMMEDIATE held by another sqlite3 connection, as
the Flask app's long write transactions do. Neither may fail the call or lose a row.
"""
from __future__ import annotations

import sqlite3
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.system.health import check_once
from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.acd import ANA_PHONE, CALLER, phone, queue_config, queue_log, wait_agent
from tests.peers.engine import Engine, default_config
from tests.peers.filesystem import fill, small_tmpfs
from tests.peers.polling import wait_until


def _storage(pbx: Engine) -> dict[str, Any]:
    status, body = pbx.api("GET", "/v1/status")
    assert status == 200
    storage: dict[str, Any] = body["storage"]
    return storage


def _cdrs(db_path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT caller, callee, disposition, answer_at IS NOT NULL, billsec FROM cdr"
                          " ORDER BY id").fetchall()
    finally:
        db.close()


def _recordings(db_path: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(db_path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM recordings ORDER BY id")]
    finally:
        db.close()


@pytest.fixture
def small_data_dir(tmp_path: Path) -> Iterator[Path]:
    """The engine's data directory on a 24 MiB tmpfs, unmounted after the test."""
    with small_tmpfs(tmp_path / "engine" / "data", "24m") as data:
        yield data


def test_a_queue_call_goes_on_while_the_disk_is_full_and_every_row_lands_when_space_returns(
        small_data_dir: Path, tmp_path: Path) -> None:
    to_agent = write_tone_wav(tmp_path / "caller.wav", 440, 30)
    agent_heard = tmp_path / "agent_heard.wav"
    eng = Engine(tmp_path / "engine", config=queue_config(recording="stereo"))
    assert eng.data_dir == small_data_dir
    with eng.running() as pbx, phone(pbx, "caller", CALLER) as caller, phone(pbx, "ana", ANA_PHONE) as ana:
        assert pbx.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})[0] == 200
        assert _storage(pbx)["ok"]
        call = caller.call(pbx.uri("6000"), play_wav=to_agent)
        caller.wait_state(call, "CONFIRMED")  # recorded from here (queue recording: stereo)
        offered = ana.wait_incoming(timeout=5.0)
        ana.answer(offered, record_wav=agent_heard)
        ana.wait_state(offered, "CONFIRMED")
        wav = wait_until(lambda: next((small_data_dir / "recordings").rglob("*.wav"), None), what="the recording")
        wait_until(lambda: wav.stat().st_size > 44 + 16000 * 4, timeout=8.0, what="1 s of recording on disk")
        filler = fill(small_data_dir)  # the disk fills during the conversation
        storage = wait_until(lambda: (s := _storage(pbx))["fault"] == "disk full" and s,
                             timeout=5.0, what="/v1/status reporting the full disk")
        assert not storage["ok"] and storage["pending"] >= 1 and "full" in storage["last_error"]
        assert storage["free_bytes"] < 64 * 1024
        report = check_once(pbx.data_dir)  # `plateau health`: loud, but no reason to boot the old slot
        assert report.healthy and report.storage.startswith("disk full"), report
        time.sleep(2.0)  # the conversation, on a full disk
        ana.stop_record(offered)
        caller.hangup(call)
        ana.wait_state(offered, "DISCONNECTED")
        wait_agent(pbx, "2001", "available", timeout=8.0)
        assert _cdrs(pbx.data_dir / "plateau.db")[-1][2] is None  # the close is only in memory yet
        filler.unlink()
        wait_until(lambda: _storage(pbx)["ok"], timeout=10.0, what="the deferred writes flushed")
        storage = _storage(pbx)
        assert storage["pending"] == 0 and storage["flushed"] == storage["deferred"] and not storage["rejected"]
        assert _cdrs(pbx.data_dir / "plateau.db")[-1][:4] == (CALLER, "6000", "ANSWERED", 1)
        events = [e for e, *_ in queue_log(pbx) if not e.startswith("AGENT")]
        assert events == ["ENTER", "OFFER", "CONNECT", "COMPLETE"]
        log = pbx.stderr_path.read_text()  # one line for the whole episode, not one per refused write
        assert log.count("storage disk full:") == 1 and "storage recovered from disk full" in log, log[-3000:]
        [rec] = _recordings(pbx.data_dir / "plateau.db")
    # The recording the disk refused stopped cleanly: a valid WAV of what was written, marked.
    assert "No space left on device" in rec["note"] and rec["ended_at"] is not None, rec
    with wave.open(str(small_data_dir / "recordings" / rec["path"]), "rb") as w:
        size = (small_data_dir / "recordings" / rec["path"]).stat().st_size
        assert w.getnchannels() == 2 and w.getnframes() * 4 == size - 44
        assert abs(w.getnframes() / w.getframerate() - (rec["ended_at"] - rec["started_at"])) < 0.1
    rate, heard = read_wav(agent_heard)
    half = rate // 2
    windows = [tone_ratio(heard[i:i + half], rate, 440) for i in range(len(heard) - 4 * half, len(heard), half)]
    assert sum(r > 0.5 for r in windows) >= 3, windows  # audio flowed on the full disk (a loaded CI may drop one)


def test_a_write_lock_held_by_the_web_process_never_fails_a_call(tmp_path: Path) -> None:
    eng = Engine(tmp_path / "engine", config=default_config())
    with eng.running() as pbx, phone(pbx, "a", "1001") as a, phone(pbx, "b", "1002") as b:
        web = sqlite3.connect(pbx.data_dir / "plateau.db", isolation_level=None)
        try:
            web.execute("BEGIN IMMEDIATE")  # what a long Flask write transaction holds
            web.execute("UPDATE settings SET value = value")
            t0 = time.monotonic()
            ca = a.call(pbx.uri("1002"))
            cb = b.wait_incoming(timeout=5.0)
            b.answer(cb)
            a.wait_state(ca, "CONFIRMED")
            setup = time.monotonic() - t0
            storage = _storage(pbx)
            assert storage["fault"] == "database locked"
            # The SIP loop waited write_busy_ms (50 ms) once for the lock, then queued without waiting.
            assert storage["write_ms"]["cdr_open"]["max_ms"] < 250, storage["write_ms"]
            time.sleep(1.0)
            a.hangup(ca)
            b.wait_state(cb, "DISCONNECTED")
            assert setup < 3.0, f"call set-up took {setup:.1f} s behind the web's lock"
            assert not _cdrs(pbx.data_dir / "plateau.db")
        finally:
            web.execute("COMMIT")
            web.close()
        wait_until(lambda: _storage(pbx)["ok"], timeout=5.0, what="the deferred CDR flushed")
        rows = _cdrs(pbx.data_dir / "plateau.db")
        assert len(rows) == 1 and rows[0][:4] == ("1001", "1002", "ANSWERED", 1) and rows[0][4] >= 0.8
