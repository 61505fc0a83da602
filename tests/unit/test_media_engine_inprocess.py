"""MediaEngine driven in-process with fake time and an in-memory transport."""

import numpy as np

from appliance.media import g711, rtp
from appliance.media.dtmf import dtmf_tone
from appliance.media.engine import MediaEngine
from appliance.media.events import DtmfEvent


class Wire:
    """Captures what a leg sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def __call__(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


def _engine():
    events: list = []
    clock = [100.0]
    eng = MediaEngine(events.append, rtp_timeout_s=5.0, clock=lambda: clock[0])
    wires = {}
    for leg in ("a", "b"):
        wires[leg] = Wire()
        eng.add_leg(leg, 0, wires[leg], Wire())
    eng.configure_leg("a", ("10.0.0.1", 4000), "PCMU", 0, 101)
    eng.configure_leg("b", ("10.0.0.2", 5000), "PCMU", 0, 101)
    eng.bridge("br", ["a", "b"])
    return eng, events, wires, clock


def _pkt(seq: int, pt: int = 0, payload: bytes | None = None, ssrc: int = 7) -> bytes:
    if payload is None:
        tone = 8000 * np.sin(2 * np.pi * 1000 * np.arange(seq * 160, seq * 160 + 160) / 8000)
        payload = g711.ulaw_encode(tone.astype(np.int16)).tobytes()
    return rtp.build(pt, seq, 160 * seq, ssrc, payload)


def test_latching_and_foreign_source_rejection():
    eng, _, wires, clock = _engine()
    a = eng.legs["a"]
    eng.tick(clock[0])
    assert wires["a"].sent[-1][1] == ("10.0.0.1", 4000)  # SDP address before any RTP
    eng.rtp_received(a, _pkt(1), ("192.0.2.9", 7000), clock[0])
    eng.tick(clock[0])
    assert wires["a"].sent[-1][1] == ("192.0.2.9", 7000)  # latched
    eng.rtp_received(a, _pkt(2), ("203.0.113.5", 9999), clock[0] + 0.02)
    assert a.counters.foreign_source == 1 and a.latched == ("192.0.2.9", 7000)
    clock[0] += 1.5  # latched source silent for > 1 s: re-latch
    eng.rtp_received(a, _pkt(3, ssrc=8), ("203.0.113.5", 9999), clock[0])
    assert a.latched == ("203.0.113.5", 9999)


def test_audio_crosses_bridge_and_rfc4733_is_not_audio():
    eng, events, wires, clock = _engine()
    a = eng.legs["a"]
    for seq in range(10):
        eng.rtp_received(a, _pkt(seq), ("192.0.2.9", 7000), clock[0])
        eng.tick(clock[0])
        clock[0] += 0.02
    to_b = [rtp.parse(d) for d, _ in wires["b"].sent]
    audio = g711.ulaw_decode(b"".join(p.payload for p in to_b[-5:])).astype(float)
    assert np.sqrt(np.mean(audio ** 2)) > 3000
    ev = bytes([4, 0x8A, 0, 160])
    for seq in range(10, 14):
        # one event: every packet carries the event's start timestamp (RFC 4733 2.5.1.2)
        eng.rtp_received(a, rtp.build(101, seq, 9999, 7, ev), ("192.0.2.9", 7000), clock[0])
    assert events == [DtmfEvent("a", "4", "rfc4733", 40)]  # 160 units = 20 ms: the 40 ms floor
    assert a.jb.depth == 0  # events never reach the audio path


def test_direction_recvonly_sends_nothing_and_sendonly_ignores_input():
    eng, _, wires, clock = _engine()
    eng.configure_leg("a", ("10.0.0.1", 4000), "PCMU", 0, None, direction="recvonly")
    eng.configure_leg("b", ("10.0.0.2", 5000), "PCMU", 0, None, direction="sendonly")
    eng.rtp_received(eng.legs["b"], _pkt(1), ("10.0.0.2", 5000), clock[0])
    eng.tick(clock[0])
    assert wires["a"].sent == [] and len(wires["b"].sent) == 1
    assert eng.legs["b"].jb.depth == 0


def test_send_dtmf_rfc4733_and_inband_fallback():
    eng, _, wires, clock = _engine()
    eng.send_dtmf("a", "5", 60)
    eng.configure_leg("b", ("10.0.0.2", 5000), "PCMU", 0, None)
    eng.send_dtmf("b", "5", 60)
    for _ in range(8):
        eng.tick(clock[0])
    a_pts = [rtp.parse(d).payload_type for d, _ in wires["a"].sent]
    assert a_pts[:6] == [101] * 5 + [0]  # 60 ms: start, update, end, end, end; then audio
    b_pkts = [rtp.parse(d) for d, _ in wires["b"].sent]
    assert all(p.payload_type == 0 for p in b_pkts)
    pcm = g711.ulaw_decode(b"".join(p.payload for p in b_pkts[:3])).astype(float)
    spectrum = np.abs(np.fft.rfft(pcm))
    top = sorted(np.argsort(spectrum)[-2:] * 8000 / len(pcm))
    assert abs(top[0] - 770) < 20 and abs(top[1] - 1336) < 20


def test_rtp_header_continuity_across_fast_and_slow_paths():
    """Sequence +1 per packet and timestamp +160 per tick whether a leg is on the batched G.711
    path or the per-leg path (RFC 4733 digit in flight), marker only on the first packet."""
    eng, _, wires, clock = _engine()
    for _ in range(3):
        eng.tick(clock[0])
    eng.send_dtmf("a", "5", 60)
    for _ in range(10):
        eng.tick(clock[0])
    pkts = [rtp.parse(data) for data, _ in wires["a"].sent]
    audio = [p for p in pkts if p.payload_type == 0]
    events = [p for p in pkts if p.payload_type == 101]
    assert events and len(audio) >= 6
    assert [p.marker for p in audio] == [True] + [False] * (len(audio) - 1)
    seqs = [p.sequence for p in pkts]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    ts = [p.timestamp for p in audio]
    assert all((b - a) % 160 == 0 and b != a for a, b in zip(ts, ts[1:]))
    assert eng.leg_stats("a")["packets_out"] == len(pkts)


def _tone_payload(freq: float, seq: int) -> bytes:
    tone = 8000 * np.sin(2 * np.pi * freq * np.arange(seq * 160, seq * 160 + 160) / 8000)
    return g711.ulaw_encode(tone.astype(np.int16)).tobytes()


def test_two_party_bridge_relays_octets_and_detects_inband_dtmf_at_8khz():
    """A narrowband two-party bridge sends the partner's G.711 octets unchanged (no decode, mix,
    re-encode); in-band DTMF is still detected on it, without moving the bridge to 16 kHz."""
    eng, events, wires, clock = _engine()
    for leg in ("a", "b"):
        eng.configure_leg(leg, ("10.0.0.1", 4000), "PCMU", 0, None, detect_inband_dtmf=True)
    a = eng.legs["a"]
    digit = dtmf_tone("7", 160 * 6, rate=8000)
    sent = [g711.ulaw_encode(digit[i * 160:(i + 1) * 160]).tobytes() for i in range(6)]
    sent += [_tone_payload(1000, seq) for seq in range(6, 12)]
    for seq, payload in enumerate(sent):
        eng.rtp_received(a, _pkt(seq, payload=payload), ("192.0.2.9", 7000), clock[0])
        eng.tick(clock[0])
        clock[0] += 0.02
    assert events == [DtmfEvent("a", "7", "inband")]
    assert eng._plan is not None and eng._plan.relay and not eng._plan.wideband
    got = [rtp.parse(d).payload for d, _ in wires["b"].sent]
    assert got == sent[:len(got)] and len(got) == len(sent)  # octet for octet, in order


def test_three_party_bridge_mixes_and_relay_stops_when_a_member_joins():
    eng, _, wires, clock = _engine()
    wires["c"] = Wire()
    eng.add_leg("c", 0, wires["c"], Wire())
    eng.configure_leg("c", ("10.0.0.3", 6000), "PCMU", 0, None)
    legs = eng.legs
    for seq in range(12):
        if seq == 3:
            assert eng._plan is not None and eng._plan.relay  # two members: relayed
            eng.bridge("br", ["c"])
        eng.rtp_received(legs["a"], _pkt(seq, payload=_tone_payload(500, seq)), ("10.0.0.1", 4000),
                         clock[0])
        eng.rtp_received(legs["b"], _pkt(seq, payload=_tone_payload(1500, seq)),
                         ("10.0.0.2", 5000), clock[0])
        eng.tick(clock[0])
        clock[0] += 0.02

    def peaks(leg: str) -> list[float]:
        pcm = g711.ulaw_decode(b"".join(rtp.parse(d).payload
                                        for d, _ in wires[leg].sent[-8:])).astype(float)
        spectrum = np.abs(np.fft.rfft(pcm))
        return [f for f in (500, 1500) if spectrum[int(f * len(pcm) / 8000)] > 0.1 * spectrum.max()]

    assert peaks("c") == [500, 1500]  # the sum of the other two
    assert peaks("a") == [1500] and peaks("b") == [500]  # nobody hears themselves


def test_bad_packets_are_dropped_and_counted_in_engine_stats():
    # issue 12 Build 3: what the network sends is range-checked; a bad packet is dropped and
    # counted engine-wide (/v1/status shows media.engine_stats()), even after its leg is gone.
    eng, events, _wires, clock = _engine()
    leg = eng.legs["a"]
    src = ("10.0.0.1", 4000)
    eng.rtp_received(leg, b"\x80\x00", src, clock[0])  # short
    eng.rtp_received(leg, b"\x40" + bytes(11), src, clock[0])  # RTP version 1
    eng.rtp_received(leg, bytes([0x8F]) + bytes(11), src, clock[0])  # 15 CSRCs in 12 octets
    eng.rtp_received(leg, rtp.build(101, 1, 0, 7, b"\x05\x0a\x00"), src, clock[0])  # 3-octet event
    eng.rtcp_received(leg, b"\x80\xca\x00\x01" + bytes(4), ("10.0.0.1", 4001), clock[0])  # SDES first
    eng.rtcp_received(leg, b"\x81\xc9\x00\x07" + bytes(8), ("10.0.0.1", 4001), clock[0])  # RR overruns
    stats = eng.engine_stats()
    assert (stats["malformed_rtp"], stats["malformed_rtcp"]) == (4, 2)
    assert eng.leg_stats("a")["malformed"] == 6 and not events
    assert stats["packets_in"] == 1  # only the event packet's RTP header was good
