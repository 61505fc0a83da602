"""The media process end to end: real UDP phones, transcoding, DTMF, recorder, player."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
import warnings
import wave

import numpy as np
import pytest

from appliance.media.client import MediaClient
from appliance.media.events import DtmfEvent, PlaybackFinished, RtpTimeout
from appliance.media.protocol import MediaError
from tests.audio import tone_ratio
from tests.peers.engine import free_port_range

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # independent G.711 codec for the test phones

from G722 import G722 as RefG722



def tone(freq: float, n: int, start: int, rate: int, amp: float = 6000) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(start, start + n) / rate)).astype(np.int16)


def dtmf(low: float, high: float, n: int, start: int) -> np.ndarray:
    t = np.arange(start, start + n) / 8000
    return (4000 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))).astype(np.int16)


class Phone:
    """A plain UDP socket speaking RTP with one codec (encoded by independent code)."""

    def __init__(self, codec: str, pt: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.codec, self.pt = codec, pt
        self.seq, self.ts, self.ssrc = 1000, 5000, 0x1234 + pt
        self.enc = RefG722(16000, 64000) if codec == "G722" else None
        self.dec = RefG722(16000, 64000) if codec == "G722" else None
        self.received: list[bytes] = []
        self.events: list[bytes] = []
        self.dest: tuple[str, int] | None = None

    @property
    def addr(self) -> tuple[str, int]:
        return self.sock.getsockname()

    def send_audio(self, pcm: np.ndarray) -> None:
        if self.codec == "PCMU":
            payload = audioop.lin2ulaw(pcm.tobytes(), 2)
        elif self.codec == "PCMA":
            payload = audioop.lin2alaw(pcm.tobytes(), 2)
        else:
            payload = bytes(self.enc.encode(pcm))
        self._send(self.pt, payload, self.ts, False)
        self.ts += 160

    def send_event(self, event: int, end: bool, duration: int, ts: int, marker: bool) -> None:
        # RFC 4733 2.3 payload built by hand, independent of appliance.media.dtmf
        self._send(101, struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration), ts, marker)

    def _send(self, pt: int, payload: bytes, ts: int, marker: bool) -> None:
        hdr = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, self.seq & 0xFFFF, ts,
                          self.ssrc)
        self.seq += 1
        self.sock.sendto(hdr + payload, self.dest)

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            self.received.append(data)

    def audio(self) -> np.ndarray:
        """Decoded audio received (8 kHz for G.711, 16 kHz for G.722)."""
        out = []
        for data in self.received:
            pt = data[1] & 0x7F
            if pt != self.pt:
                continue
            payload = data[12:]
            if self.codec == "PCMU":
                out.append(np.frombuffer(audioop.ulaw2lin(payload, 2), np.int16))
            elif self.codec == "PCMA":
                out.append(np.frombuffer(audioop.alaw2lin(payload, 2), np.int16))
            else:
                out.append(np.asarray(self.dec.decode(payload), np.int16))
        return np.concatenate(out) if out else np.zeros(0, np.int16)

    def close(self) -> None:
        self.sock.close()


def level_at(x: np.ndarray, freq: float, rate: int) -> float:
    """Relative spectral level (0..1) of ``freq`` in ``x``."""
    x = x.astype(float)
    n = np.arange(len(x))
    amp = 2 * abs(np.dot(x, np.exp(-2j * np.pi * freq * n / rate))) / len(x)
    return amp / (np.sqrt(2 * np.mean(x ** 2)) + 1e-9)


@pytest.fixture
def media_ports() -> tuple[int, int]:
    """This test's own RTP port range: tests of this file may run at once (pytest-xdist)."""
    return free_port_range(100)


@pytest.fixture
def media(media_ports):
    client = MediaClient.start("127.0.0.1", *media_ports, rtp_timeout_s=1.0)
    events: list = []
    lock = threading.Lock()

    def handler(ev):
        with lock:
            events.append(ev)

    client.set_event_handler(handler)
    phones: list[Phone] = []
    yield client, events, phones
    for p in phones:
        p.close()
    pid = client.pid
    client.close()
    with pytest.raises(ProcessLookupError):
        import os
        os.kill(pid, 0)


