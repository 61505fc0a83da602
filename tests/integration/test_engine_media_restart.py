"""Calls survive a media-process crash: two pjsua2 phones in a recorded queue call, kill -9 of
`appliance.media.server`, and the tones are heard again on both sides; the death is logged and
counted, a new call works, and the recording goes on in a second file with the gap recorded."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.acd import ANA_PHONE, CALLER, phone, queue_config
from tests.peers.engine import Engine
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until

CALLER_HZ, AGENT_HZ = 440, 1000
HEARD = 0.5  # a single tone: ~0.9 of the power when it flows, ~0 when the call is silent
LISTEN_S = 1.5


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Engine]:
    cfg = queue_config(recording="stereo", escalations=[], wrapup_seconds=0)
    eng = Engine(tmp_path / "engine", config=cfg)
    with eng.running():
        yield eng


def windowed_ratio(audio: np.ndarray, rate: int, hz: int, window_s: float = 0.1) -> float:
    """Median tone ratio over 100 ms windows (a dropped or repeated frame breaks a long Goertzel)."""
    n = int(rate * window_s)
    return float(np.median([tone_ratio(audio[i:i + n], rate, hz) for i in range(0, audio.size - n + 1, n)]))


def hears(p: PjPhone, call: int, path: Path, hz: int) -> float:
    p.record(call, path)
    time.sleep(LISTEN_S)
    p.stop_record(call)
    rate, audio = read_wav(path)
    assert audio.size > rate, f"{path.name}: recording too short"
    return windowed_ratio(audio, rate, hz)


def recordings(pbx: Engine) -> list[dict[str, Any]]:
    db = sqlite3.connect(pbx.data_dir / "plateau.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM recordings ORDER BY id")]
    finally:
        db.close()


def supervision(pbx: Engine) -> dict[str, Any]:
    status, body = pbx.api("GET", "/v1/status")
    assert status == 200, body
    return dict(body)


def test_a_call_survives_kill_9_of_the_media_process(pbx: Engine, tmp_path: Path) -> None:
    to_agent = write_tone_wav(tmp_path / "caller.wav", CALLER_HZ, 60)
    to_caller = write_tone_wav(tmp_path / "agent.wav", AGENT_HZ, 60)
    with phone(pbx, "caller", CALLER) as caller, phone(pbx, "ana", ANA_PHONE) as ana:
        assert pbx.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})[0] == 200
        call = caller.call(pbx.uri("6000"), play_wav=to_agent)
        offered = ana.wait_incoming(timeout=10.0)
        ana.answer(offered, play_wav=to_caller)
        ana.wait_state(offered, "CONFIRMED")
        caller.wait_state(call, "CONFIRMED")
        assert hears(ana, offered, tmp_path / "before-ana.wav", CALLER_HZ) > HEARD
        assert hears(caller, call, tmp_path / "before-caller.wav", AGENT_HZ) > HEARD

        old = pbx.media_pid()
        assert old is not None
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        new = wait_until(lambda: (pid := pbx.media_pid()) not in (None, old) and pid, timeout=5.0,
                         what="a new media process")
        st = wait_until(lambda: (s := supervision(pbx))["media"].get("restarts") and s, timeout=5.0,
                        what="the media restart counted in /v1/status")
        up_s = time.monotonic() - killed_at
        last = st["media"]["last_restart"]
        assert "SIGKILL" in last["cause"] and last["legs"] == 2 and last["lost_legs"] == []
        assert last["down_s"] < 3.0, last  # measured ~0.4 s on an idle 2-core box; loaded CI is slower
        media = next(p for p in st["supervision"]["parts"] if p["name"] == "media")
        assert media["deaths"] == 1 and media["restarts"] == 1 and media["alive"], media
        print(f"media process {old} -> {new}: down {last['down_s']:.3f} s, status saw it after {up_s:.2f} s")

        # The tones flow again both ways, on the same call (no re-INVITE: the same ports).
        assert hears(ana, offered, tmp_path / "after-ana.wav", CALLER_HZ) > HEARD
        assert hears(caller, call, tmp_path / "after-caller.wav", AGENT_HZ) > HEARD
        caller.hangup(call)
        ana.wait_state(offered, "DISCONNECTED")

        # A new call after the crash works (no 503 for ever).
        call2 = caller.call(pbx.uri(ANA_PHONE), play_wav=to_agent)
        offered2 = ana.wait_incoming(timeout=10.0)
        ana.answer(offered2, play_wav=to_caller)
        caller.wait_state(call2, "CONFIRMED")
        assert hears(ana, offered2, tmp_path / "new-ana.wav", CALLER_HZ) > HEARD
        caller.hangup(call2)
        ana.wait_state(offered2, "DISCONNECTED")

    log = pbx.stderr_path.read_text()
    assert log.count("died (killed by SIGKILL)") == 1, log[-3000:]
    rows = wait_until(lambda: (r := recordings(pbx)) and all(x["ended_at"] for x in r[:2]) and r,
                      timeout=5.0, what="both recording parts closed")
    first, second = rows[0], rows[1]
    assert first["call_id"] == second["call_id"] and first["cdr_id"] == second["cdr_id"]
    assert "continued in part 2" in first["note"]
    assert second["path"].endswith(".part2.wav") and "gap" in second["note"]
    rate, data = read_wav_stereo(pbx.data_dir / "recordings" / second["path"])
    assert len(data) > rate
    assert windowed_ratio(data[:, 0].copy(), rate, CALLER_HZ) > HEARD
    assert windowed_ratio(data[:, 1].copy(), rate, AGENT_HZ) > HEARD


def read_wav_stereo(path: Path) -> tuple[int, np.ndarray]:
    import wave

    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)


def test_a_media_crash_loop_makes_the_engine_exit_non_zero_and_state_comes_back(tmp_path: Path) -> None:
    """More deaths than the restart budget: restarting the media process again would not help,
    so the engine exits 1 (systemd Restart=always starts it again), and the registrations and
    agent states come back from the database."""
    eng = Engine(tmp_path / "engine", config=queue_config(escalations=[], wrapup_seconds=0))
    eng.start()
    try:
        with phone(eng, "ana", ANA_PHONE):
            assert eng.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})[0] == 200
            for _ in range(7):
                if eng.proc is None or eng.proc.poll() is not None:
                    break
                pid = wait_until(lambda: eng.media_pid(), timeout=5.0, what="a media process")
                os.kill(pid, signal.SIGKILL)
                wait_until(lambda pid=pid: eng.proc is None or eng.proc.poll() is not None
                           or eng.media_pid() not in (None, pid), timeout=5.0, what="media restarted or engine gone")
            assert eng.proc is not None
            assert eng.proc.wait(timeout=15.0) == 1
            log = eng.stderr_path.read_text()
            assert "the engine must restart" in log and "engine exiting so that systemd restarts it" in log
            eng.restart()
            status, regs = eng.api("GET", "/v1/registrations")
            assert status == 200 and [r["aor"] for r in regs] == [ANA_PHONE], regs
            status, agents = eng.api("GET", "/v1/agents")
            ana = next(a for a in agents if a["agent"] == "2001")
            assert ana["state"] == "available" and ana["device"] == ANA_PHONE, ana
    finally:
        eng.stop()


def test_a_call_whose_port_is_taken_during_the_restart_is_released_with_the_reason(
        pbx: Engine, tmp_path: Path) -> None:
    """Another process binds the RTP ports while the media process is down: those legs cannot
    be re-created, so the call is released (both phones get a BYE) with a CDR cause that says
    why, instead of staying up in silence."""
    with phone(pbx, "caller", CALLER) as caller, phone(pbx, "ana", ANA_PHONE) as ana:
        call = caller.call(pbx.uri(ANA_PHONE))
        offered = ana.wait_incoming(timeout=10.0)
        ana.answer(offered)
        caller.wait_state(call, "CONFIRMED")
        old = pbx.media_pid()
        assert old is not None
        lo, hi = pbx.rtp_ports
        squatters: dict[int, socket.socket] = {}
        os.kill(old, signal.SIGKILL)
        try:
            deadline = time.monotonic() + 0.3  # the dead process's sockets close as it exits
            while time.monotonic() < deadline:
                for port in range(lo, hi + 1):
                    if port in squatters:
                        continue
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    try:
                        s.bind(("127.0.0.1", port))
                        squatters[port] = s
                    except OSError:
                        s.close()
            caller.wait_state(call, "DISCONNECTED", timeout=10.0)
            ana.wait_state(offered, "DISCONNECTED", timeout=5.0)
        finally:
            for s in squatters.values():
                s.close()
        st = wait_until(lambda: (s := supervision(pbx))["media"].get("restarts") and s, what="restart counted")
        assert len(st["media"]["last_restart"]["lost_legs"]) == 2
        db = sqlite3.connect(pbx.data_dir / "plateau.db")
        try:
            causes = [r[0] for r in db.execute("SELECT hangup_cause FROM cdr")]
        finally:
            db.close()
        assert any("Media lost" in (c or "") for c in causes), causes
