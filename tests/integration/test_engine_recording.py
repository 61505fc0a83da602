"""Call recording with real pjsua2 phones: a queue call recorded in stereo from the IVR on,
silent while the caller keys a card number in a sensitive node (PCI), both parties' tones after;
a file left by kill -9 is repaired at the next start."""
from __future__ import annotations

import sqlite3
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio import tone_ratio, write_tone_wav
from tests.peers.acd import ANA_PHONE, CALLER, engine_with_flows, phone, queue_config
from tests.peers.engine import Engine
from tests.peers.pjsua import wait_rx_audio
from tests.peers.polling import wait_until

PAY_FLOW = """
name: pay
version: 1
record: stereo
start: welcome
nodes:
  welcome:
    type: play
    prompt: "say: Welcome to the payment line."
    next: card
  card:
    type: collect
    sensitive: true
    prompt: "say: Please key your card number, then hash."
    variable: card
    min_digits: 4
    max_digits: 16
    timeout: 10
    next: agent
  agent:
    type: route
    target: queue:support
"""


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Engine]:
    cfg = queue_config(recording="stereo", escalations=[])
    cfg["inbound_routes"] = [{"did": "7100", "destination": "ivr:pay"}]
    with engine_with_flows(tmp_path / "engine", cfg, {"pay": PAY_FLOW}) as eng:
        yield eng


def recordings(pbx: Engine) -> list[dict[str, Any]]:
    db = sqlite3.connect(pbx.data_dir / "plateau.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM recordings ORDER BY id")]
    finally:
        db.close()


def read_stereo(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)


def flushed_seconds(path: Path) -> float:
    """Seconds of 16-bit stereo audio written so far, by file size (the header's sizes are
    provisional until the recording ends)."""
    if not path.exists() or path.stat().st_size < 44:
        return 0.0
    with open(path, "rb") as fh:
        rate = int.from_bytes(fh.read(28)[24:28], "little")
    return (path.stat().st_size - 44) / (4 * rate) if rate else 0.0


def longest_zero_run(x: np.ndarray) -> int:
    nonzero = np.flatnonzero(x != 0)
    edges = np.concatenate(([-1], nonzero, [len(x)]))
    return int(np.max(np.diff(edges)) - 1)


def test_queue_call_recorded_in_stereo_with_silence_while_the_card_is_keyed(pbx: Engine, tmp_path: Path) -> None:
    to_agent = write_tone_wav(tmp_path / "caller.wav", 440, 60)
    to_caller = write_tone_wav(tmp_path / "agent.wav", 1000, 60)
    with phone(pbx, "caller", CALLER) as caller, phone(pbx, "ana", ANA_PHONE) as ana:
        pbx.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})
        call = caller.call(pbx.uri("7100"), play_wav=to_agent)
        caller.wait_state(call, "CONFIRMED")
        caller.wait_rx_audio(call, 5.0, timeout=20.0)  # the welcome (recorded), then the card prompt
        caller.dial_dtmf(call, "4111111111111111#")
        offered = ana.wait_incoming(timeout=10.0)
        ana.answer(offered, play_wav=to_caller)
        ana.wait_state(offered, "CONFIRMED")
        wait_rx_audio([(caller, call), (ana, offered)], 3.0)
        caller.hangup(call)
        ana.wait_state(offered, "DISCONNECTED")
    [rec] = wait_until(lambda: [r for r in recordings(pbx) if r["ended_at"] is not None], what="the closed recording")
    assert (rec["mode"], rec["reason"], rec["queue"], rec["agent"]) == ("stereo", "ivr", "support", "2001")
    assert rec["ended_at"] is not None and rec["paused_s"] > 1.0
    rate, data = read_stereo(pbx.data_dir / "recordings" / rec["path"])
    caller_ch = data[:, 0]
    assert tone_ratio(caller_ch[rate // 2: 2 * rate], rate, 440) > 0.5  # the welcome: the caller is recorded
    assert longest_zero_run(caller_ch) > 1.0 * rate  # the card prompt and keys: digital silence
    tail = data[-2 * rate: -rate // 2]
    assert tone_ratio(tail[:, 0], rate, 440) > 0.5 and tone_ratio(tail[:, 0], rate, 1000) < 0.05
    assert tone_ratio(tail[:, 1], rate, 1000) > 0.5 and tone_ratio(tail[:, 1], rate, 440) < 0.05
    db = sqlite3.connect(pbx.data_dir / "plateau.db")
    assert db.execute("SELECT COUNT(*) FROM cdr WHERE id = ?", (rec["cdr_id"],)).fetchone()[0] == 1
    db.close()


def test_recording_cut_by_kill_9_is_repaired_at_start_up(pbx: Engine, tmp_path: Path) -> None:
    to_agent = write_tone_wav(tmp_path / "caller.wav", 440, 60)
    with phone(pbx, "caller", CALLER) as caller, phone(pbx, "ana", ANA_PHONE) as ana:
        pbx.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})
        call = caller.call(pbx.uri("6000"), play_wav=to_agent)
        offered = ana.wait_incoming(timeout=10.0)
        ana.answer(offered)
        ana.wait_state(offered, "CONFIRMED")
        [rec] = wait_until(lambda: recordings(pbx), what="the recording row")
        # The writer flushes every 2 s: wait until more than 2 s are on disk, then cut it.
        wait_until(lambda: flushed_seconds(pbx.data_dir / "recordings" / rec["path"]) > 2.5, timeout=10.0,
                   what="2.5 s of the recording on disk")
        pbx.kill9()
        [rec] = recordings(pbx)
        assert rec["ended_at"] is None
        path = pbx.data_dir / "recordings" / rec["path"]
        with open(path, "rb") as fh:
            assert int.from_bytes(fh.read(8)[4:], "little") > 100_000_000  # the header still claims 2 GiB
        pbx.restart()
        caller.hangup(call)
        ana.hangup(offered)
    [rec] = recordings(pbx)
    assert rec["ended_at"] is not None and rec["note"] == "repaired"
    rate, data = read_stereo(path)  # the wave module reads it: sizes match the file
    assert len(data) > 2 * rate and tone_ratio(data[rate:2 * rate, 0], rate, 440) > 0.5
