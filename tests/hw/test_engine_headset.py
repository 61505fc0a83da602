"""USB headsets run by the engine: one `hw.headset_service` process each, answering queue calls.

The engine reads data/headsets.yaml and supervises a headset on extension 1005 whose PyAudio
devices are the ALSA file PCMs of tests/hw/asoundrc (ALSA_CONFIG_PATH and the mic/ear file
variables are set in this process before the engine starts, so the engine and its headset
processes inherit them). Agent 2001 logs in on 1005; a pjsua2 caller calls the queue; the
control API answers and hangs up on the headset; Goertzel checks both directions of audio.
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from hw.headset import Answered, HungUp, Incoming, Registered
from hw.headset_service import (
    ProtocolError,
    ServiceFailed,
    ServiceReady,
    config_from_wire,
    event_from_wire,
    event_to_wire,
    parse_command,
)
from hw.headsets import (
    HeadsetsConfigError,
    HeadsetSupervisor,
    HeadsetUnavailable,
    ProcessState,
    UnknownHeadset,
    parse_headsets,
)
from tests.audio import best_second, read_wav, sine, write_tone_wav
from tests.peers.acd import CALLER, phone, queue_config, wait_agent
from tests.peers.engine import Engine
from tests.peers.polling import wait_until as _wait

ASOUNDRC = Path(__file__).with_name("asoundrc")
HEADSET = "1005"
CALLER_HZ = 440.0  # what the queue caller plays
MIC_HZ = 1400.0  # what the headset's microphone "hears"
TALK_S = 2.0




def earpiece_samples(ear: Path) -> int:
    return ear.stat().st_size // 2 if ear.exists() else 0


def earpiece_heard(ear: Path, seconds: float, since: int = 0, hz: float = CALLER_HZ) -> float:
    """`hz`'s share in the best second the earpiece has played after sample `since` (0 before `seconds`)."""
    heard = np.fromfile(ear, dtype="<i2") if ear.exists() else np.zeros(0, dtype=np.int16)
    heard = heard[since:]
    return best_second(heard, 8000, hz) if heard.size >= 8000 * seconds else 0.0


def headset_status(pbx: Engine, ext: str = HEADSET) -> dict[str, Any]:
    status, body = pbx.api("GET", "/v1/headsets")
    assert status == 200, body
    return next(h for h in body if h["extension"] == ext)


@pytest.fixture(scope="module")
def sim_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """ALSA file devices for this process and its children: the mic plays MIC_HZ, the ear records."""
    tmp = tmp_path_factory.mktemp("headset_audio")
    mic, ear = tmp / "mic.raw", tmp / "ear.raw"
    lead = np.zeros(800, dtype=np.int16)
    np.concatenate([lead, sine(MIC_HZ, 60.0, 8000)]).astype("<i2").tofile(mic)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALSA_CONFIG_PATH", str(ASOUNDRC))
        mp.setenv("PLATEAU_HEADSET_MIC", str(mic))
        mp.setenv("PLATEAU_HEADSET_EAR", str(ear))
        mp.setenv("JACK_NO_START_SERVER", "1")
        yield mic, ear


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory, sim_env: tuple[Path, Path]) -> Iterator[Engine]:
    """An engine with queue 6000, agents 2001/2002, and a USB headset on 1005 (registered)."""
    eng = Engine(tmp_path_factory.mktemp("engine"), config=queue_config(), persistent=True)
    eng.data_dir.mkdir(parents=True, exist_ok=True)
    (eng.data_dir / "headsets.yaml").write_text(yaml.safe_dump([
        {"extension": HEADSET, "password": eng.secret(HEADSET), "input_device": "headset_mic",
         "output_device": "headset_ear"},
    ]))
    eng.start()
    try:
        _wait(lambda: headset_status(eng)["registered"], 15.0, "headset 1005 registered")
        yield eng
    finally:
        eng.stop()


