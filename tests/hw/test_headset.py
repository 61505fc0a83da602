"""The USB-headset softphone (hw/headset.py) end to end through the real engine, without a sound card.

The headset's PyAudio devices are ALSA PCMs from tests/hw/asoundrc (ALSA_CONFIG_PATH, set for
this test process only): its microphone reads a raw tone file, its earpiece writes a raw file.
The headset registers as extension 1005 of a real engine; a pjsua2 phone (its own process) on
1001 calls it or is called by it, and Goertzel checks that each side's tone reached the other.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hw.headset import (
    Answered,
    DeviceNotFound,
    Headset,
    HeadsetConfig,
    HeadsetEvent,
    HeadsetState,
    HungUp,
    IllegalTransition,
    Incoming,
    Registered,
    RegistrationFailed,
)
from tests.audio import read_wav, sine, tone_ratio, write_tone_wav
from tests.peers.engine import Engine
from tests.peers.pjsua import PjPhone

ASOUNDRC = Path(__file__).with_name("asoundrc")
PHONE_HZ = 600.0  # what the pjsua2 phone plays
MIC_HZ = 1400.0  # what the headset's microphone "hears"
TALK_S = 1.5


class Events:
    """Collects the headset's events (posted from its control thread) for the test to await."""

    def __init__(self) -> None:
        self.q: queue.Queue[HeadsetEvent] = queue.Queue()
        self.seen: list[HeadsetEvent] = []

    def __call__(self, ev: HeadsetEvent) -> None:
        self.q.put(ev)

    def wait(self, kind: type[HeadsetEvent], timeout: float = 5.0) -> HeadsetEvent:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ev = self.q.get(timeout=max(0.01, left))
            except queue.Empty:
                raise AssertionError(f"no {kind.__name__} in {timeout}s; seen {self.seen}") from None
            self.seen.append(ev)
            if isinstance(ev, kind):
                return ev
            if left <= 0:
                raise AssertionError(f"no {kind.__name__} in {timeout}s; seen {self.seen}")


@pytest.fixture
def sim_headset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """ALSA config for this process: the microphone plays a MIC_HZ tone, the earpiece records."""
    mic, ear = tmp_path / "mic.raw", tmp_path / "ear.raw"
    lead = np.zeros(800, dtype=np.int16)  # 100 ms of silence, as a person starts talking late
    np.concatenate([lead, sine(MIC_HZ, 20.0, 8000)]).astype("<i2").tofile(mic)
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(ASOUNDRC))
    monkeypatch.setenv("PLATEAU_HEADSET_MIC", str(mic))
    monkeypatch.setenv("PLATEAU_HEADSET_EAR", str(ear))
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")  # PortAudio probes JACK: never spawn jackd
    return mic, ear


def config(engine: Engine, **kw: object) -> HeadsetConfig:
    base: dict[str, object] = dict(
        extension="1005", password=engine.secret(1005), registrar_host=engine.sip_ip,
        registrar_port=engine.sip_port, input_device="headset_mic", output_device="headset_ear",
    )
    base.update(kw)
    return HeadsetConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def headset(engine_module: Engine, sim_headset: tuple[Path, Path]) -> Iterator[tuple[Headset, Events]]:
    events = Events()
    hs = Headset(config(engine_module), on_event=events)
    hs.start()
    try:
        yield hs, events
    finally:
        hs.close()
    assert hs.state is HeadsetState.CLOSED


