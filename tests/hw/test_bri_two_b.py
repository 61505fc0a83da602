"""Two calls on one ISDN BRI port: both B channels on the link as BAUDIO (hw/PROTOCOL.md, CAPS bit 2).

The real engine with the twin's libpri NT as the network, as tests/hw/test_engine_bri.py: two
inbound calls at once reach two extensions, each on its own B channel, with a distinct tone on
each leg both ways and no cross-talk (Goertzel at all four ends); a third SETUP is refused with
cause 34; an inbound and an outbound call share the port. An older board (no CAPS bit 2) keeps
one call per port on AUDIO.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hw.sim.lineboard import LineBoardSim
from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until

DID_B, DID_C = "0140000010", "0140000011"  # -> 1002, 1003
CALLER_1, CALLER_2 = "0612345678", "0698765432"
TRUNK = "isdn"
# One frequency per direction per call: network B1 700 / B2 1100 Hz, phones 1500 / 2000 Hz.
NET_B1, NET_B2, PHONE_B, PHONE_C = 700, 1100, 1500, 2000


def _rig(tmp: Path, two_b: bool) -> tuple[Engine, LineBoardSim]:
    sim = LineBoardSim(("bri",), link=tmp / "ttyACM0", serial="VB0003", two_b=two_b).start()
    cfg = default_config()
    cfg["inbound_routes"] = [{"did": DID_B, "destination": "1002"}, {"did": DID_C, "destination": "1003"}]
    cfg["trunks"] = [{"name": TRUNK, "host": "127.0.0.1", "port": 9}]
    cfg["outbound_routes"] = [{"name": "pstn", "pattern": "_0XXXXXXXXX", "trunk": TRUNK}]
    cfg["extensions"][0]["dial_permissions"] = ["pstn"]
    eng = Engine(tmp / "engine", config=cfg, persistent=True)
    eng.data_dir.mkdir(parents=True, exist_ok=True)
    (eng.data_dir / "hardware.yaml").write_text(yaml.safe_dump({"boards": [{
        "device": str(tmp / "ttyACM0"), "name": "lb0",
        "ports": {0: {"bri": {"dids": [DID_B, DID_C], "trunk_name": TRUNK}}}}]}))
    try:
        eng.start()
        wait_until(lambda: _port(eng).get("d_channel") == "up", 8.0, "BRI D channel up")
        sim.wait_for(lambda: sim.nt[0].link_up, 5.0)
    except BaseException:
        eng.stop()
        sim.close()
        raise
    return eng, sim


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, LineBoardSim]]:
    """The engine, extensions 1001-1010, DIDs ...10 -> 1002 and ...11 -> 1003, a one-port BRI twin with BAUDIO."""
    eng, sim = _rig(tmp_path_factory.mktemp("bri2b"), two_b=True)
    try:
        yield eng, sim
    finally:
        eng.stop()
        sim.close()


@pytest.fixture
def wavs(tmp_path: Path) -> dict[int, Path]:
    return {f: write_tone_wav(tmp_path / f"tone{f}.wav", f, 4.0, rate=8000, amplitude=8000)
            for f in (PHONE_B, PHONE_C)}


def _port(eng: Engine) -> dict[str, Any]:
    status, body = eng.api("GET", "/v1/hardware")
    assert status == 200, body
    boards = body["boards"]
    return dict(boards[0]["ports"][0]) if boards and boards[0]["ports"] else {}


def _idle(eng: Engine, sim: LineBoardSim) -> None:
    wait_until(lambda: _port(eng)["state"] == "idle" and _port(eng)["calls"] == 0, 3.0, "BRI port idle again")
    _, calls = eng.api("GET", "/v1/calls")
    assert calls == []
    sim.wait_for(lambda: not sim.ports[0].active, 3.0)


def _only(samples: Any, rate: int, want: int, others: tuple[int, ...], what: str) -> None:
    """`want` carries most of the power; none of the other calls' tones leaked in."""
    assert tone_ratio(samples, rate, want) > 0.7, f"{what} did not hear {want} Hz"
    for f in others:
        assert tone_ratio(samples, rate, f) < 0.02, f"{what} heard {f} Hz: cross-talk"