def run(phones: list[Phone], seconds: float, produce) -> None:
    """Every 20 ms call produce(tick) to send; drain all sockets meanwhile."""
    start = time.monotonic()
    tick = 0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        deadline = start + 0.02 * tick
        if now >= deadline:
            produce(tick)
            tick += 1
        select.select([p.sock for p in phones], [], [], max(0.0, deadline + 0.02 - now))
        for p in phones:
            p.drain()


def test_three_codec_conference_dtmf_recording_and_playback(media, media_ports, tmp_path):
    client, events, phones = media
    a, b, c = Phone("PCMU", 0), Phone("PCMA", 8), Phone("G722", 9)
    phones += [a, b, c]
    for leg, phone in (("a", a), ("b", b), ("c", c)):
        port = client.create_leg(leg)
        assert port % 2 == 0 and media_ports[0] <= port < media_ports[1]
        phone.dest = ("127.0.0.1", port)
    client.configure_leg("a", a.addr, "PCMU", 0, 101)
    client.configure_leg("b", b.addr, "PCMA", 8, None, detect_inband_dtmf=True)
    client.configure_leg("c", c.addr, "G722", 9, None)
    client.bridge("conf", ["a", "b", "c"])
    rec_id = client.record("conf", str(tmp_path / "conf.wav"))

    def produce(tick: int) -> None:
        a.send_audio(tone(1000, 160, tick * 160, 8000))
        if 50 <= tick < 56:  # in-band '5' (770 + 1336 Hz) for 120 ms from B
            b.send_audio(dtmf(770, 1336, 160, tick * 160))
        else:
            b.send_audio(tone(500, 160, tick * 160, 8000))
        c.send_audio(tone(2000, 320, tick * 320, 16000))
        if tick == 30:  # RFC 4733 '#' from A: start, updates, 3 ends, one timestamp
            for k in range(5):
                a.send_event(11, k >= 3, 160 * (k + 1), 777, k == 0)
            a.send_event(11, True, 640, 777, False)

    run(phones, 1.6, produce)
    client.stop_record(rec_id)

    # transcoded audio: each phone hears the other two, never itself
    heard_a, heard_b, heard_c = a.audio()[1600:], b.audio()[1600:], c.audio()[3200:]
    assert len(heard_a) > 4000 and len(heard_c) > 8000
    assert level_at(heard_b, 1000, 8000) > 0.3 and level_at(heard_b, 2000, 8000) > 0.3
    assert level_at(heard_a, 500, 8000) > 0.2 and level_at(heard_a, 2000, 8000) > 0.3
    assert level_at(heard_a, 1000, 8000) < 0.05
    assert level_at(heard_c, 1000, 16000) > 0.3 and level_at(heard_c, 2000, 16000) < 0.05

    # DTMF: RFC 4733 from A once, in-band from B once; RFC 4733 packets are not mixed as audio
    dtmf_events = [e for e in events if isinstance(e, DtmfEvent)]
    assert DtmfEvent("a", "#", "rfc4733", 80) in dtmf_events  # reported at its first end: 640 units
    assert DtmfEvent("b", "5", "inband") in dtmf_events
    assert len(dtmf_events) == 2
    assert all(d[1] & 0x7F == 8 for d in b.received)

    # recording of the bridge = the sum of all members: all three tones
    with wave.open(str(tmp_path / "conf.wav")) as w:
        assert w.getframerate() == 16000
        rec = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert len(rec) > 16000
    for f in (1000, 500, 2000):
        assert level_at(rec[8000:], f, 16000) > 0.15

    stats = client.leg_stats("a")
    assert stats["packets_in"] > 60 and stats["lost"] == 0 and stats["packets_out"] > 60
    eng = client.engine_stats()
    assert eng["legs"] == 3 and eng["bridges"] == 1 and eng["ticks"] > 60