# -- configuration and wire protocol (no processes) -------------------------------------------------
@pytest.mark.parametrize("doc,message", [
    ({"extension": "1005"}, "must be a list"),
    (["1005"], r"headsets\[0\]: must be a mapping"),
    ([{"password": "p", "input_device": "x"}], r"headsets\[0\].extension: required"),
    ([{"extension": "10a", "password": "p", "input_device": "x"}], r"headsets\[0\].extension"),
    ([{"extension": 1005, "input_device": "x"}], r"headsets\[0\].password: required"),
    ([{"extension": 1005, "password": "p"}], r"headsets\[0\].input_device: required"),
    ([{"extension": 1005, "password": "p", "input_device": "x", "rate": 44100}], r"headsets\[0\].rate"),
    ([{"extension": 1005, "password": "p", "input_device": "x", "codecs": ["opus"]}], r"headsets\[0\].codecs"),
    ([{"extension": 1005, "password": "p", "input_device": "x", "hid": 1}], r"headsets\[0\].hid: .auto. or"),
    ([{"extension": 1005, "password": "p", "input_device": "x"},
      {"extension": "1005", "password": "q", "input_device": "y"}], r"headsets\[1\].extension: 1005 is already"),
])
def test_headsets_yaml_errors_name_the_field(doc: object, message: str) -> None:
    with pytest.raises(HeadsetsConfigError, match=message):
        parse_headsets(doc, "127.0.0.1", 5060)


def test_headsets_yaml_gives_configs_registering_with_the_engine() -> None:
    (cfg,) = parse_headsets([{"extension": 1005, "password": "s", "input_device": "Jabra", "rate": 16000,
                              "codecs": ["G722"], "sip_port": 5099}], "10.0.0.1", 5070)
    assert (cfg.extension, cfg.registrar_host, cfg.registrar_port, cfg.bind_ip) == ("1005", "10.0.0.1", 5070,
                                                                                   "10.0.0.1")
    assert (cfg.rate, cfg.codecs, cfg.sip_port, cfg.output_device) == (16000, ("G722",), 5099, "")
    assert parse_headsets(None, "127.0.0.1", 5060) == []


def test_wire_events_round_trip_and_bad_lines_are_named() -> None:
    for ev in (Registered(200, "OK", True), Incoming("1001", "Ana", "sip:1001@h"), Answered(),
               HungUp(200, "Normal"), ServiceReady("1005"), ServiceFailed("RegistrationFailed", "403 Forbidden", 403),
               ServiceFailed("DeviceNotFound", "no input device")):
        back, state = event_from_wire(event_to_wire(ev, "idle"))
        assert back == ev and state == "idle"
    with pytest.raises(ProtocolError, match="unknown event"):
        event_from_wire({"event": "exploded"})
    with pytest.raises(ProtocolError, match="lacks caller"):
        event_from_wire({"event": "incoming", "display": "", "uri": "u"})
    assert parse_command('{"id": 3, "cmd": "dial", "number": "1002"}') == (3, "dial", {"number": "1002"})
    for bad, why in (('{"cmd": "answer"}', "integer 'id'"), ('{"id": 1, "cmd": "reboot"}', "unknown cmd"),
                     ('{"id": 1, "cmd": "dial"}', "string 'number'"), ("{", "malformed")):
        with pytest.raises(ProtocolError, match=why):
            parse_command(bad)
    with pytest.raises(ProtocolError, match="unknown field"):
        config_from_wire({"extension": "1", "password": "p", "registrar_host": "h", "registrar_port": 1,
                          "input_device": "x", "volume": 3})
    with pytest.raises(ProtocolError, match="missing field.*input_device"):
        config_from_wire({"extension": "1", "password": "p", "registrar_host": "h", "registrar_port": 1})


