"""pjsua2 phones calling each other directly (no PBX): proves the PjPhone peer helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.pjsua import PeerError, PjPhone, wait_rx_audio
from tests.peers.polling import wait_until


@pytest.fixture
def tones(tmp_path: Path) -> dict[int, Path]:
    return {
        f: write_tone_wav(tmp_path / f"tone{f}.wav", f, 2.0, rate=8000, amplitude=8000)
        for f in (1000, 2000)
    }


def _connect(a: PjPhone, b: PjPhone, **call_kw: object) -> tuple[int, int]:
    """A calls B directly; B answers. Returns (A's call, B's call)."""
    ca = a.call(b.uri, **call_kw)  # type: ignore[arg-type]
    cb = b.wait_incoming()
    return ca, cb


def test_two_way_audio_pcmu(tmp_path: Path, tones: dict[int, Path]) -> None:
    rec_a, rec_b = tmp_path / "a.wav", tmp_path / "b.wav"
    with PjPhone("alice") as a, PjPhone("bob") as b:
        ca, cb = _connect(a, b, play_wav=tones[1000], record_wav=rec_a)
        assert b.incoming_info(cb)["remote_uri"].startswith("sip:alice@127.0.0.1")
        b.answer(cb, play_wav=tones[2000], record_wav=rec_b)
        a.wait_state(ca, "CONFIRMED")
        assert a.call_info(ca)["codec"] == "PCMU/8000"
        wait_rx_audio([(a, ca), (b, cb)], 1.5)
        a.hangup(ca)
        b.wait_state(cb, "DISCONNECTED")
        a.wait_state(ca, "DISCONNECTED")
    rate_b, got_b = read_wav(rec_b)
    rate_a, got_a = read_wav(rec_a)
    assert rate_b == 8000 and got_b.size > 8000  # > 1 s of audio reached B
    # Each side hears the other's tone and not its own.
    assert tone_ratio(got_b, rate_b, 1000) > 0.8
    assert tone_ratio(got_b, rate_b, 2000) < 0.05
    assert tone_ratio(got_a, rate_a, 2000) > 0.8
    assert tone_ratio(got_a, rate_a, 1000) < 0.05


def test_rfc4733_dtmf_and_rtcp() -> None:
    with PjPhone("alice") as a, PjPhone("bob", auto_answer=True) as b:
        ca = a.call(b.uri)
        a.wait_state(ca, "CONFIRMED")
        a.dial_dtmf(ca, "19*#")
        for _ in range(4):
            b.wait_event("dtmf", timeout=3.0)
        assert b.received_dtmf() == ["1", "9", "*", "#"]
        stats = wait_until(lambda: (st := a.rtcp_stats(ca))["rx_pkt"] > 10 and st, what="RTP received")
        assert stats["rx_loss"] == 0
        a.hangup(ca)
        a.wait_state(ca, "DISCONNECTED")


@pytest.mark.parametrize(
    ("codecs_a", "codecs_b", "expect"),
    [
        (["G722", "PCMU"], ["G722", "PCMU"], "G722/16000"),
        (["G722", "PCMU"], ["PCMU"], "PCMU/8000"),
        (["PCMA"], ["PCMU", "PCMA"], "PCMA/8000"),
    ],
)
def test_codec_negotiation(codecs_a: list[str], codecs_b: list[str], expect: str) -> None:
    with (
        PjPhone("alice", codecs=codecs_a) as a,
        PjPhone("bob", codecs=codecs_b, auto_answer=True) as b,
    ):
        ca = a.call(b.uri)
        a.wait_state(ca, "CONFIRMED")
        assert a.call_info(ca)["codec"] == expect
        a.hangup(ca)
        a.wait_state(ca, "DISCONNECTED")


def test_g722_carries_wideband_tone(tmp_path: Path) -> None:
    tone = write_tone_wav(tmp_path / "t5k.wav", 5000, 2.0, rate=16000)
    rec = tmp_path / "b.wav"
    with (
        PjPhone("alice", codecs=["G722"]) as a,
        PjPhone("bob", codecs=["G722"], auto_answer=True, auto_record=rec) as b,
    ):
        ca = a.call(b.uri, play_wav=tone)
        a.wait_state(ca, "CONFIRMED")
        b.wait_rx_audio(0, 1.5)
        a.hangup(ca)
        b.wait_state(0, "DISCONNECTED")
    rate, got = read_wav(rec)
    # 5 kHz cannot pass G.711's 4 kHz band: it arriving proves the wideband path end to end.
    assert rate == 16000
    assert tone_ratio(got, rate, 5000) > 0.7


def test_reject_busy_and_unreachable() -> None:
    with PjPhone("alice") as a, PjPhone("bob") as b:
        ca = a.call(b.uri)
        cb = b.wait_incoming()
        a.wait_state(ca, "EARLY")  # B sent 180 Ringing
        b.reject(cb, 486)
        a.wait_state(ca, "DISCONNECTED")
        assert a.last_status(ca) == 486
        b.wait_state(cb, "DISCONNECTED")
        with pytest.raises(PeerError):
            b.answer(99)  # no such call: an error, not silence


def test_hold_unhold_and_tcp() -> None:
    with (
        PjPhone("alice", transport="tcp") as a,
        PjPhone("bob", transport="tcp", auto_answer=True) as b,
    ):
        ca = a.call(b.uri)
        a.wait_state(ca, "CONFIRMED")
        a.wait_event("media", call=ca, status="ACTIVE")
        a.hold(ca)
        a.wait_event("media", timeout=3.0, call=ca, status="LOCAL_HOLD")
        b.wait_event("media", timeout=3.0, call=0, status="REMOTE_HOLD")
        assert b.media_state(0)["dir"] in ("recvonly", "inactive")
        a.unhold(ca)
        a.wait_event("media", timeout=3.0, call=ca, status="ACTIVE")
        assert a.media_state(ca)["dir"] == "sendrecv"
        a.hangup(ca)
        b.wait_state(0, "DISCONNECTED")


def test_blind_transfer(tmp_path: Path) -> None:
    with (
        PjPhone("alice") as a,
        PjPhone("bob", auto_answer=True) as b,
        PjPhone("carol", auto_answer=True) as c,
    ):
        ca = a.call(b.uri)
        a.wait_state(ca, "CONFIRMED")
        b.wait_state(0, "CONFIRMED")
        b.xfer(0, c.uri)  # B refers A to C
        req = a.wait_event("xfer_request", timeout=3.0)
        assert req["target"].startswith(c.uri.split(";")[0])
        c.wait_state(0, "CONFIRMED", timeout=5.0)
        assert c.incoming_info(0)["remote_uri"].startswith("sip:alice@")
        final = b.wait_event("xfer_status", timeout=5.0, final=True)
        assert final["code"] == 200
        a.hangup(ca)  # harmless if pjsua already ended the original leg
        a.wait_state(ca, "DISCONNECTED")
