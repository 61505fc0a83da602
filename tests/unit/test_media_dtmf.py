"""RFC 4733 telephone-events and in-band DTMF detection."""

import numpy as np
import pytest

from appliance.media.dtmf import (
    DIGITS,
    DtmfError,
    DtmfReceiver,
    DtmfSender,
    DtmfToneSource,
    InbandDtmfDetector,
    ReceivedDigit,
    TelephoneEvent,
    check_event,
    decode_event,
    dtmf_tone,
    encode_event,
    goertzel_power,
)


def test_event_payload_golden():
    # RFC 4733 2.3: event 5, E=1, R=0, volume 10, duration 800
    assert encode_event(TelephoneEvent(5, True, 10, 800)) == bytes([5, 0x8A, 0x03, 0x20])
    assert decode_event(bytes([11, 0x0A, 0, 160])) == TelephoneEvent(11, False, 10, 160)
    assert decode_event(bytes([11, 0x0A, 0, 160])).digit == "#"
    with pytest.raises(DtmfError):
        decode_event(b"\x01\x02")
    with pytest.raises(DtmfError):
        encode_event(TelephoneEvent(1, False, 64, 0))


def test_sender_packet_sequence_for_100ms_digit():
    s = DtmfSender()
    s.queue("7", 100)
    pkts = []
    for tick in range(12):
        p = s.tick(1000 + 160 * tick)
        if p is not None:
            pkts.append((p.marker, p.timestamp, decode_event(p.payload)))
    # 100 ms = 5 packets: start (marker), 3 updates, end; end repeated twice more (2.5.1.4)
    assert [m for m, _, _ in pkts] == [True] + [False] * 6
    assert {ts for _, ts, _ in pkts} == {1000}
    assert [e.duration for _, _, e in pkts] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for _, _, e in pkts] == [False] * 4 + [True] * 3
    assert all(e.event == 7 for _, _, e in pkts)
    assert not s.busy


def test_sender_queues_digits_with_new_timestamps():
    s = DtmfSender()
    for d in "12":
        s.queue(d, 40)
    seen = []
    for tick in range(20):
        p = s.tick(160 * tick)
        if p is not None:
            seen.append((decode_event(p.payload).event, p.timestamp))
    events = sorted(set(seen))
    assert [e for e, _ in events] == [1, 2] and events[0][1] != events[1][1]
    with pytest.raises(DtmfError):
        s.queue("x")


def test_receiver_reports_each_digit_once_at_its_end_with_its_duration():
    r = DtmfReceiver()
    s = DtmfSender()
    s.queue("9", 200)
    got = [r.receive(p.timestamp, p.payload) for p in filter(None, (s.tick(0) for _ in range(16)))]
    assert [d for batch in got for d in batch] == [ReceivedDigit("9", 200)]
    assert got[9] == [ReceivedDigit("9", 200)]  # at the first end packet, not the start
    # only the end packets of the next event arrive: still reported once
    end = encode_event(TelephoneEvent(10, True, 10, 800))
    assert [r.receive(5000, end) for _ in range(3)] == [[ReceivedDigit("*", 100)], [], []]
    # a late end of the first event (its timestamp already reported) is not a new digit
    assert r.receive(0, encode_event(TelephoneEvent(9, True, 10, 1600))) == []


def test_receiver_reports_a_digit_whose_ends_are_all_lost():
    r = DtmfReceiver()
    start = encode_event(TelephoneEvent(5, False, 10, 160))
    update = encode_event(TelephoneEvent(5, False, 10, 960))
    assert r.receive(100, start, now=1.0) == [] and r.receive(100, update, now=1.1) == []
    assert r.expire(1.3) == []
    assert r.expire(1.6) == [ReceivedDigit("5", 120)]
    assert r.expire(9.0) == []
    # a new event's start also ends the previous unended one (RFC 4733 2.5.2.2)
    r.receive(2000, encode_event(TelephoneEvent(1, False, 10, 320)), now=2.0)
    assert r.receive(3000, encode_event(TelephoneEvent(2, False, 10, 160)), now=2.2) == [
        ReceivedDigit("1", 40)]