# -- through the engine -----------------------------------------------------------------------------
def test_queue_call_is_answered_on_the_usb_headset_and_tones_cross(
        pbx: Engine, sim_env: tuple[Path, Path], tmp_path: Path) -> None:
    _, ear = sim_env
    since = earpiece_samples(ear)  # what earlier calls left in the earpiece's file is not this call
    to_agent = write_tone_wav(tmp_path / "caller.wav", CALLER_HZ, 30)
    caller_heard = tmp_path / "caller_heard.wav"
    with pbx.no_tracebacks(), phone(pbx, "caller", CALLER) as caller:
        status, body = pbx.api("POST", "/v1/agents/2001/login", {"device": HEADSET})
        assert status == 200, body
        try:
            call = caller.call(pbx.uri("6000"), play_wav=to_agent, record_wav=caller_heard)
            caller.wait_state(call, "CONFIRMED")  # the queue answers and plays music
            ringing = _wait(lambda: headset_status(pbx)["state"] == "ringing" and headset_status(pbx), 5.0,
                            "headset ringing")
            assert ringing["peer"] == CALLER
            wait_agent(pbx, "2001", "ringing", timeout=2.0)
            status, body = pbx.api("POST", f"/v1/headsets/{HEADSET}/answer")
            assert status == 200, body
            assert body["extension"] == HEADSET and body["state"] in ("ringing", "talking"), body
            _wait(lambda: headset_status(pbx)["state"] == "talking", 3.0, "headset talking")
            wait_agent(pbx, "2001", "on-call", timeout=3.0)
            # Talk until the earpiece has TALK_S of audio with one clean second of the caller's tone in
            # it (when that second came depends on a loaded machine's timing; that it came does not).
            _wait(lambda: earpiece_heard(ear, TALK_S, since) > 0.8, 10.0, "earpiece hearing the caller")
            caller.stop_record(call)
            status, body = pbx.api("POST", f"/v1/headsets/{HEADSET}/hangup")
            assert status == 200, body
            caller.wait_state(call, "DISCONNECTED")
            _wait(lambda: headset_status(pbx)["state"] == "idle", 3.0, "headset idle")
            wait_agent(pbx, "2001", "wrap-up", timeout=3.0)
            # Nothing rings or talks now: the headset refuses, and the API says why.
            status, body = pbx.api("POST", f"/v1/headsets/{HEADSET}/answer")
            assert status == 409 and "answer in state idle" in body["error"], body
        finally:
            pbx.api("POST", "/v1/agents/2001/logout")
    rate, got = read_wav(caller_heard)
    ratio = best_second(got, rate, MIC_HZ)
    assert ratio > 0.8, f"caller heard the headset microphone at ratio {ratio:.2f} (best second)"


def test_headset_api_errors_and_hardware_status(pbx: Engine) -> None:
    status, body = pbx.api("POST", "/v1/headsets/1009/answer")
    assert status == 404 and "1009" in body["error"]
    status, body = pbx.api("POST", f"/v1/headsets/{HEADSET}/hangup")
    assert status == 409, body  # no call
    status, body = pbx.api("POST", f"/v1/headsets/{HEADSET}/answer", {"now": True})
    assert status == 400, body
    status, body = pbx.api("POST", f"/v1/headsets/{HEADSET}/reboot")
    assert status == 404, body
    status, hw = pbx.api("GET", "/v1/hardware")
    assert status == 200 and [h["extension"] for h in hw["headsets"]] == [HEADSET]
    status, st = pbx.api("GET", "/v1/status")
    assert st["hardware"]["headsets"][0]["process"] == "up"


def test_killed_headset_process_is_restarted_and_registers_again(pbx: Engine) -> None:
    with pbx.no_tracebacks():
        before = headset_status(pbx)
        assert before["process"] == "up" and before["registered"] and before["pid"]
        os.kill(before["pid"], signal.SIGKILL)
        down = _wait(lambda: (s := headset_status(pbx))["process"] != "up" and s, 3.0, "crash noticed")
        assert down["registered"] is False and down["last_exit"] == -signal.SIGKILL
        status, body = pbx.api("POST", f"/v1/headsets/{HEADSET}/answer")
        assert status == 503, body  # nothing to command while it is down
        start = time.monotonic()
        after = _wait(lambda: (s := headset_status(pbx))["process"] == "up" and s["registered"] and s, 10.0,
                      "headset back and registered")
        took = time.monotonic() - start
    assert after["pid"] != before["pid"] and after["restarts"] == before["restarts"] + 1
    assert after["state"] == "idle"
    assert took >= 1.0, f"restarted after {took:.1f}s: the 2 s delay was not kept"
    assert f"headset {HEADSET}: process killed by signal {int(signal.SIGKILL)}" in pbx.stderr_tail(50000)


def test_supervisor_health_counts_a_killed_process_and_its_restart(tmp_path: Path) -> None:
    """HeadsetSupervisor.health(): the record the engine's supervisor gathers, one per headset."""
    cfg = parse_headsets([{"extension": "1009", "password": "p", "input_device": "no such device"}],
                         "127.0.0.1", 9)[0]
    sup = HeadsetSupervisor([cfg], restart_delay=0.2, max_restart_delay=0.2).start()
    try:
        hs = sup.get("1009")
        pid = _wait(lambda: hs.status()["pid"], 10.0, "process spawned")
        os.kill(pid, signal.SIGKILL)
        health = _wait(lambda: (h := sup.health()[0]).deaths >= 1 and h.restarts >= 1 and h, 10.0, "restart")
        assert health.name == "headset:1009" and health.alive and not health.fatal
        assert health.last_error is not None and health.last_error.startswith("process ")
    finally:
        sup.stop(grace=1.0)
    assert not sup.health()[0].alive