def test_player_replaces_bridge_audio_and_reports_finish(media, tmp_path):
    client, events, phones = media
    a, b = Phone("PCMU", 0), Phone("PCMA", 8)
    phones += [a, b]
    for leg, phone in (("a", a), ("b", b)):
        phone.dest = ("127.0.0.1", client.create_leg(leg))
    client.configure_leg("a", a.addr, "PCMU", 0, 101)
    client.configure_leg("b", b.addr, "PCMA", 8, 101)
    client.bridge("br", ["a", "b"])
    path = tmp_path / "prompt.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(tone(700, 4000, 0, 8000).tobytes())  # 0.5 s
    play_id = client.play("b", str(path), loop=False)

    run(phones, 1.2, lambda t: (a.send_audio(tone(1000, 160, t * 160, 8000)),
                                b.send_audio(tone(500, 160, t * 160, 8000))))
    heard_b = b.audio()
    assert level_at(heard_b[400:3600], 700, 8000) > 0.6  # the prompt, not A's voice
    assert level_at(heard_b[400:3600], 1000, 8000) < 0.05
    assert level_at(heard_b[-2400:], 1000, 8000) > 0.6  # back to the bridge afterwards
    assert PlaybackFinished("b", play_id) in events
    assert level_at(a.audio()[1600:], 500, 8000) > 0.6  # A unaffected


def test_rtp_timeout_and_errors(media):
    client, events, _ = media
    client.create_leg("quiet")
    client.configure_leg("quiet", ("127.0.0.1", 9), "PCMU", 0, None)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and not any(isinstance(e, RtpTimeout) for e in events):
        time.sleep(0.05)
    assert any(isinstance(e, RtpTimeout) and e.leg_id == "quiet" for e in events)
    with pytest.raises(MediaError, match="exists"):
        client.create_leg("quiet")
    with pytest.raises(MediaError, match="unsupported codec"):
        client.configure_leg("quiet", None, "opus", 96, None)
    with pytest.raises(MediaError, match="no leg"):
        client.bridge("x", ["nope"])
    client.destroy_leg("quiet")
    with pytest.raises(MediaError):
        client.leg_stats("quiet")


def test_request_reply_is_cheap(media):
    client, _, _ = media
    n = 300
    t0 = time.perf_counter()
    for i in range(n):
        client.create_leg(f"l{i % 40}") if i < 40 else client.ping()
    per_call_us = (time.perf_counter() - t0) / n * 1e6
    assert per_call_us < 2000  # ~25-150 us measured; generous for a noisy 2-core box


