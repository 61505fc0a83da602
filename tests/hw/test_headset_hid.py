"""The USB headset's hook button end to end: a hook-off report answers a ringing call, hook-on hangs up.

The headset service runs as the engine runs it (`SupervisedHeadset`: `python -m hw.headset_service`
in its own process) against a real engine, its audio on the ALSA file PCMs of tests/hw/asoundrc
(as in test_headset.py) and its `hid` on a pty standing in for /dev/hidrawN, with the Jabra
Link 380c report descriptor (tests/hw/test_hid.py) in a file beside it. A pjsua2 phone on 1001
calls 1005; the test writes real-format input reports into the pty and reads the LED output
reports the service writes back.
"""
from __future__ import annotations

import os
import queue
import select
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hw.headset import HeadsetConfig, HeadsetEvent, HungUp
from hw.headset_service import HidState
from hw.headsets import HeadsetsConfigError, SupervisedHeadset, parse_headsets
from tests.audio import read_wav, sine, tone_ratio, write_tone_wav
from tests.hw.test_hid import HOOK_OFF, HOOK_ON, JABRA_LINK_380C, MUTE_PRESS_OFF_HOOK
from tests.peers.engine import Engine
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until

ASOUNDRC = Path(__file__).with_name("asoundrc")
PHONE_HZ = 600.0
MIC_HZ = 1400.0
TALK_S = 1.5
LED_IDLE, LED_RING, LED_OFF_HOOK = b"\x02\x00\x00", b"\x02\x08\x00", b"\x02\x01\x00"


def test_headsets_yaml_hid_key() -> None:
    base = {"extension": 1005, "password": "p", "input_device": "Jabra"}
    assert [c.hid for c in parse_headsets([base, {**base, "extension": 1006, "hid": "auto"},
                                           {**base, "extension": 1007, "hid": "/dev/hidraw3"}],
                                          "127.0.0.1", 5060)] == ["", "auto", "/dev/hidraw3"]
    for bad in ("hidraw3", 3, True):
        with pytest.raises(HeadsetsConfigError, match=r"headsets\[0\]\.hid: 'auto' or the absolute path"):
            parse_headsets([{**base, "hid": bad}], "127.0.0.1", 5060)


@pytest.fixture
def sim_audio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ALSA file devices for the headset process (it inherits this environment); returns the earpiece file."""
    mic, ear = tmp_path / "mic.raw", tmp_path / "ear.raw"
    np.concatenate([np.zeros(800, dtype=np.int16), sine(MIC_HZ, 20.0, 8000)]).astype("<i2").tofile(mic)
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(ASOUNDRC))
    monkeypatch.setenv("PLATEAU_HEADSET_MIC", str(mic))
    monkeypatch.setenv("PLATEAU_HEADSET_EAR", str(ear))
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    return ear


@pytest.fixture
def hidraw(tmp_path: Path) -> Iterator[tuple[int, str, Path]]:
    """(pty master: the headset's side, the slave's path: its "/dev/hidrawN", the descriptor file)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    desc = tmp_path / "report_descriptor"
    desc.write_bytes(JABRA_LINK_380C)
    try:
        yield master, os.ttyname(slave), desc
    finally:
        os.close(master)
        os.close(slave)


def next_led(master: int, want: bytes, timeout: float = 5.0) -> None:
    """Wait for the output report `want` (the LEDs may be set again on the way)."""
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            seen += os.read(master, 64)
            if seen.endswith(want):
                return
    raise AssertionError(f"no LED report {want.hex()}; got {seen.hex()}")


def test_hook_button_answers_the_ringing_call_and_hangs_it_up(
        engine_module: Engine, sim_audio: Path, hidraw: tuple[int, str, Path], tmp_path: Path) -> None:
    engine = engine_module
    master, node, desc = hidraw
    events: queue.Queue[HeadsetEvent] = queue.Queue()
    cfg = HeadsetConfig(extension="1005", password=engine.secret(1005), registrar_host=engine.sip_ip,
                        registrar_port=engine.sip_port, input_device="headset_mic", output_device="headset_ear",
                        bind_ip=engine.sip_ip, hid=node, hid_descriptor=str(desc))
    hs = SupervisedHeadset(cfg, on_event=lambda ext, ev: events.put(ev))
    tone = write_tone_wav(tmp_path / "phone.wav", PHONE_HZ, 10.0)
    rec = tmp_path / "phone_rec.wav"
    hs.start()
    try:
        wait_until(lambda: hs.status()["registered"] and hs.status()["hid_hook"] == "on-hook", 15.0,
                   "headset registered with its hook button read")
        assert hs.status()["hid"] == node and hs.status()["hid_error"] == ""
        next_led(master, LED_IDLE)
        with engine.no_tracebacks(), PjPhone("p1001") as phone:
            phone.register("1001", engine.secret(1001), engine.sip_ip, engine.sip_port)
            call = phone.call(engine.uri(1005), play_wav=tone, record_wav=rec)
            phone.wait_state(call, "EARLY")
            wait_until(lambda: hs.status()["state"] == "ringing", 5.0, "headset ringing")
            next_led(master, LED_RING)
            os.write(master, HOOK_OFF)  # the user presses the call button
            phone.wait_state(call, "CONFIRMED")
            wait_until(lambda: hs.status()["state"] == "talking", 3.0, "headset talking")
            next_led(master, LED_OFF_HOOK)
            assert hs.status()["hid_hook"] == "off-hook"
            time.sleep(TALK_S)  # unmuted: the microphone's tone reaches the phone
            os.write(master, MUTE_PRESS_OFF_HOOK)
            os.write(master, HOOK_OFF)  # released
            wait_until(lambda: hs.status()["hid_muted"], 3.0, "mute shown in the status")
            time.sleep(TALK_S)  # muted: silence
            phone.stop_record(call)
            os.write(master, HOOK_ON)  # and presses it again
            phone.wait_state(call, "DISCONNECTED")
            wait_until(lambda: hs.status()["state"] == "idle", 3.0, "headset idle")
            next_led(master, b"\x02\x04\x00")  # idle, the Mute LED still on
            seen = iter_events(events)
        hung = [ev for ev in seen if isinstance(ev, HungUp)]
        assert hung and hung[-1].code == 200  # we sent the BYE: the phone's 200 OK to it
        assert hs.status()["hid_hook"] == "on-hook"
        hid = [(ev.off_hook, ev.muted) for ev in seen if isinstance(ev, HidState)]
        assert (True, False) in hid and (True, True) in hid and hid[-1] == (False, True), hid
    finally:
        hs.stop()
    heard = np.fromfile(sim_audio, dtype="<i2")
    assert heard.size >= 8000 * (TALK_S - 0.5), f"earpiece got {heard.size} samples"
    assert tone_ratio(heard, 8000, PHONE_HZ) > 0.8
    rate, got = read_wav(rec)
    # Before the mute press the microphone's tone; over the last second, after it, silence.
    # (The recording starts at the phone's answer, so the unmuted talk sits in its first half.)
    talk = got[: int(rate * TALK_S * 0.8)]
    assert tone_ratio(talk[int(rate * 0.3):], rate, MIC_HZ) > 0.8
    muted = got[-rate:].astype(np.float64)
    assert np.sqrt(np.mean(muted ** 2)) < 50, "the mute button did not silence the microphone"


def iter_events(q: queue.Queue[HeadsetEvent]) -> list[HeadsetEvent]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out