def test_receiver_ignores_non_dtmf_events_and_refuses_malformed_payloads():
    r = DtmfReceiver()
    assert r.receive(1, encode_event(TelephoneEvent(16, True, 10, 800))) == []  # flash
    assert r.receive(2, encode_event(TelephoneEvent(99, True, 10, 800))) == []
    for bad in (b"", b"\x01\x8a\x03", b"\x01\x8a\x03\x20\x00"):
        with pytest.raises(DtmfError):
            r.receive(3, bad)
    # redundancy (RFC 4733 2.5.1.5): whole 4-octet blocks, the first is the current event
    two = encode_event(TelephoneEvent(3, True, 10, 800)) + encode_event(TelephoneEvent(2, True, 10, 800))
    assert r.receive(4, two) == [ReceivedDigit("3", 100)]


@pytest.mark.parametrize("field", [{"event": 256}, {"event": -1}, {"volume": 64}, {"duration": 0x10000},
                                   {"duration": -1}])
def test_telephone_event_fields_are_range_checked_in_one_place(field):
    ev = TelephoneEvent(**{"event": 1, "end": False, "volume": 10, "duration": 160, **field})
    with pytest.raises(DtmfError):
        check_event(ev)
    with pytest.raises(DtmfError):
        encode_event(ev)


def test_digit_durations_outside_what_can_be_sent_are_refused():
    for bad in (0, 39, 8001):
        with pytest.raises(DtmfError):
            DtmfSender().queue("1", bad)
        with pytest.raises(DtmfError):
            DtmfToneSource().queue("1", bad)


def _naive_goertzel(x: np.ndarray, f: float, rate: int) -> float:
    coeff = 2 * np.cos(2 * np.pi * f / rate)
    s1 = s2 = 0.0
    for v in x.astype(float):
        s1, s2 = v + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def test_vectorised_power_equals_goertzel_recursion():
    x = dtmf_tone("5", 320)[None].astype(np.int16)
    p = goertzel_power(x, np.array([770.0, 1336.0, 941.0]), 16000)[0]
    for got, f in zip(p, (770.0, 1336.0, 941.0)):
        assert got == pytest.approx(_naive_goertzel(x[0], f, 16000), rel=1e-3)


def test_all_16_digits_detected_once_across_many_legs_at_once():
    det = InbandDtmfDetector()
    legs = np.arange(16)
    audio = np.stack([dtmf_tone(d, 320 * 4) for d in DIGITS])  # 80 ms each
    found = []
    for f in range(4):
        found += det.process(legs, audio[:, f * 320:(f + 1) * 320])
    assert sorted(found) == sorted((i, d) for i, d in enumerate(DIGITS))


def test_minimum_duration_20ms_is_rejected():
    det = InbandDtmfDetector()
    frames = [dtmf_tone("3", 320), np.zeros(320, np.int16), dtmf_tone("3", 320)]
    assert [det.process(np.array([0]), f[None]) for f in frames] == [[], [], []]


@pytest.mark.parametrize("twist_db,ok", [(0, True), (6, True), (10, False), (-3, True),
                                         (-6, False)])
def test_twist_limits(twist_db, ok):
    det = InbandDtmfDetector()
    digit = det.classify(dtmf_tone("8", 320, twist_db=twist_db)[None])[0]
    assert (digit == DIGITS.index("8")) == ok


def test_speech_like_noise_and_single_tones_rejected():
    rng = np.random.default_rng(7)
    det = InbandDtmfDetector()
    noise = rng.normal(0, 4000, (50, 320))
    # speech-like: harmonics of a 120 Hz voice with formant-ish weights, plus noise
    n = np.arange(320)
    voiced = sum(np.sin(2 * np.pi * 120 * k * n / 16000) * (3000 / k) for k in range(1, 30))
    frames = np.vstack([noise, voiced[None] + rng.normal(0, 500, (10, 320))]).astype(np.int16)
    single = (8000 * np.sin(2 * np.pi * 770 * n / 16000)).astype(np.int16)[None]
    assert (det.classify(frames) == -1).all()
    assert det.classify(single)[0] == -1


def test_quiet_and_noisy_digit_still_detected():
    rng = np.random.default_rng(1)
    x = dtmf_tone("D", 320, level_dbm0=-20) + rng.normal(0, 200, 320)
    assert InbandDtmfDetector().classify(x.astype(np.int16)[None])[0] == DIGITS.index("D")
