"""The real engine with a line board (the twin on a pty): analog phone and analog line calls.

The engine reads data/hardware.yaml, opens the twin's pty through a stable symlink, and its
FXS/FXO ports become channels bridged by the media engine like SIP ones. Audio is checked by
content (Goertzel) at both ends.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hw.frames import Dial, OffhookCommand, Ring, ToneKind
from hw.sim.lineboard import FXS_RINGING, LineBoardSim
from tests.audio import read_wav, tone_ratio, wait_heard
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until as _wait

DID = "0140000000"




@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, LineBoardSim]]:
    """One engine with extensions 1001-1010, DID 0140000000 -> 1002, and a two-port twin."""
    tmp = tmp_path_factory.mktemp("hw")
    sim = LineBoardSim(("fxs", "fxo"), link=tmp / "ttyACM0").start()
    cfg = default_config()
    cfg["inbound_routes"] = [{"did": DID, "destination": "1002"}]
    # Outside numbers go out of the analog line: a trunk record named like the FXO ports' trunk_name.
    cfg["trunks"] = [{"name": "analog", "host": "127.0.0.1", "port": 9}]
    cfg["outbound_routes"] = [{"name": "pstn", "pattern": "_0XXXXXXXXX", "trunk": "analog"}]
    cfg["extensions"][0]["dial_permissions"] = ["pstn"]
    eng = Engine(tmp / "engine", config=cfg, persistent=True)
    eng.data_dir.mkdir(parents=True, exist_ok=True)
    (eng.data_dir / "hardware.yaml").write_text(yaml.safe_dump({"boards": [{
        "device": str(tmp / "ttyACM0"), "name": "lb0",
        "ports": {0: {"fxs": "1005"}, 1: {"fxo": {"did": DID, "trunk_name": "analog"}}}}]}))
    try:
        eng.start()
        _wait(lambda: _board(eng)["state"] == "up", 5.0, "board up")
        yield eng, sim
    finally:
        eng.stop()
        sim.close()


def _board(eng: Engine) -> dict[str, Any]:
    status, body = eng.api("GET", "/v1/hardware")
    assert status == 200, body
    return dict(body["boards"][0])


def _port_state(eng: Engine, index: int) -> str:
    return str(_board(eng)["ports"][index]["state"])




def test_status_lists_board_ports_and_counters(rig: tuple[Engine, LineBoardSim]) -> None:
    eng, _sim = rig
    board = _board(eng)
    assert board["serial"] == "VB0001" and board["firmware"] == "1.0"
    assert [p["kind"] for p in board["ports"]] == ["fxs", "fxo"]
    assert board["ports"][0]["extension"] == "1005" and board["ports"][1]["did"] == DID
    assert board["counters"]["crc_errors"] == 0 and board["counters"]["frames_in"] > 0
    _, status = eng.api("GET", "/v1/status")
    assert status["hardware"]["boards"][0]["state"] == "up"


def test_analog_phone_calls_sip_extension_audio_both_ways(rig: tuple[Engine, LineBoardSim],
                                                          tones: dict[int, Path], tmp_path: Path) -> None:
    eng, sim = rig
    rec_b = tmp_path / "b.wav"
    with eng.no_tracebacks(), PjPhone("b") as b:
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        sim.clear_recorded(0)
        sim.play(0, 1000.0)
        sim.off_hook(0)
        sim.wait_for(lambda: ToneKind.DIAL in sim.tones(0), 3.0)  # dial tone
        sim.press(0, "1002#")
        cb = b.wait_incoming(timeout=5.0)
        info = b.incoming_info(cb)
        assert info["remote_uri"].startswith("sip:1005@")  # the analog phone calls as its extension
        b.answer(cb, play_wav=tones[2000], record_wav=rec_b)
        heard_by_phone = wait_heard(lambda: sim.recorded(0), 2000, 2.5)
        sim.on_hook(0)
        b.wait_state(cb, "DISCONNECTED", timeout=5.0)
        sim.play(0, None)
    rate_b, got_b = read_wav(rec_b)
    assert tone_ratio(got_b, rate_b, 1000) > 0.7, "the SIP phone did not hear the analog phone"
    assert tone_ratio(heard_by_phone, 8000, 2000) > 0.7, "the analog phone did not hear the SIP phone"
    assert tone_ratio(heard_by_phone, 8000, 1000) < 0.05  # no echo of its own tone
    _wait(lambda: _port_state(eng, 0) == "idle", 3.0, "FXS port idle again")


def test_sip_extension_rings_analog_phone_with_caller_id(rig: tuple[Engine, LineBoardSim]) -> None:
    eng, sim = rig
    with eng.no_tracebacks(), PjPhone("a") as a:
        a.register("1001", eng.secret("1001"), "127.0.0.1", eng.sip_port)
        ca = a.call(eng.uri("1005"))
        sim.wait_for(lambda: sim.ports[0].state == FXS_RINGING, 5.0)
        ring = sim.commands(Ring, 0)[-1]
        assert isinstance(ring, Ring) and (ring.number, ring.name) == ("1001", "Extension 1001")
        a.wait_state(ca, "EARLY", timeout=3.0)
        sim.off_hook(0)  # the phone answers
        a.wait_state(ca, "CONFIRMED", timeout=5.0)
        a.hangup(ca)
        # The SIP side left, the phone is still off-hook: it hears busy tone until hung up.
        sim.wait_for(lambda: ToneKind.BUSY in sim.tones(0), 3.0)
        sim.on_hook(0)
    _wait(lambda: _port_state(eng, 0) == "idle", 3.0, "FXS port idle again")


def test_inbound_analog_line_call_with_caller_id_reaches_extension(rig: tuple[Engine, LineBoardSim],
                                                                   tones: dict[int, Path], tmp_path: Path) -> None:
    eng, sim = rig
    rec_b = tmp_path / "b.wav"
    with eng.no_tracebacks(), PjPhone("b") as b:
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        sim.clear_recorded(1)
        sim.play(1, 1000.0)
        sim.ring_in(1, "0612345678", "DUPONT JEAN")
        cb = b.wait_incoming(timeout=5.0)
        info = b.incoming_info(cb)
        assert info["remote_uri"].startswith("sip:0612345678@")
        assert info["display"] == "DUPONT JEAN"
        b.answer(cb, play_wav=tones[2000], record_wav=rec_b)
        sim.wait_for(lambda: sim.ports[1].active, 3.0)  # the engine seized the line
        heard_on_line = wait_heard(lambda: sim.recorded(1), 2000)
        sim.polarity(1, True)  # the caller hangs up: the exchange reverses the polarity
        b.wait_state(cb, "DISCONNECTED", timeout=5.0)
        sim.wait_for(lambda: not sim.ports[1].active, 3.0)  # the engine released the line
        sim.play(1, None)
    rate_b, got_b = read_wav(rec_b)
    assert tone_ratio(got_b, rate_b, 1000) > 0.7
    assert tone_ratio(heard_on_line, 8000, 2000) > 0.7
    _, calls = eng.api("GET", "/v1/calls")
    assert calls == []


def test_hook_flash_blind_transfer(rig: tuple[Engine, LineBoardSim]) -> None:
    """Analog phone talks to 1002, flashes, dials 1003 and hangs up: 1002 ends up with 1003."""
    eng, sim = rig
    with eng.no_tracebacks(), PjPhone("b") as b, PjPhone("c") as c:
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        c.register("1003", eng.secret("1003"), "127.0.0.1", eng.sip_port)
        sim.off_hook(0)
        sim.press(0, "1002#")
        cb = b.wait_incoming(timeout=5.0)
        b.answer(cb)
        b.wait_state(cb, "CONFIRMED", timeout=3.0)
        _wait(lambda: _port_state(eng, 0) == "call", 3.0, "FXS in call")
        sim.flash(0)
        _wait(lambda: _port_state(eng, 0) == "transfer-dial", 3.0, "collecting the transfer target")
        sim.press(0, "1003#")
        cc = c.wait_incoming(timeout=5.0)
        assert c.incoming_info(cc)["remote_uri"].startswith("sip:1002@")  # the transferee is presented
        sim.on_hook(0)  # the analog user hangs up before 1003 answers: the transfer goes on
        c.answer(cc)
        c.wait_state(cc, "CONFIRMED", timeout=3.0)
        _wait(lambda: (calls := eng.api("GET", "/v1/calls")[1]) and len(calls) == 1 and calls[0]["state"] == "up",
              3.0, "one call up, 1002 with 1003")
        b.hangup(cb)
        c.wait_state(cc, "DISCONNECTED", timeout=5.0)
    _wait(lambda: _port_state(eng, 0) == "idle", 3.0, "FXS port idle again")


def test_extension_calls_out_through_the_analog_line(rig: tuple[Engine, LineBoardSim],
                                                      tones: dict[int, Path], tmp_path: Path) -> None:
    eng, sim = rig
    rec_a = tmp_path / "a.wav"
    with eng.no_tracebacks(), PjPhone("a") as a:
        a.register("1001", eng.secret("1001"), "127.0.0.1", eng.sip_port)
        sim.clear_recorded(1)
        sim.play(1, 2000.0)
        before = len(sim.commands(Dial, 1))
        ca = a.call(eng.uri("0612345678"), play_wav=tones[1000], record_wav=rec_a)
        sim.wait_for(lambda: len(sim.commands(Dial, 1)) > before, 3.0)
        assert isinstance(sim.commands(OffhookCommand, 1)[-1], OffhookCommand)
        assert sim.ports[1].dialed == "0612345678"
        sim.polarity(1, True)  # answer supervision: the called party picked up
        a.wait_state(ca, "CONFIRMED", timeout=3.0)
        heard_on_line = wait_heard(lambda: sim.recorded(1), 1000)
        sim.busy_tone(1)  # the called party hung up: the exchange plays busy
        a.wait_state(ca, "DISCONNECTED", timeout=5.0)
        sim.wait_for(lambda: not sim.ports[1].active, 3.0)
        sim.play(1, None)
        sim.polarity(1, False)  # the exchange restores normal polarity on release
    rate_a, got_a = read_wav(rec_a)
    assert tone_ratio(got_a, rate_a, 2000) > 0.7
    assert tone_ratio(heard_on_line, 8000, 1000) > 0.7
