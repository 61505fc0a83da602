"""Party recording (stereo/mono, follows legs across bridges), pause/resume, leg destruction,
and the wide-band planning a recorded leg forces, driven in-process with real RTP packets."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from appliance.media import g711, rtp
from appliance.media.engine import MediaEngine
from appliance.media.protocol import MediaError
from appliance.media.tones import ToneSpec
from tests.audio import goertzel_power, tone_ratio

FREQS = {"caller": 440.0, "agent": 1000.0, "sup": 2000.0}


class Wire:
    """Captures what a leg sends."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def __call__(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(data)

    def audio(self, last: int | None = None) -> np.ndarray:
        """Decoded PCMU audio sent (the last ``last`` packets), 8 kHz."""
        pkts = [rtp.parse(d) for d in self.sent]
        pkts = [p for p in pkts if p.payload_type == 0][-(last or 0):]
        return g711.ulaw_decode(b"".join(p.payload for p in pkts)).astype(np.int16)


class Call:
    """An engine with PCMU legs, each fed a tone of its own frequency once per tick."""

    def __init__(self, legs: tuple[str, ...] = ("caller", "agent", "sup")) -> None:
        self.events: list = []
        self.now = 100.0
        self.eng = MediaEngine(self.events.append, clock=lambda: self.now)
        self.wires: dict[str, Wire] = {}
        self.seq = 0
        for i, leg in enumerate(legs):
            self.wires[leg] = Wire()
            self.eng.add_leg(leg, 0, self.wires[leg], Wire())
            self.eng.configure_leg(leg, ("10.0.0.1", 4000 + 2 * i), "PCMU", 0, None)

    def run(self, ticks: int, talking: tuple[str, ...] | None = None) -> None:
        for _ in range(ticks):
            for leg_id, leg in list(self.eng.legs.items()):
                if talking is None or leg_id in talking:
                    n = np.arange(self.seq * 160, self.seq * 160 + 160)
                    pcm = (8000 * np.sin(2 * np.pi * FREQS[leg_id] * n / 8000)).astype(np.int16)
                    pkt = rtp.build(0, self.seq, 160 * self.seq, 7, g711.ulaw_encode(pcm).tobytes())
                    self.eng.rtp_received(leg, pkt, leg.remote or ("10.0.0.1", 1), self.now)
            self.eng.tick(self.now)
            self.now += 0.02
            self.seq += 1


def read(path: Path) -> tuple[int, int, np.ndarray]:
    """(rate, channels, samples [frames, channels])."""
    with wave.open(str(path)) as w:
        ch, rate = w.getnchannels(), w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, ch)
    return rate, ch, data


def has(x: np.ndarray, freq: float, rate: int = 16000) -> float:
    """Share of the power of ``x`` at ``freq`` (tests.audio Goertzel)."""
    return tone_ratio(np.asarray(x, np.float64), rate, freq)


def test_stereo_recording_puts_caller_in_channel_0_and_agent_in_channel_1(tmp_path):
    call = Call(("caller", "agent"))
    call.eng.bridge("br", ["caller", "agent"])
    call.run(5)
    assert call.eng._plan is not None and call.eng._plan.relay  # not recorded: relayed
    rec = call.eng.record_parties(str(tmp_path / "s.wav"), ["caller", "agent"], stereo=True)
    call.run(50)
    plan = call.eng._plan
    assert plan is not None and not plan.relay and not plan.narrowband  # mixed at 16 kHz
    call.eng.stop_record(rec)
    rate, ch, data = read(tmp_path / "s.wav")
    assert (rate, ch, len(data)) == (16000, 2, 50 * 320)
    body = data[640:]  # skip the resampler's start-up
    assert has(body[:, 0], 440) > 0.95 and has(body[:, 0], 1000) < 0.001
    assert has(body[:, 1], 1000) > 0.95 and has(body[:, 1], 440) < 0.001
    # recording changed nothing the parties hear: each hears the other, not itself
    heard_c, heard_a = call.wires["caller"].audio(20), call.wires["agent"].audio(20)
    assert has(heard_c, 1000, 8000) > 0.9 and has(heard_a, 440, 8000) > 0.9


def test_mono_recording_follows_the_leg_through_an_ivr_and_two_bridges(tmp_path):
    """What the caller SENDS is recorded while it sits alone hearing a prompt, then in a
    bridge, then in another bridge; the prompt (what it hears) never is."""
    call = Call(("caller", "agent"))
    rec = call.eng.record_parties(str(tmp_path / "m.wav"), ["caller", "agent"], stereo=False)
    call.eng.play("caller", ToneSpec("prompt", (3000,)))
    call.run(25)  # IVR: caller alone with a prompt; agent idle, not bridged
    call.eng.stop_play("caller")
    call.eng.bridge("br1", ["caller", "agent"])
    call.run(25)
    call.eng.bridge("br2", ["caller", "agent"])  # both move on: a transfer
    call.run(25)
    call.eng.stop_record(rec)
    rate, ch, data = read(tmp_path / "m.wav")
    assert (rate, ch, len(data)) == (16000, 1, 75 * 320)
    x = data[:, 0]
    ivr, br1, br2 = x[640:25 * 320], x[26 * 320:50 * 320], x[51 * 320:]
    assert has(ivr, 3000) < 0.001  # the prompt is what the caller hears, not what it says
    for part in (ivr, br1, br2):
        assert has(part, 440) > 0.3 and has(part, 1000) > 0.3  # caller + agent, every span
    assert goertzel_power(ivr, 16000, 440) > 0.8 * goertzel_power(br2, 16000, 440)


