"""Calls through the engine between real pjsua2 phones, audio checked by content."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.audio import read_wav, tone_ratio, write_dtmf_wav, write_tone_wav
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import registered_phone as _phone
from tests.peers.polling import wait_until


def _config(**overrides: dict[str, Any]) -> dict[str, Any]:
    cfg = default_config()
    for ext in cfg["extensions"]:
        ext.update(overrides.get(ext["number"], {}))
    return cfg


@pytest.fixture
def tones(tmp_path: Path) -> dict[int, Path]:
    return {f: write_tone_wav(tmp_path / f"tone{f}.wav", f, 3.0, rate=8000, amplitude=8000)
            for f in (1000, 2000, 1500)}


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path / "engine", config=_config(
        **{"1003": {"forward_always": "1002"},
           "1004": {"dnd": True},
           "1005": {"forward_busy": "1002", "noanswer_seconds": 2},
           "1006": {"forward_noanswer": "1002", "noanswer_seconds": 2},
           "1007": {"noanswer_seconds": 2}}))
    with eng.running():
        yield eng


def _uri(pbx: Engine, number: str) -> str:
    return f"sip:{number}@127.0.0.1:{pbx.sip_port}"


def _cdrs(pbx: Engine) -> list[sqlite3.Row]:
    db = sqlite3.connect(pbx.data_dir / "plateau.db")
    db.row_factory = sqlite3.Row
    try:
        return list(db.execute("SELECT * FROM cdr ORDER BY id"))
    finally:
        db.close()


def test_call_carries_audio_both_ways_and_writes_cdr(pbx: Engine, tones: dict[int, Path], tmp_path: Path) -> None:
    rec_a, rec_b = tmp_path / "a.wav", tmp_path / "b.wav"
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002") as b:
        ca = a.call(_uri(pbx, "1002"), play_wav=tones[1000], record_wav=rec_a)
        cb = b.wait_incoming()
        info = b.incoming_info(cb)
        assert info["remote_uri"].startswith("sip:1001@")  # caller ID is the calling extension
        assert info["display"] == "Extension 1001"
        b.answer(cb, play_wav=tones[2000], record_wav=rec_b)
        a.wait_state(ca, "CONFIRMED")
        a.wait_rx_audio(ca, 2.0)
        b.wait_rx_audio(cb, 1.5)  # billsec >= 1.5 below
        status, calls = pbx.api("GET", "/v1/calls")
        assert status == 200 and len(calls) == 1 and calls[0]["state"] == "up"
        a.hangup(ca)
        b.wait_state(cb, "DISCONNECTED")
    rate_b, got_b = read_wav(rec_b)
    rate_a, got_a = read_wav(rec_a)
    assert tone_ratio(got_b, rate_b, 1000) > 0.8
    assert tone_ratio(got_a, rate_a, 2000) > 0.8
    assert tone_ratio(got_a, rate_a, 1000) < 0.05  # no echo of our own tone
    rows = wait_until(lambda: [r for r in _cdrs(pbx) if r["disposition"]], what="the closed CDR")
    assert len(rows) == 1
    row = rows[0]
    assert (row["caller"], row["callee"], row["disposition"]) == ("1001", "1002", "ANSWERED")
    assert row["billsec"] >= 1.5 and row["hangup_cause"] == "caller hung up"


def test_rfc4733_dtmf_is_detected_by_the_engine(pbx: Engine) -> None:
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002", auto_answer=True):
        ca = a.call(_uri(pbx, "1002"))
        a.wait_state(ca, "CONFIRMED")
        a.wait_rx_audio(ca, 0.5)  # the media path is up before the first event is sent
        a.dial_dtmf(ca, "1590#*")

        def digits() -> str:
            _, chans = pbx.api("GET", "/v1/channels")
            return next((c["dtmf"] for c in chans if c["direction"] == "inbound"), "")

        wait_until(lambda: digits() == "1590#*", what="the digits 1590#*")
        a.hangup(ca)


def test_pcmu_phone_and_g722_phone_talk_through_transcoding(pbx: Engine, tones: dict[int, Path],
                                                             tmp_path: Path) -> None:
    rec_a, rec_b = tmp_path / "a.wav", tmp_path / "b.wav"
    wide = write_tone_wav(tmp_path / "wide.wav", 1500, 3.0, rate=16000, amplitude=8000)
    with _phone(pbx, "a", "1001", codecs=["PCMU"]) as a, _phone(pbx, "b", "1002", codecs=["G722"]) as b:
        ca = a.call(_uri(pbx, "1002"), play_wav=tones[1000], record_wav=rec_a)
        cb = b.wait_incoming()
        b.answer(cb, play_wav=wide, record_wav=rec_b)
        a.wait_state(ca, "CONFIRMED")
        assert a.call_info(ca)["codec"].startswith("PCMU")
        assert b.call_info(cb)["codec"].startswith("G722")
        a.wait_rx_audio(ca, 2.0)
        b.wait_rx_audio(cb, 2.0)
        a.hangup(ca)
        b.wait_state(cb, "DISCONNECTED")
    rate_b, got_b = read_wav(rec_b)
    rate_a, got_a = read_wav(rec_a)
    assert tone_ratio(got_b, rate_b, 1000) > 0.7
    assert tone_ratio(got_a, rate_a, 1500) > 0.7


def test_every_registered_device_rings_and_the_first_answer_wins(pbx: Engine) -> None:
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "desk", "1002") as desk, \
            _phone(pbx, "soft", "1002") as soft:
        ca = a.call(_uri(pbx, "1002"))
        c_desk = desk.wait_incoming()
        c_soft = soft.wait_incoming()
        soft.answer(c_soft)
        a.wait_state(ca, "CONFIRMED")
        desk.wait_state(c_desk, "DISCONNECTED")
        a.hangup(ca)
        soft.wait_state(c_soft, "DISCONNECTED")


@pytest.mark.parametrize("callee, expected", [
    ("1002", 486),  # the phone answers busy
    ("1004", 486),  # do-not-disturb
    ("1008", 480),  # nothing registered
    ("1007", 480),  # rings, nobody answers
    ("1999", 404),  # no such extension
])
def test_failures_give_the_right_sip_status(pbx: Engine, callee: str, expected: int) -> None:
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002") as b, _phone(pbx, "g", "1007") as g:
        ca = a.call(_uri(pbx, callee))
        if callee == "1002":
            b.reject(b.wait_incoming(), 486)
        if callee == "1007":
            g.wait_incoming()
        # The caller first hears the tone in early media (183), then gets the status.
        a.wait_state(ca, "DISCONNECTED", timeout=10.0)
        assert a.last_status(ca) == expected
    rows = wait_until(lambda: [r for r in _cdrs(pbx) if r["disposition"]], what="the closed CDR")
    assert rows[-1]["disposition"] == {486: "BUSY", 480: "NO ANSWER", 404: "FAILED"}[expected]


@pytest.mark.parametrize("dialled, how", [("1003", "always"), ("1005", "busy"), ("1006", "noanswer")])
def test_call_forwarding(pbx: Engine, dialled: str, how: str) -> None:
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002") as b, \
            _phone(pbx, "f5", "1005") as f5, _phone(pbx, "f6", "1006") as f6:
        ca = a.call(_uri(pbx, dialled))
        if how == "busy":
            f5.reject(f5.wait_incoming(), 486)
        elif how == "noanswer":
            f6.wait_incoming()  # rings for noanswer_seconds, then forwards
        cb = b.wait_incoming(timeout=8.0)
        b.answer(cb)
        a.wait_state(ca, "CONFIRMED")
        a.hangup(ca)
        b.wait_state(cb, "DISCONNECTED")


def test_hold_plays_music_and_resume_restores_the_caller(pbx: Engine, tones: dict[int, Path],
                                                        tmp_path: Path) -> None:
    rec_b = tmp_path / "b.wav"
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002") as b:
        ca = a.call(_uri(pbx, "1002"), play_wav=tones[1000])
        cb = b.wait_incoming()
        b.answer(cb)
        a.wait_state(ca, "CONFIRMED")
        a.hold(ca)
        wait_until(lambda: any(c["held"] for c in pbx.api("GET", "/v1/channels")[1]), what="a held channel")
        b.record(cb, rec_b)
        b.wait_rx_audio(cb, 2.0)
        b.stop_record(cb)
        rate, held_audio = read_wav(rec_b)
        a.unhold(ca)
        wait_until(lambda: not any(c["held"] for c in pbx.api("GET", "/v1/channels")[1]), what="resumed")
        rec_b2 = tmp_path / "b2.wav"
        b.record(cb, rec_b2)
        b.wait_rx_audio(cb, 1.5)
        b.stop_record(cb)
        a.hangup(ca)
    # On hold B hears music (energy, not the caller's 1 kHz); after resume it hears the caller again.
    assert float((held_audio.astype(float) ** 2).mean()) > 1e4
    assert tone_ratio(held_audio, rate, 1000) < 0.2
    rate2, resumed = read_wav(rec_b2)
    assert tone_ratio(resumed, rate2, 1000) > 0.7


def test_blind_transfer_by_refer(pbx: Engine, tones: dict[int, Path], tmp_path: Path) -> None:
    rec_c = tmp_path / "c.wav"
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002") as b, _phone(pbx, "c", "1009") as c:
        ca = a.call(_uri(pbx, "1002"), play_wav=tones[1000])
        cb = b.wait_incoming()
        b.answer(cb, play_wav=tones[2000])
        a.wait_state(ca, "CONFIRMED")
        b.xfer(cb, _uri(pbx, "1009"))  # B sends the caller on to C
        cc = c.wait_incoming(timeout=5.0)
        assert c.incoming_info(cc)["remote_uri"].startswith("sip:1001@")  # C sees the transferee
        c.answer(cc, record_wav=rec_c)
        b.wait_state(cb, "DISCONNECTED", timeout=5.0)
        calls = wait_until(lambda: (c := pbx.api("GET", "/v1/calls")[1]) and c[0]["state"] == "up" and c,
                           what="the transferred call up")
        c.wait_rx_audio(cc, 1.5)
        assert len(calls) == 1
        a.hangup(ca)
        c.wait_state(cc, "DISCONNECTED")
    rate, got = read_wav(rec_c)
    assert tone_ratio(got, rate, 1000) > 0.7


def test_attended_transfer_with_replaces(pbx: Engine, tones: dict[int, Path], tmp_path: Path) -> None:
    rec_c = tmp_path / "c.wav"
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002") as b, _phone(pbx, "c", "1009") as c:
        ca = a.call(_uri(pbx, "1002"), play_wav=tones[1000])
        cb1 = b.wait_incoming()
        b.answer(cb1)
        a.wait_state(ca, "CONFIRMED")
        # B's dialog is confirmed by the ACK, which can arrive after A's side confirms on a
        # loaded machine: a re-INVITE for hold before it is refused by pjsua.
        b.wait_state(cb1, "CONFIRMED")
        b.hold(cb1)
        cb2 = b.call(_uri(pbx, "1009"))
        cc = c.wait_incoming()
        c.answer(cc, record_wav=rec_c)
        b.wait_state(cb2, "CONFIRMED")
        b.xfer_replaces(cb1, cb2)  # B joins A and C and leaves
        b.wait_state(cb1, "DISCONNECTED", timeout=5.0)
        b.wait_state(cb2, "DISCONNECTED", timeout=5.0)
        c.wait_rx_audio(cc, 1.5)
        wait_until(lambda: len(pbx.api("GET", "/v1/calls")[1]) == 1, what="one call left")
        a.hangup(ca)
        c.wait_state(cc, "DISCONNECTED")
    rate, got = read_wav(rec_c)
    assert tone_ratio(got, rate, 1000) > 0.5


def test_originate_from_the_control_api(pbx: Engine) -> None:
    with _phone(pbx, "a", "1001", auto_answer=True), _phone(pbx, "b", "1002") as b:
        status, body = pbx.api("POST", "/v1/originate", {"from": "1001", "to": "1002"})
        assert status == 200, body
        cb = b.wait_incoming(timeout=5.0)
        assert b.incoming_info(cb)["remote_uri"].startswith("sip:1001@")
        b.answer(cb)
        calls = wait_until(lambda: (c := pbx.api("GET", "/v1/calls")[1]) and c[0]["state"] == "up" and c,
                           what="the originated call up")
        channel = calls[0]["b"]
        status, _ = pbx.api("POST", f"/v1/channels/{channel}/hangup")
        assert status == 200
        b.wait_state(cb, "DISCONNECTED")
        status, body = pbx.api("POST", "/v1/originate", {"from": "1010", "to": "1002"})
        assert status == 409  # nothing registered for 1010


def test_kill_9_during_a_call_leaves_an_interrupted_cdr_and_keeps_registrations(pbx: Engine) -> None:
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002", auto_answer=True):
        ca = a.call(_uri(pbx, "1002"))
        a.wait_state(ca, "CONFIRMED")
        assert [r["disposition"] for r in _cdrs(pbx)] == [None]  # written at start, still open
        pbx.kill9()
        pbx.restart()
        rows = _cdrs(pbx)
        assert len(rows) == 1 and rows[0]["disposition"] == "INTERRUPTED"
        _, regs = pbx.api("GET", "/v1/registrations")
        assert sorted(r["aor"] for r in regs) == ["1001", "1002"]


def test_phone_registered_over_tcp_is_called_over_tcp(pbx: Engine, tones: dict[int, Path],
                                                       tmp_path: Path) -> None:
    rec_b = tmp_path / "b.wav"
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002", transport="tcp") as b:
        _, regs = pbx.api("GET", "/v1/registrations")
        assert {r["aor"]: r["transport"] for r in regs}["1002"] == "tcp"
        ca = a.call(_uri(pbx, "1002"), play_wav=tones[1000])
        cb = b.wait_incoming()
        b.answer(cb, record_wav=rec_b)
        a.wait_state(ca, "CONFIRMED")
        b.wait_rx_audio(cb, 1.5)
        b.hangup(cb)  # BYE from the TCP side
        a.wait_state(ca, "DISCONNECTED")
    rate, got = read_wav(rec_b)
    assert tone_ratio(got, rate, 1000) > 0.7


def test_inband_dtmf_is_detected_by_the_engine(pbx: Engine, tmp_path: Path) -> None:
    wav = write_dtmf_wav(tmp_path / "dtmf.wav", "4826")
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002") as b:
        ca = a.call(_uri(pbx, "1002"))
        cb = b.wait_incoming()
        b.answer(cb)
        a.wait_state(ca, "CONFIRMED")
        a.play(ca, wav, loop=False)

        def digits() -> str:
            _, chans = pbx.api("GET", "/v1/channels")
            return next((c["dtmf"] for c in chans if c["direction"] == "inbound"), "")

        wait_until(lambda: digits() == "4826", timeout=6.0, what="the in-band digits 4826")
        a.hangup(ca)