def test_caps_announce_two_b_channels_and_status_lists_both(rig: tuple[Engine, LineBoardSim]) -> None:
    eng, sim = rig
    port = _port(eng)
    assert (port["max_calls"], port["b_audio"], port["calls"]) == (2, "BAUDIO", 0)
    assert [(b["b"], b["state"], b["channel"]) for b in port["b_channels"]] == [(1, "idle", None), (2, "idle", None)]
    assert sim.baudio


def test_two_inbound_calls_two_extensions_no_cross_talk_third_setup_refused(
        rig: tuple[Engine, LineBoardSim], wavs: dict[int, Path], tmp_path: Path) -> None:
    eng, sim = rig
    nt = sim.nt[0]
    rec_b, rec_c = tmp_path / "b.wav", tmp_path / "c.wav"
    with eng.no_tracebacks(), \
            PjPhone("b", auto_answer=True, auto_play=wavs[PHONE_B], auto_record=rec_b) as b, \
            PjPhone("c", auto_answer=True, auto_play=wavs[PHONE_C], auto_record=rec_c) as c:
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        c.register("1003", eng.secret("1003"), "127.0.0.1", eng.sip_port)
        sim.clear_recorded(0)
        sim.play(0, NET_B1, b=1)
        sim.play(0, NET_B2, b=2)
        first = nt.place_call(DID_B, CALLER_1)
        second = nt.place_call(DID_C, CALLER_2)
        assert (first.channel, second.channel) == (1, 2)  # the network's choice, exclusive
        cb, cc = b.wait_incoming(timeout=5.0), c.wait_incoming(timeout=5.0)
        assert b.incoming_info(cb)["remote_uri"].startswith(f"sip:{CALLER_1}@")
        assert c.incoming_info(cc)["remote_uri"].startswith(f"sip:{CALLER_2}@")
        sim.wait_for(lambda: first.state == "active" and second.state == "active", 5.0)
        b.wait_state(cb, "CONFIRMED", timeout=3.0)
        c.wait_state(cc, "CONFIRMED", timeout=3.0)
        # Our CONNECT went out; each call is Active once the network's CONNECT ACKNOWLEDGE is in (Q.931 5.2.8).
        wait_until(lambda: {x["q931_state"] for x in _port(eng)["b_channels"]} == {"U10 active"}, 3.0,
                   "both calls active")
        port = _port(eng)
        assert (port["state"], port["calls"]) == ("in-call", 2)
        bound = {x["b"]: x for x in port["b_channels"]}
        assert bound[1]["channel"] and bound[2]["channel"] and bound[1]["channel"] != bound[2]["channel"]

        # Both B channels busy: a third SETUP (naming no channel) is refused, no circuit available.
        third = nt.place_call(DID_B, "0611111111")
        assert third.channel == 0
        sim.wait_for(lambda: third.state == "cleared", 3.0)
        assert third.cause == 34
        assert _port(eng)["counters"]["refused_in"] >= 1

        time.sleep(2.0)
        line_b1, line_b2 = sim.recorded(0, b=1), sim.recorded(0, b=2)
        nt.hangup(first, 16)
        b.wait_state(cb, "DISCONNECTED", timeout=5.0)
        assert (first.state, second.state) == ("cleared", "active")  # the other call goes on
        wait_until(lambda: _port(eng)["calls"] == 1, 3.0, "one call left")
        assert [x["state"] for x in _port(eng)["b_channels"]] == ["idle", "in-call"]
        nt.hangup(second, 16)
        c.wait_state(cc, "DISCONNECTED", timeout=5.0)
    sim.play(0, None)
    rate_b, got_b = read_wav(rec_b)
    rate_c, got_c = read_wav(rec_c)
    _only(got_b, rate_b, NET_B1, (NET_B2, PHONE_C), "extension 1002 (B1)")
    _only(got_c, rate_c, NET_B2, (NET_B1, PHONE_B), "extension 1003 (B2)")
    _only(line_b1, 8000, PHONE_B, (PHONE_C, NET_B1, NET_B2), "the network on B1")
    _only(line_b2, 8000, PHONE_C, (PHONE_B, NET_B1, NET_B2), "the network on B2")
    assert (first.cause, second.cause) == (16, 16)
    _idle(eng, sim)