def test_pause_writes_digital_silence_and_keeps_the_timeline(tmp_path):
    call = Call(("caller", "agent"))
    call.eng.bridge("br", ["caller", "agent"])
    rec = call.eng.record_parties(str(tmp_path / "p.wav"), ["caller", "agent"], stereo=True)
    call.run(20)
    call.eng.pause_record(rec)
    call.eng.pause_record(rec)  # idempotent
    call.run(20)
    call.eng.resume_record(rec)
    call.eng.resume_record(rec)
    call.run(20)
    call.eng.stop_record(rec)
    _, _, data = read(tmp_path / "p.wav")
    assert len(data) == 60 * 320
    assert not data[20 * 320:40 * 320].any()  # exactly zero, both channels
    assert (np.abs(data[:20 * 320]) > 1000).any(axis=0).all()
    after = data[40 * 320:]
    assert has(after[:, 0], 440) > 0.95 and has(after[:, 1], 1000) > 0.95


def test_destroyed_leg_records_silence_until_stop(tmp_path):
    call = Call(("caller", "agent"))
    call.eng.bridge("br", ["caller", "agent"])
    rec = call.eng.record_parties(str(tmp_path / "d.wav"), ["caller", "agent"], stereo=True)
    call.run(20)
    call.eng.remove_leg("agent")
    call.run(20)
    assert call.eng.engine_stats()["recorders"] == 1  # still running
    call.eng.stop_record(rec)
    _, _, data = read(tmp_path / "d.wav")
    assert len(data) == 40 * 320
    assert not data[20 * 320:, 1].any()
    assert has(data[21 * 320:, 0], 440) > 0.95
    # a new leg reusing the id is not picked up by the old recording
    call2 = Call(("caller", "agent"))
    rec2 = call2.eng.record_parties(str(tmp_path / "r.wav"), ["agent"], stereo=False)
    call2.eng.remove_leg("agent")
    call2.eng.add_leg("agent", 0, Wire(), Wire())
    call2.eng.configure_leg("agent", ("10.0.0.9", 4000), "PCMU", 0, None)
    call2.run(10)
    call2.eng.stop_record(rec2)
    assert not read(tmp_path / "r.wav")[2].any()


def test_voicemail_records_a_lone_leg(tmp_path):
    call = Call(("caller",))
    call.eng.play("caller", ToneSpec("beep", (3000,)))  # the greeting / beep the caller hears
    rec = call.eng.record_parties(str(tmp_path / "vm.wav"), ["caller"], stereo=False)
    call.run(30)
    call.eng.stop_record(rec)
    rate, ch, data = read(tmp_path / "vm.wav")
    assert (rate, ch, len(data)) == (16000, 1, 30 * 320)
    assert has(data[640:, 0], 440) > 0.95


def test_bad_requests_are_errors(tmp_path):
    call = Call()
    path = str(tmp_path / "x.wav")
    with pytest.raises(MediaError, match="exactly 2"):
        call.eng.record_parties(path, ["caller", "agent", "sup"], stereo=True)
    with pytest.raises(MediaError, match="exactly 2"):
        call.eng.record_parties(path, ["caller"], stereo=True)
    with pytest.raises(MediaError, match="no leg"):
        call.eng.record_parties(path, ["caller", "ghost"], stereo=False)
    with pytest.raises(MediaError, match="twice"):
        call.eng.record_parties(path, ["caller", "caller"], stereo=True)
    with pytest.raises(MediaError, match="no legs"):
        call.eng.record_parties(path, [], stereo=False)
    with pytest.raises(MediaError, match="no such directory"):
        call.eng.record_parties(str(tmp_path / "nope" / "x.wav"), ["caller"], stereo=False)
    for op in (call.eng.pause_record, call.eng.resume_record, call.eng.stop_record):
        with pytest.raises(MediaError, match="no recording"):
            op("rec-999")


def test_leg_recording_of_a_two_party_bridge_keeps_both_directions(tmp_path):
    """The older ``record(leg)``: recording one member of a narrowband two-party bridge must
    move the whole bridge to the 16 kHz mix (before, the partner relayed octets the recorded
    leg's wide decode never stored, and the recorded leg heard a partner decoded for 8 kHz)."""
    call = Call(("caller", "agent"))
    call.eng.bridge("br", ["caller", "agent"])
    rec = call.eng.record("caller", str(tmp_path / "leg.wav"))
    call.run(30)
    call.eng.stop_record(rec)
    heard_c, heard_a = call.wires["caller"].audio(20), call.wires["agent"].audio(20)
    assert has(heard_c, 1000, 8000) > 0.9 and has(heard_a, 440, 8000) > 0.9
    x = read(tmp_path / "leg.wav")[2][640:, 0]
    assert has(x, 440) > 0.3 and has(x, 1000) > 0.3


def test_agent_slot_is_silent_until_the_agent_is_set(tmp_path):
    """A queue call recorded from the IVR: the agent's channel is silence until they answer."""
    call = Call(("caller", "agent"))
    rec = call.eng.record_parties(str(tmp_path / "q.wav"), ["caller", ""], stereo=True)
    call.run(25)
    call.eng.bridge("br", ["caller", "agent"])
    call.eng.record_set_party(rec, 1, "agent")
    call.run(25)
    with pytest.raises(MediaError, match="no party slot 2"):
        call.eng.record_set_party(rec, 2, "agent")
    with pytest.raises(MediaError, match="already records"):
        call.eng.record_set_party(rec, 0, "agent")
    call.eng.stop_record(rec)
    _, _, data = read(tmp_path / "q.wav")
    before, after = data[640:24 * 320], data[26 * 320:]
    assert not before[:, 1].any() and has(before[:, 0], 440) > 0.95
    assert has(after[:, 1], 1000) > 0.95 and has(after[:, 0], 440) > 0.95
