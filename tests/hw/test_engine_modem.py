"""The real engine with a V.253 voice modem (the twin on a pty) as an analog line of the PBX.

The engine reads data/hardware.yaml's `modems:` section, opens the twin through its symlink,
and the modem's line becomes a channel bridged by the media engine like a SIP one. Audio is
checked by content (Goertzel) at both ends.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.media.g711 import ulaw_decode
from hw.config import HardwareConfigError, parse_hardware
from hw.manager import HardwareManager
from hw.modem_line import ModemLineConfig
from hw.sim.modem import ModemTwin, ulaw_tone
from tests.audio import read_wav, tone_ratio
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until as _wait

DID = "0140000001"
TRUNK = "analog-modem"




def test_modems_section_accepted_alone_or_beside_boards() -> None:
    cfg = parse_hardware({"modems": [{"device": "/dev/ttyACM1", "did": 140000001, "trunk_name": TRUNK},
                                     {"device": "/dev/ttyACM2", "did": "0140000002", "name": "fax", "cid_wait_s": 2}]})
    assert cfg.boards == []
    assert cfg.modems == [ModemLineConfig("/dev/ttyACM1", "140000001", TRUNK, "modem0"),
                          ModemLineConfig("/dev/ttyACM2", "0140000002", "analog", "fax", 2.0)]
    both = parse_hardware({"boards": [{"device": "/dev/ttyACM0", "ports": {0: {"fxs": "1005"}}}],
                           "modems": [{"device": "/dev/ttyACM1", "did": DID}]})
    assert len(both.boards) == 1 and both.modems[0].trunk_name == "analog"


@pytest.mark.parametrize("doc,field", [
    ({"modems": {"device": "x"}}, "modems: must be a list"),
    ({"modems": ["/dev/ttyACM1"]}, "modems[0]: must be a mapping"),
    ({"modems": [{"did": DID}]}, "modems[0].device: required"),
    ({"modems": [{"device": "x"}]}, "modems[0].did: required"),
    ({"modems": [{"device": "x", "did": ""}]}, "modems[0].did: must be a non-empty string"),
    ({"modems": [{"device": "x", "did": DID, "trunk_name": None}]}, "modems[0].trunk_name"),
    ({"modems": [{"device": "x", "did": DID, "cid_wait_s": 30}]}, "modems[0].cid_wait_s"),
    ({"modems": [{"device": "x", "did": DID, "baud": 9600}]}, "modems[0]: unknown field 'baud'"),
    ({"modems": [{"device": "x", "did": "1"}, {"device": "y", "did": "2", "name": "modem0"}]}, "modems[1].name"),
    ({"boards": [{"device": "x"}], "modems": [{"device": "x", "did": DID}]}, "modems[0].device: x is already used"),
])
def test_modem_config_errors_name_the_field(doc: object, field: str) -> None:
    with pytest.raises(HardwareConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_hardware(doc)


class _NoPbx:
    """Stands in for the Switchboard where no call can arrive: only `factory` is touched."""

    factory: Any = None


def test_missing_modem_is_out_of_service_with_its_error(tmp_path: Path) -> None:
    path = tmp_path / "hardware.yaml"
    path.write_text(yaml.safe_dump({"modems": [{"device": str(tmp_path / "ttyACM9"), "did": DID}]}))

    def run_now(fn: Callable[[], None]) -> None:
        fn()

    hw = HardwareManager(_NoPbx(), None, lambda _delay, _fn: None, path, call_soon=run_now,
                         modem_options={"reinit_interval": 0.2})
    try:
        hw.start()
        modem = _wait(lambda: (m := hw.status()["modems"][0])["error"] and m, 3.0, "modem reported down")
        assert modem["state"] == "out-of-service" and "ttyACM9" in modem["error"]
        assert hw.status()["error"] is None and hw.modem_ports("analog") == hw.modems
    finally:
        hw.stop()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, ModemTwin]]:
    """One engine with extensions 1001-1010, DID 0140000001 -> 1002, outside numbers out of the modem."""
    tmp = tmp_path_factory.mktemp("modem")
    twin = ModemTwin(link_dir=tmp).start()
    cfg = default_config()
    cfg["inbound_routes"] = [{"did": DID, "destination": "1002"}]
    # A trunk record named like the modem's trunk_name: its calls go out of the modem's line.
    cfg["trunks"] = [{"name": TRUNK, "host": "127.0.0.1", "port": 9}]
    cfg["outbound_routes"] = [{"name": "pstn", "pattern": "_0XXXXXXXXX", "trunk": TRUNK}]
    cfg["extensions"][0]["dial_permissions"] = ["pstn"]
    eng = Engine(tmp / "engine", config=cfg, persistent=True)
    eng.data_dir.mkdir(parents=True, exist_ok=True)
    (eng.data_dir / "hardware.yaml").write_text(yaml.safe_dump(
        {"modems": [{"device": twin.url, "did": DID, "trunk_name": TRUNK}]}))
    try:
        eng.start()
        _wait(lambda: _modem(eng)["state"] == "idle", 5.0, "modem in service")
        yield eng, twin
    finally:
        eng.stop()
        twin.close()


def _modem(eng: Engine) -> dict[str, Any]:
    status, body = eng.api("GET", "/v1/hardware")
    assert status == 200, body
    return dict(body["modems"][0])


def _modem_channel(eng: Engine) -> dict[str, Any] | None:
    _, channels = eng.api("GET", "/v1/channels")
    return next((c for c in channels if c["technology"] == "modem"), None)




def test_status_shows_the_modem(rig: tuple[Engine, ModemTwin]) -> None:
    eng, twin = rig
    modem = _modem(eng)
    assert (modem["name"], modem["kind"], modem["device"]) == ("modem0", "modem", twin.url)
    assert (modem["did"], modem["trunk"], modem["modem_state"]) == (DID, TRUNK, "idle")
    assert modem["ulaw_code"] == 131 and modem["duplex"] is True and modem["error"] is None  # USR: 131 is µ-law
    assert twin.mode == "command" and "AT+FCLASS=8" in twin.commands
    _, status = eng.api("GET", "/v1/status")
    assert status["hardware"]["modems"][0]["state"] == "idle"


def test_inbound_call_with_caller_id_tones_dtmf_and_far_end_hangup(rig: tuple[Engine, ModemTwin],
                                                                   tones: dict[int, Path], tmp_path: Path) -> None:
    eng, twin = rig
    rec_b = tmp_path / "b.wav"
    with eng.no_tracebacks(), PjPhone("b", auto_answer=True, auto_play=tones[2000], auto_record=rec_b) as b:
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        twin.play(ulaw_tone(1000.0, 1.0))  # the caller's voice
        sent_before = len(twin.received_audio())
        twin.ring("0612345678", "DUPONT JEAN")
        cb = b.wait_incoming(timeout=5.0)
        info = b.incoming_info(cb)
        assert info["remote_uri"].startswith("sip:0612345678@")  # the caller ID the modem decoded
        assert info["display"] == "DUPONT JEAN"
        b.wait_state(cb, "CONFIRMED", timeout=5.0)
        _wait(lambda: twin.mode == "vtr" and twin.off_hook, 3.0, "modem off-hook, duplex voice stream open")
        # The line turns "connected" when the engine loop has handled the modem's answer, a moment
        # after the twin sees the stream open.
        _wait(lambda: _modem(eng)["state"] == "connected", 3.0, "the modem line connected")
        time.sleep(2.0)
        heard_on_line = twin.received_audio()[sent_before:]
        twin.send_dtmf("42#")  # the caller presses keys: the modem reports <DLE>4 <DLE>2 <DLE>#
        _wait(lambda: (_modem_channel(eng) or {}).get("dtmf") == "42#", 3.0, "DTMF on the modem channel")
        twin.far_end_hangup()  # the caller hangs up: busy tone on the line
        b.wait_state(cb, "DISCONNECTED", timeout=5.0)
        _wait(lambda: not twin.off_hook and twin.mode == "command", 3.0, "modem back on-hook")
        twin.play(bytes([0xFF]) * 160)
    rate_b, got_b = read_wav(rec_b)
    assert tone_ratio(got_b, rate_b, 1000) > 0.7, "the SIP phone did not hear the line"
    assert len(heard_on_line) > 8000  # > 1 s of the phone's voice written to the modem
    assert tone_ratio(ulaw_decode(heard_on_line).astype(float), 8000, 2000) > 0.7, "the line did not hear the phone"
    _wait(lambda: _modem(eng)["state"] == "idle", 3.0, "modem line idle again")
    _, calls = eng.api("GET", "/v1/calls")
    assert calls == []


def test_extension_calls_out_through_the_modem(rig: tuple[Engine, ModemTwin], tones: dict[int, Path],
                                               tmp_path: Path) -> None:
    eng, twin = rig
    rec_a = tmp_path / "a.wav"
    with eng.no_tracebacks(), PjPhone("a") as a:
        a.register("1001", eng.secret("1001"), "127.0.0.1", eng.sip_port)
        twin.play(ulaw_tone(2000.0, 1.0))  # the called party's voice
        dialed_before = len(twin.dialed)
        ca = a.call(eng.uri("0612345678"), play_wav=tones[1000], record_wav=rec_a)
        _wait(lambda: len(twin.dialed) > dialed_before, 3.0, "ATD sent")
        assert twin.dialed[-1] == "0612345678"
        a.wait_state(ca, "CONFIRMED", timeout=5.0)  # the twin reports OK: the far end answered
        _wait(lambda: twin.mode == "vtr", 3.0, "voice stream open")
        sent_before = len(twin.received_audio())
        time.sleep(2.0)
        heard_on_line = twin.received_audio()[sent_before:]
        a.hangup(ca)
        a.wait_state(ca, "DISCONNECTED", timeout=5.0)
        _wait(lambda: not twin.off_hook and twin.mode == "command", 3.0, "modem back on-hook")
        twin.play(bytes([0xFF]) * 160)
    rate_a, got_a = read_wav(rec_a)
    assert tone_ratio(got_a, rate_a, 2000) > 0.7, "the caller did not hear the far end"
    assert tone_ratio(ulaw_decode(heard_on_line).astype(float), 8000, 1000) > 0.7, "the far end did not hear"
    _wait(lambda: _modem(eng)["state"] == "idle", 3.0, "modem line idle again")
    assert _modem(eng)["counters"]["calls_out"] >= 1


def test_hung_modem_releases_the_call_and_recovers(rig: tuple[Engine, ModemTwin]) -> None:
    eng, twin = rig
    with eng.no_tracebacks(), PjPhone("b", auto_answer=True) as b, PjPhone("a") as a:
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        a.register("1001", eng.secret("1001"), "127.0.0.1", eng.sip_port)
        twin.ring("0698765432")
        cb = b.wait_incoming(timeout=5.0)
        b.wait_state(cb, "CONFIRMED", timeout=5.0)
        _wait(lambda: twin.mode == "vtr", 3.0, "voice stream open")
        twin.hang()  # firmware lock-up mid-call: the voice stream stops, commands go unanswered
        b.wait_state(cb, "DISCONNECTED", timeout=6.0)  # the stalled stream is noticed (2 s) and the call released
        modem = _wait(lambda: (m := _modem(eng))["state"] == "out-of-service" and m, 3.0, "modem out of service")
        assert "stalled" in modem["error"] and modem["counters"]["outages"] == 1
        _, calls = eng.api("GET", "/v1/calls")
        assert calls == []
        # While it is down, a call out of its trunk is refused with 503 (after the congestion tone).
        ca = a.call(eng.uri("0612345678"))
        a.wait_state(ca, "DISCONNECTED", timeout=6.0)
        assert a.last_status(ca) == 503
        twin.unhang()  # a watchdog reset: the driver re-initialises it within its retry interval
        _wait(lambda: _modem(eng)["state"] == "idle", 8.0, "modem back in service")
        assert _modem(eng)["error"] is None
        twin.ring("0611111111")  # and a later call works
        cb2 = b.wait_incoming(timeout=5.0)
        assert b.incoming_info(cb2)["remote_uri"].startswith("sip:0611111111@")
        b.wait_state(cb2, "CONFIRMED", timeout=5.0)
        _wait(lambda: twin.mode == "vtr", 3.0, "voice stream open")
        twin.far_end_hangup("d")  # this time the far end's exchange returns dial tone
        b.wait_state(cb2, "DISCONNECTED", timeout=5.0)
    _wait(lambda: _modem(eng)["state"] == "idle", 3.0, "modem line idle again")


def test_refused_call_is_left_to_ring_out_never_seized(rig: tuple[Engine, ModemTwin]) -> None:
    """Nobody can take the call (1002 not registered): answering would charge the caller, so the line rings out."""
    eng, twin = rig
    commands_before = len(twin.commands)
    with eng.no_tracebacks():
        twin.ring("0622222222")
        _wait(lambda: _modem(eng)["state"] == "rejected", 8.0, "call refused by the PBX")
        assert not twin.off_hook and twin.mode == "command"
        assert "AT+VLS=1" not in twin.commands[commands_before:]
        twin.stop_ringing()  # the caller gives up: the driver notices the rings have stopped
        _wait(lambda: _modem(eng)["state"] == "idle", 12.0, "modem line idle again")
