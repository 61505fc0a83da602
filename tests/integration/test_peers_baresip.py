"""baresip and a pjsua2 phone calling each other directly: proves the Baresip peer helper."""

from __future__ import annotations

from pathlib import Path

from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.baresip import Baresip, netstring, parse_netstrings
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until


def test_netstrings_round_trip() -> None:
    msgs, rest = parse_netstrings(netstring(b'{"a":1}') + netstring(b"") + b"12:partial")
    assert msgs == [b'{"a":1}', b""] and rest == b"12:partial"


def test_baresip_calls_pjsua_two_way_audio(tmp_path: Path) -> None:
    tone = write_tone_wav(tmp_path / "t2k.wav", 2000, 2.0)
    rec = tmp_path / "pj.wav"
    with (
        PjPhone("alice", auto_answer=True, auto_play=tone, auto_record=rec) as pj,
        Baresip("carol", tone_hz=1000, work_dir=tmp_path / "baresip") as bs,
    ):
        bs.dial(pj.uri)
        ev = bs.wait_event("CALL_ESTABLISHED", timeout=5.0)
        assert ev.data["peeruri"].startswith(pj.uri)
        # baresip can report the call established before pjsua's own "incoming" event is read.
        wait_until(lambda: pj.events("incoming"), what="pjsua's incoming event")
        assert pj.incoming_info(0)["remote_uri"].startswith("sip:carol@127.0.0.1")
        pj.wait_rx_audio(0, 1.5)  # both ways flow from the same moment: baresip has as much
        bs.hangup()
        bs.wait_event("CALL_CLOSED", timeout=5.0)
        pj.wait_state(0, "DISCONNECTED")
    rate, got = read_wav(rec)
    assert got.size > rate  # more than a second of audio
    assert tone_ratio(got, rate, 1000) > 0.8  # baresip's ausine reached pjsua2
    [dec] = bs.decoded_recordings()
    rate, got = read_wav(dec)
    assert got.size > rate
    assert tone_ratio(got, rate, 2000) > 0.8  # pjsua2's WAV reached baresip


def test_pjsua_calls_baresip_answer_and_remote_hangup(tmp_path: Path) -> None:
    with (
        PjPhone("alice", codecs=["PCMA"]) as pj,
        Baresip("carol", tone_hz=1000, codecs=["PCMA"], work_dir=tmp_path / "baresip") as bs,
    ):
        c = pj.call(bs.uri, record_wav=tmp_path / "pj.wav")
        bs.wait_event("CALL_INCOMING", timeout=5.0)
        bs.answer()
        bs.wait_event("CALL_ESTABLISHED", timeout=5.0)
        pj.wait_state(c, "CONFIRMED")
        assert pj.call_info(c)["codec"] == "PCMA/8000"
        pj.wait_rx_audio(c, 1.0)
        pj.hangup(c)
        bs.wait_event("CALL_CLOSED", timeout=5.0)
        pj.wait_state(c, "DISCONNECTED")
    rate, got = read_wav(tmp_path / "pj.wav")
    assert tone_ratio(got, rate, 1000) > 0.8
