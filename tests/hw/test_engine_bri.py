"""The real engine with an ISDN BRI port of the line board: the twin's line side is the network.

The engine reads data/hardware.yaml, opens the twin's pty, and brings up the BRI port's D
channel with its libpri TE against the twin's libpri NT (DCHAN frames on the link). Calls
placed by "the network" reach SIP phones through DID routing; calls from a SIP phone out of
the `isdn` trunk reach the network as SETUPs. Audio is checked by content (Goertzel) at both
ends, through the twin's A-law line and the link's µ-law.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hw import libpri
from hw.bri import BriConfig
from hw.config import HardwareConfigError, parse_hardware
from hw.sim.lineboard import LineBoardSim, SimBri
from tests.audio import read_wav, tone_ratio, wait_heard
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until as _wait

DID = "0140000010"
CALLER = "0612345678"
TRUNK = "isdn"




# -- configuration ------------------------------------------------------------------------------------
def test_bri_port_config_and_did_selection() -> None:
    cfg = parse_hardware({"boards": [{"device": "/dev/ttyACM0", "ports": {
        0: {"bri": {"dids": [DID, 140000011], "trunk_name": TRUNK}},
        1: {"bri": {"did_prefix": "01400000", "ptp": False}}}}]})
    a, b = cfg.boards[0].ports[0], cfg.boards[0].ports[1]
    assert a == BriConfig(TRUNK, (DID, "140000011"), "", True)
    assert b == BriConfig("isdn", (), "01400000", False)
    assert a.did_for(DID) == DID and a.did_for("0140000099") is None
    # A DDI access sends only the last digits: the prefix makes the full DID; a full number stays.
    assert b.did_for("12") == "0140000012" and b.did_for("0140000012") == "0140000012"
    assert BriConfig(dids=("0140000012",), did_prefix="01400000").did_for("12") == "0140000012"


@pytest.mark.parametrize(("spec", "field"), [
    ("isdn", "ports.0.bri: must be a mapping"),
    ({"dids": DID}, "ports.0.bri.dids: must be a list"),
    ({"dids": [""]}, r"ports.0.bri.dids\[0\]: must be a non-empty string"),
    ({"ptp": "yes"}, "ports.0.bri.ptp: true or false"),
    ({"msn": "1"}, "ports.0.bri: unknown field 'msn'"),
])
def test_bri_config_errors_name_the_field(spec: object, field: str) -> None:
    with pytest.raises(HardwareConfigError, match=field):
        parse_hardware({"boards": [{"device": "x", "ports": {0: {"bri": spec}}}]})


# -- the engine with the twin ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, LineBoardSim]]:
    """One engine with extensions 1001-1010, DID 0140000010 -> 1002, and a one-port BRI twin."""
    tmp = tmp_path_factory.mktemp("bri")
    sim = LineBoardSim(("bri",), link=tmp / "ttyACM0", serial="VB0002").start()
    cfg = default_config()
    cfg["inbound_routes"] = [{"did": DID, "destination": "1002"}]
    # Outside numbers go out of the BRI: a trunk record named like the port's trunk_name.
    cfg["trunks"] = [{"name": TRUNK, "host": "127.0.0.1", "port": 9}]
    cfg["outbound_routes"] = [{"name": "pstn", "pattern": "_0XXXXXXXXX", "trunk": TRUNK}]
    cfg["extensions"][0]["dial_permissions"] = ["pstn"]
    eng = Engine(tmp / "engine", config=cfg, persistent=True)
    eng.data_dir.mkdir(parents=True, exist_ok=True)
    (eng.data_dir / "hardware.yaml").write_text(yaml.safe_dump({"boards": [{
        "device": str(tmp / "ttyACM0"), "name": "lb0", "ports": {0: {"bri": {"dids": [DID], "trunk_name": TRUNK}}}}]}))
    try:
        eng.start()
        _wait(lambda: _port(eng)["d_channel"] == "up", 8.0, "BRI D channel up")
        # Both ends establish (Q.921 5.5): the network's own SABME is repeated every T200 (1 s).
        sim.wait_for(lambda: sim.nt[0].link_up, 5.0)
        yield eng, sim
    finally:
        eng.stop()
        sim.close()


def _port(eng: Engine) -> dict[str, Any]:
    status, body = eng.api("GET", "/v1/hardware")
    assert status == 200, body
    boards = body["boards"]
    return dict(boards[0]["ports"][0]) if boards and boards[0]["ports"] else {}


def _idle(eng: Engine, sim: LineBoardSim) -> None:
    _wait(lambda: _port(eng)["state"] == "idle", 3.0, "BRI port idle again")
    _, calls = eng.api("GET", "/v1/calls")
    assert calls == []
    assert not sim.ports[0].active




def test_status_shows_the_bri_port_and_the_network_sees_layer2(rig: tuple[Engine, LineBoardSim]) -> None:
    eng, sim = rig
    port = _port(eng)
    assert (port["kind"], port["state"], port["trunk"], port["dids"]) == ("bri", "idle", TRUNK, [DID])
    assert sim.nt[0].link_up and libpri.DchanUp() in sim.nt[0].events
    assert port["counters"]["frames_in"] > 0


def test_inbound_call_reaches_extension_audio_both_ways_network_clears(
        rig: tuple[Engine, LineBoardSim], tones: dict[int, Path], tmp_path: Path) -> None:
    eng, sim = rig
    nt: SimBri = sim.nt[0]
    rec_b = tmp_path / "b.wav"
    with eng.no_tracebacks(), PjPhone("b", auto_answer=True, auto_play=tones[2000], auto_record=rec_b) as b:
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        sim.clear_recorded(0)
        sim.play(0, 1000.0)
        call = nt.place_call(DID, CALLER, "DUPONT JEAN")
        cb = b.wait_incoming(timeout=5.0)
        info = b.incoming_info(cb)
        assert info["remote_uri"].startswith(f"sip:{CALLER}@") and info["display"] == "DUPONT JEAN"
        sim.wait_for(lambda: call.state == "active", 5.0)  # our CONNECT reached the network
        kinds = [type(e) for e in nt.events if getattr(e, "call", None) == call.handle]
        assert libpri.Proceeding in kinds and kinds[-1] is libpri.Answer
        b.wait_state(cb, "CONFIRMED", timeout=3.0)
        heard_on_line = wait_heard(lambda: sim.recorded(0), 2000)
        nt.hangup(call, 16)  # the caller hangs up: DISCONNECT, normal clearing
        b.wait_state(cb, "DISCONNECTED", timeout=5.0)
        sim.play(0, None)
    rate_b, got_b = read_wav(rec_b)
    assert tone_ratio(got_b, rate_b, 1000) > 0.7, "the SIP phone did not hear the network caller"
    assert tone_ratio(heard_on_line, 8000, 2000) > 0.7, "the network caller did not hear the SIP phone"
    assert tone_ratio(heard_on_line, 8000, 1000) < 0.05  # no echo of its own tone
    _idle(eng, sim)
    assert call.cause == 16


def test_inbound_call_to_another_number_is_refused_unallocated(rig: tuple[Engine, LineBoardSim]) -> None:
    eng, sim = rig
    nt = sim.nt[0]
    call = nt.place_call("0140000099", CALLER)
    sim.wait_for(lambda: call.state == "cleared", 3.0)
    assert call.cause == 1
    _idle(eng, sim)


def test_outbound_call_answered_by_network_then_sip_caller_hangs_up(
        rig: tuple[Engine, LineBoardSim], tones: dict[int, Path], tmp_path: Path) -> None:
    eng, sim = rig
    nt = sim.nt[0]
    rec_a = tmp_path / "a.wav"
    before = len(nt.from_pbx())
    with eng.no_tracebacks(), PjPhone("a") as a:
        a.register("1001", eng.secret("1001"), "127.0.0.1", eng.sip_port)
        sim.clear_recorded(0)
        sim.play(0, 2000.0)
        ca = a.call(eng.uri(CALLER), play_wav=tones[1000], record_wav=rec_a)
        sim.wait_for(lambda: len(nt.from_pbx()) > before, 5.0)
        call = nt.from_pbx()[-1]
        assert (call.called, call.calling) == (CALLER, "1001")
        ring = [e for e in nt.events if isinstance(e, libpri.Ring) and e.call == call.handle][0]
        assert ring.layer1 == libpri.PRI_LAYER_1_ALAW and ring.complete  # EuroISDN speech, en bloc
        nt.proceeding(call)
        nt.alert(call)
        a.wait_state(ca, "EARLY", timeout=3.0)  # ALERTING -> 180 Ringing
        nt.answer(call)
        a.wait_state(ca, "CONFIRMED", timeout=3.0)
        heard_on_line = wait_heard(lambda: sim.recorded(0), 1000)
        a.hangup(ca)  # BYE -> DISCONNECT with cause 16
        sim.wait_for(lambda: call.state == "cleared", 3.0)
        sim.play(0, None)
    assert call.cause == 16
    rate_a, got_a = read_wav(rec_a)
    assert tone_ratio(got_a, rate_a, 2000) > 0.7, "the SIP caller did not hear the network"
    assert tone_ratio(heard_on_line, 8000, 1000) > 0.7, "the network did not hear the SIP caller"
    _idle(eng, sim)


@pytest.mark.parametrize(("q850", "code", "alert_first"), [(17, 486, True), (1, 404, False)])
def test_outbound_call_refused_by_network_maps_the_cause(rig: tuple[Engine, LineBoardSim], q850: int, code: int,
                                                         alert_first: bool) -> None:
    """17 user busy after ALERTING (DISCONNECT) -> 486; 1 unallocated at once (RELEASE COMPLETE) -> 404."""
    eng, sim = rig
    nt = sim.nt[0]
    before = len(nt.from_pbx())
    with eng.no_tracebacks(), PjPhone("a") as a:
        a.register("1001", eng.secret("1001"), "127.0.0.1", eng.sip_port)
        ca = a.call(eng.uri("0140000077"))
        sim.wait_for(lambda: len(nt.from_pbx()) > before, 5.0)
        call = nt.from_pbx()[-1]
        assert call.called == "0140000077"
        if alert_first:
            nt.proceeding(call)
            nt.alert(call)
            a.wait_state(ca, "EARLY", timeout=3.0)
        nt.hangup(call, q850)
        a.wait_state(ca, "DISCONNECTED", timeout=5.0)
        assert a.last_status(ca) == code
    _idle(eng, sim)


def test_board_unplugged_mid_call_releases_it_and_comes_back(rig: tuple[Engine, LineBoardSim]) -> None:
    """Last in the module: the board vanishes during a call, then returns with a fresh D channel."""
    eng, sim = rig
    nt = sim.nt[0]
    with eng.no_tracebacks(), PjPhone("b", auto_answer=True) as b:
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        call = nt.place_call(DID, CALLER)
        cb = b.wait_incoming(timeout=5.0)
        b.wait_state(cb, "CONFIRMED", timeout=5.0)
        sim.unplug()
        b.wait_state(cb, "DISCONNECTED", timeout=8.0)  # 3 missed PONGs: the board is gone, its call released
        assert _port(eng)["state"] == "out-of-service"
        nt.hangup(call, 41)  # the network's side of the lost call (its frames go nowhere)
        sim.plug()
        _wait(lambda: _port(eng)["state"] == "idle", 10.0, "BRI port back in service")
        sim.wait_for(lambda: nt.link_up, 5.0)
        again = nt.place_call(DID, CALLER)
        cb2 = b.wait_incoming(timeout=5.0)
        assert cb2 != cb
        sim.wait_for(lambda: again.state == "active", 5.0)
        nt.hangup(again, 16)
        b.wait_state(cb2, "DISCONNECTED", timeout=5.0)
    _idle(eng, sim)