def _zero_runs(x: np.ndarray) -> list[int]:
    """Lengths of the runs of all-zero 20 ms frames (320 samples) in [samples, channels]."""
    frames = x[:len(x) // 320 * 320].reshape(-1, 320 * x.shape[1])
    runs, n = [], 0
    for zero in ~frames.any(axis=1):
        if zero:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs + ([n] if n else [])


def test_party_recording_pause_and_whisper_through_the_media_process(media, tmp_path):
    """Caller 440 Hz (PCMU), agent 1000 Hz (PCMA), supervisor 2000 Hz (PCMU) whispering."""
    client, _, phones = media
    caller, agent, sup = Phone("PCMU", 0), Phone("PCMA", 8), Phone("PCMU", 0)
    phones += [caller, agent, sup]
    for leg, phone, codec, pt in (("caller", caller, "PCMU", 0), ("agent", agent, "PCMA", 8),
                                  ("sup", sup, "PCMU", 0)):
        phone.dest = ("127.0.0.1", client.create_leg(leg))
        client.configure_leg(leg, phone.addr, codec, pt, None)
    client.bridge("call", ["caller", "agent"])
    stereo = client.record_parties(str(tmp_path / "s.wav"), ["caller", "agent"], stereo=True)
    mono = client.record_parties(str(tmp_path / "m.wav"), ["caller", "agent"], stereo=False)
    client.monitor("sup", ["caller", "agent"], ["agent"])

    def produce(tick: int) -> None:
        caller.send_audio(tone(440, 160, tick * 160, 8000))
        agent.send_audio(tone(1000, 160, tick * 160, 8000))
        sup.send_audio(tone(2000, 160, tick * 160, 8000))
        if tick == 40:
            client.pause_record(stereo)
            client.pause_record(stereo)  # idempotent
        if tick == 65:
            client.resume_record(stereo)

    run(phones, 2.0, produce)
    client.stop_record(stereo)
    client.stop_record(mono)

    heard_sup, heard_agent, heard_caller = (p.audio()[1600:] for p in (sup, agent, caller))
    assert level_at(heard_sup, 440, 8000) > 0.3 and level_at(heard_sup, 1000, 8000) > 0.3
    assert level_at(heard_sup, 2000, 8000) < 0.05
    assert level_at(heard_agent, 440, 8000) > 0.3 and level_at(heard_agent, 2000, 8000) > 0.3
    assert level_at(heard_agent, 1000, 8000) < 0.05
    assert level_at(heard_caller, 1000, 8000) > 0.6 and level_at(heard_caller, 2000, 8000) < 0.05

    with wave.open(str(tmp_path / "s.wav")) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 16000)
        st = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    assert len(st) > 1.5 * 16000
    runs = _zero_runs(st[8000:])  # past the start-up; then the pause, ~25 frames
    assert runs and 18 <= max(runs) <= 35
    body = st[8000:len(st) // 320 * 320].reshape(-1, 320, 2)
    # each channel's frames with audio (paused frames, and any frame lost on the way, left out)
    ch0, ch1 = (body[body[:, :, c].any(axis=1), :, c].ravel() for c in (0, 1))
    assert tone_ratio(ch0, 16000, 440) > 0.6 and tone_ratio(ch0, 16000, 1000) < 0.01
    assert tone_ratio(ch1, 16000, 1000) > 0.6 and tone_ratio(ch1, 16000, 440) < 0.01
    for ch in (ch0, ch1):  # the whisper is what the agent hears, never what it sends
        assert tone_ratio(ch, 16000, 2000) < 0.01
    with wave.open(str(tmp_path / "m.wav")) as w:
        assert (w.getnchannels(), w.getframerate()) == (1, 16000)
        mo = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert tone_ratio(mo[8000:], 16000, 440) > 0.3 and tone_ratio(mo[8000:], 16000, 1000) > 0.3
    assert tone_ratio(mo[8000:], 16000, 2000) < 0.01

    client.unmonitor("sup")
    with pytest.raises(MediaError, match="not monitoring"):
        client.unmonitor("sup")
    with pytest.raises(MediaError, match="no recording"):
        client.pause_record(stereo)
    with pytest.raises(MediaError, match="exactly 2"):
        client.record_parties(str(tmp_path / "x.wav"), ["caller"], stereo=True)
    assert client.engine_stats()["monitors"] == 0


def test_a_batch_is_one_message_run_in_order_and_each_command_fails_alone(media):
    """A call step's commands travel as one message (MediaClient.batch); the media process runs
    them in order, and one that fails there (an unknown bridge) does not stop the next."""
    client, _, phones = media
    a, b = Phone("PCMU", 0), Phone("PCMA", 8)
    phones += [a, b]
    client.create_leg("warm")  # reserves the spare ports: the batch below needs no round trip
    before = client.engine_stats()["control"]
    with client.batch():
        a.dest = ("127.0.0.1", client.create_leg("a"))
        client.destroy_bridge("no-such-bridge")  # unknown only to the media process
        with client.batch():  # nested: still the one message, sent when the outer one ends
            b.dest = ("127.0.0.1", client.create_leg("b"))
        client.configure_leg("a", a.addr, "PCMU", 0, None)
        client.configure_leg("b", b.addr, "PCMA", 8, None)
        client.bridge("br", ["a", "b"])
    after = client.engine_stats()["control"]
    assert after["requests"] - before["requests"] == 2  # the batch, then this query
    assert after["commands"] - before["commands"] == 7  # its six commands and the query
    assert after["failures"] - before["failures"] == 1
    run(phones, 0.8, lambda t: (a.send_audio(tone(1000, 160, t * 160, 8000)),
                                b.send_audio(tone(500, 160, t * 160, 8000))))
    assert level_at(b.audio()[1600:], 1000, 8000) > 0.6
    assert level_at(a.audio()[1600:], 500, 8000) > 0.6
    with client.batch():
        client.create_leg("c")
        # a query inside a batch is answered after the commands cast before it
        assert client.leg_stats("c")["packets_in"] == 0