def earpiece(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<i2")


def test_phone_calls_headset_which_answers_and_both_tones_cross(
    engine_module: Engine, headset: tuple[Headset, Events], sim_headset: tuple[Path, Path], tmp_path: Path
) -> None:
    hs, events = headset
    _, ear = sim_headset
    engine = engine_module
    tone = write_tone_wav(tmp_path / "phone.wav", PHONE_HZ, 10.0)
    rec = tmp_path / "phone_rec.wav"
    assert hs.state is HeadsetState.IDLE
    with engine.no_tracebacks(), PjPhone("p1001") as phone:
        phone.register("1001", engine.secret(1001), engine.sip_ip, engine.sip_port)
        call = phone.call(engine.uri(1005), play_wav=tone, record_wav=rec)
        inc = events.wait(Incoming)
        assert isinstance(inc, Incoming) and inc.caller == "1001"
        assert hs.state is HeadsetState.RINGING
        phone.wait_state(call, "EARLY")
        hs.answer().result(5.0)
        events.wait(Answered)
        phone.wait_state(call, "CONFIRMED")
        assert hs.state is HeadsetState.TALKING
        time.sleep(TALK_S)
        status = hs.status().result(2.0)
        phone.hangup(call)
        hung = events.wait(HungUp)
        phone.wait_state(call, "DISCONNECTED")
    assert isinstance(hung, HungUp) and hung.code == 200
    assert hs.state is HeadsetState.IDLE
    # The earpiece heard the phone's tone; the phone recorded the headset microphone's tone.
    heard = earpiece(ear)
    assert heard.size >= 8000 * (TALK_S - 0.5), f"earpiece got {heard.size} samples"
    ear_ratio = tone_ratio(heard, 8000, PHONE_HZ)
    assert ear_ratio > 0.8, f"earpiece tone ratio {ear_ratio:.2f}"
    rate, got = read_wav(rec)
    mic_ratio = tone_ratio(got, rate, MIC_HZ)
    assert mic_ratio > 0.8, f"phone heard the headset mic at ratio {mic_ratio:.2f}"
    # The microphone was paced by the bridge clock, not drained at file speed.
    audio = status.audio
    assert status.peer == "1001" and status.registered
    assert audio["mic_frames"] >= 50 * (TALK_S - 0.5) and audio["mic_dropped"] <= 2, audio
    assert audio["ear_frames"] >= 50 * (TALK_S - 0.5) and audio["ear_dropped"] == 0, audio


def test_headset_dials_an_extension(
    engine_module: Engine, headset: tuple[Headset, Events], sim_headset: tuple[Path, Path], tmp_path: Path
) -> None:
    hs, events = headset
    _, ear = sim_headset
    engine = engine_module
    tone = write_tone_wav(tmp_path / "phone.wav", PHONE_HZ, 10.0)
    rec = tmp_path / "callee_rec.wav"
    with engine.no_tracebacks(), PjPhone("p1002", auto_answer=True, auto_play=tone, auto_record=rec) as phone:
        phone.register("1002", engine.secret(1002), engine.sip_ip, engine.sip_port)
        with pytest.raises(ValueError):
            hs.dial("10;02")
        hs.dial("1002").result(5.0)
        assert hs.state in (HeadsetState.DIALING, HeadsetState.TALKING)
        call = phone.wait_incoming()
        events.wait(Answered)
        with pytest.raises(IllegalTransition):
            hs.dial("1003").result(2.0)  # one call at a time
        time.sleep(TALK_S)
        hs.hangup().result(2.0)
        hung = events.wait(HungUp)
        phone.wait_state(call, "DISCONNECTED")
    assert isinstance(hung, HungUp) and hung.code == 200
    assert tone_ratio(earpiece(ear), 8000, PHONE_HZ) > 0.8
    rate, got = read_wav(rec)
    assert tone_ratio(got, rate, MIC_HZ) > 0.8


def test_declining_a_ringing_call_sends_busy_and_answer_needs_a_call(
    engine_module: Engine, headset: tuple[Headset, Events]
) -> None:
    hs, events = headset
    engine = engine_module
    with pytest.raises(IllegalTransition):
        hs.answer().result(2.0)  # nothing rings
    with pytest.raises(IllegalTransition):
        hs.hangup().result(2.0)
    with engine.no_tracebacks(), PjPhone("p1003") as phone:
        phone.register("1003", engine.secret(1003), engine.sip_ip, engine.sip_port)
        call = phone.call(engine.uri(1005))
        events.wait(Incoming)
        hs.hangup().result(2.0)
        hung = events.wait(HungUp)
        phone.wait_state(call, "DISCONNECTED")
        assert phone.last_status(call) == 486, phone.events("state")
    assert isinstance(hung, HungUp) and hung.code == 486
    assert hs.state is HeadsetState.IDLE


def test_unknown_device_and_wrong_password_fail_start(
    engine_module: Engine, sim_headset: tuple[Path, Path]
) -> None:
    with pytest.raises(DeviceNotFound, match="headset_mic"):  # the message lists what exists
        Headset(config(engine_module, input_device="Jabra EVOLVE")).start()
    events = Events()
    hs = Headset(config(engine_module, password="wrong"), on_event=events)
    with pytest.raises(RegistrationFailed) as err:
        hs.start()
    assert err.value.code in (401, 403)
    assert hs.state is HeadsetState.CLOSED
    reg = events.wait(Registered)
    assert isinstance(reg, Registered) and reg.code == err.value.code and not reg.active