def test_supervisor_backs_off_a_missing_device_gives_up_on_refused_credentials_and_stops_all(
        pbx: Engine, sim_env: tuple[Path, Path]) -> None:
    configs = parse_headsets([
        {"extension": "1006", "password": pbx.secret("1006"), "input_device": "headset_mic",
         "output_device": "headset_ear"},
        {"extension": "1007", "password": "wrong", "input_device": "headset_mic"},
        {"extension": "1008", "password": pbx.secret("1008"), "input_device": "Jabra EVOLVE"},  # unplugged
    ], pbx.sip_ip, pbx.sip_port)
    sup = HeadsetSupervisor(configs, restart_delay=0.2, max_restart_delay=0.4).start()
    try:
        good, refused, unplugged = sup.get("1006"), sup.get("1007"), sup.get("1008")
        _wait(lambda: good.status()["registered"], 10.0, "1006 registered")
        _wait(lambda: unplugged.status()["restarts"] >= 2, 10.0, "1008 retried twice")
        assert "DeviceNotFound" in unplugged.status()["error"] and "headset_mic" in unplugged.status()["error"]
        # A wrong password is not retried: each REGISTER costs scanner-guard failures for 127.0.0.1.
        _wait(lambda: refused.state is ProcessState.FAILED, 10.0, "1007 failed")
        assert refused.status()["restarts"] == 0 and "401" in refused.status()["error"]
        with pytest.raises(HeadsetUnavailable):
            sup.command("1007", "answer")
        with pytest.raises(UnknownHeadset):
            sup.command("1099", "answer")
        reply = sup.command("1006", "status")
        assert reply["result"]["extension"] == "1006" and reply["result"]["registered"] is True
        pid = good.status()["pid"]
    finally:
        start = time.monotonic()
        sup.stop()
        took = time.monotonic() - start
    assert all(h.state is ProcessState.STOPPED for h in (good, refused, unplugged))
    assert good.status()["pid"] is None and good.status()["last_exit"] == 0  # a clean exit, not a kill
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert took < 3.0, f"stopping took {took:.1f}s"
    status, blocked = pbx.api("GET", "/v1/blocked")
    assert blocked == [], blocked


def test_supervisor_apply_keeps_unchanged_headsets_and_stops_removed_ones() -> None:
    def cfgs(*entries: tuple[str, str]) -> list[Any]:
        return parse_headsets([{"extension": e, "password": "p", "input_device": d} for e, d in entries],
                              "127.0.0.1", 9)
    sup = HeadsetSupervisor(cfgs(("1007", "no mic"), ("1008", "no mic")), restart_delay=0.2,
                            max_restart_delay=0.2).start()
    try:
        kept, removed = sup.get("1007"), sup.get("1008")
        changes = sup.apply(cfgs(("1007", "no mic"), ("1009", "no mic")))
        assert sorted(changes) == ["headset 1008 removed", "headset 1009 added"]
        assert sup.get("1007") is kept and kept.state is not ProcessState.STOPPED  # untouched
        _wait(lambda: removed.state is ProcessState.STOPPED, 10.0, "removed headset stopped")
        _wait(lambda: sup.get("1009").status()["pid"] or sup.get("1009").status()["restarts"], 10.0,
              "new headset started")
        with pytest.raises(UnknownHeadset):
            sup.get("1008")
        assert sup.apply(cfgs(("1007", "other mic"), ("1009", "no mic"))) == ["headset 1007 changed"]
        assert sup.get("1007") is not kept
    finally:
        sup.stop(grace=1.0)


def test_headsets_yaml_names_every_bad_field_at_once() -> None:
    with pytest.raises(HeadsetsConfigError) as info:
        parse_headsets([{"extension": 1005, "password": "", "input_device": "x", "rate": 44100},
                        {"extension": "1006", "input_device": "y", "hid": 1}], "127.0.0.1", 5060)
    assert [str(e) for e in info.value.errors] == [
        "headsets[0].password: required, a non-empty string",
        "headsets[0].rate: must be one of 8000, 16000",
        "headsets[1].password: required, a non-empty string",
        "headsets[1].hid: 'auto' or the absolute path of a hidraw node (/dev/hidrawN)",
    ]