def test_one_inbound_and_one_outbound_call_at_once(
        rig: tuple[Engine, LineBoardSim], wavs: dict[int, Path], tmp_path: Path) -> None:
    eng, sim = rig
    nt = sim.nt[0]
    rec_a, rec_b = tmp_path / "a.wav", tmp_path / "b.wav"
    before = len(nt.from_pbx())
    with eng.no_tracebacks(), PjPhone("a") as a, \
            PjPhone("b", auto_answer=True, auto_play=wavs[PHONE_B], auto_record=rec_b) as b:
        a.register("1001", eng.secret("1001"), "127.0.0.1", eng.sip_port)
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        sim.clear_recorded(0)
        sim.play(0, NET_B1, b=1)
        sim.play(0, NET_B2, b=2)
        inbound = nt.place_call(DID_B, CALLER_1)
        cb = b.wait_incoming(timeout=5.0)
        sim.wait_for(lambda: inbound.state == "active", 5.0)
        b.wait_state(cb, "CONFIRMED", timeout=3.0)

        # The PBX asks for any channel; the network gives the free one, B2, in CALL PROCEEDING.
        ca = a.call(eng.uri(CALLER_2), play_wav=wavs[PHONE_C], record_wav=rec_a)
        sim.wait_for(lambda: len(nt.from_pbx()) > before, 5.0)
        outbound = nt.from_pbx()[-1]
        assert (outbound.called, outbound.channel) == (CALLER_2, 2)
        nt.proceeding(outbound)
        nt.alert(outbound)
        a.wait_state(ca, "EARLY", timeout=3.0)
        nt.answer(outbound)
        a.wait_state(ca, "CONFIRMED", timeout=3.0)
        port = _port(eng)
        assert port["calls"] == 2 and [x["state"] for x in port["b_channels"]] == ["in-call", "in-call"]
        time.sleep(2.0)
        line_b1, line_b2 = sim.recorded(0, b=1), sim.recorded(0, b=2)
        a.hangup(ca)  # BYE -> DISCONNECT on B2 only
        sim.wait_for(lambda: outbound.state == "cleared", 3.0)
        assert inbound.state == "active"
        nt.hangup(inbound, 16)
        b.wait_state(cb, "DISCONNECTED", timeout=5.0)
    sim.play(0, None)
    rate_a, got_a = read_wav(rec_a)
    rate_b, got_b = read_wav(rec_b)
    _only(got_b, rate_b, NET_B1, (NET_B2, PHONE_C), "extension 1002 (inbound, B1)")
    _only(got_a, rate_a, NET_B2, (NET_B1, PHONE_B), "extension 1001 (outbound, B2)")
    _only(line_b1, 8000, PHONE_B, (PHONE_C, NET_B1, NET_B2), "the network on B1")
    _only(line_b2, 8000, PHONE_C, (PHONE_B, NET_B1, NET_B2), "the network on B2")
    assert outbound.cause == 16
    _idle(eng, sim)


def test_older_board_without_baudio_keeps_one_call_per_port(
        tmp_path: Path, wavs: dict[int, Path]) -> None:
    """No CAPS bit 2: the call's B channel flows as AUDIO, a second SETUP is refused with cause 34."""
    eng, sim = _rig(tmp_path, two_b=False)
    rec_b = tmp_path / "b.wav"
    try:
        nt = sim.nt[0]
        port = _port(eng)
        assert (port["max_calls"], port["b_audio"]) == (1, "AUDIO") and not sim.baudio
        with eng.no_tracebacks(), PjPhone("b", auto_answer=True, auto_play=wavs[PHONE_B], auto_record=rec_b) as b:
            b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
            sim.clear_recorded(0)
            sim.play(0, NET_B1)
            call = nt.place_call(DID_B, CALLER_1)
            cb = b.wait_incoming(timeout=5.0)
            sim.wait_for(lambda: call.state == "active", 5.0)
            b.wait_state(cb, "CONFIRMED", timeout=3.0)
            second = nt.place_call(DID_C, CALLER_2)
            assert second.channel == 2
            sim.wait_for(lambda: second.state == "cleared", 3.0)
            assert second.cause == 34
            time.sleep(1.5)
            heard_on_line = sim.recorded(0)
            assert not sim.recorded(0, b=1).size and not sim.recorded(0, b=2).size  # no BAUDIO at all
            nt.hangup(call, 16)
            b.wait_state(cb, "DISCONNECTED", timeout=5.0)
        rate_b, got_b = read_wav(rec_b)
        _only(got_b, rate_b, NET_B1, (), "extension 1002")
        _only(heard_on_line, 8000, PHONE_B, (NET_B1,), "the network")
        _idle(eng, sim)
    finally:
        eng.stop()
        sim.close()
