"""hardware.yaml and headsets.yaml reloaded while the engine runs (POST /v1/reload, issue 12 build 10).

Real engine, line-board twins on ptys, pjsua2 phones: a reload that removes one port and adds
another leaves the call on a third port talking (checked by its audio) and ends the removed
port's call with a cause that says why; a bad file is refused with the field named and nothing
applied; a board whose file appears after the engine started is picked up.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hw.frames import ToneKind
from hw.sim.lineboard import FXS_RINGING, LineBoardSim
from tests.audio import best_second
from tests.peers.engine import Engine
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until as _wait


def _hardware(eng: Engine) -> dict[str, Any]:
    status, body = eng.api("GET", "/v1/hardware")
    assert status == 200, body
    return dict(body)


def _board(eng: Engine, name: str) -> dict[str, Any] | None:
    return next((b for b in _hardware(eng)["boards"] if b["name"] == name), None)


def _write(eng: Engine, boards: list[dict[str, Any]]) -> None:
    (eng.data_dir / "hardware.yaml").write_text(yaml.safe_dump({"boards": boards}))


@pytest.fixture
def boards(tmp_path: Path) -> Iterator[tuple[LineBoardSim, LineBoardSim]]:
    with LineBoardSim(("fxs", "fxs", "fxs"), link=tmp_path / "ttyACM0") as one, \
            LineBoardSim(("fxs",), link=tmp_path / "ttyACM1", serial="VB0002") as two:
        yield one, two


def test_reload_changes_only_what_differs_and_the_other_call_survives(
        tmp_path: Path, boards: tuple[LineBoardSim, LineBoardSim], tones: dict[int, Path]) -> None:
    sim, sim2 = boards
    lb0 = {"device": str(sim.path), "name": "lb0", "ports": {0: {"fxs": "1005"}, 1: {"fxs": "1006"}}}
    eng = Engine(tmp_path / "engine", persistent=True)
    eng.data_dir.mkdir(parents=True, exist_ok=True)
    _write(eng, [lb0])
    with eng.running(), PjPhone("b") as b, PjPhone("c") as c:
        _wait(lambda: (_board(eng, "lb0") or {}).get("state") == "up", 5.0, "lb0 up")
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        c.register("1003", eng.secret("1003"), "127.0.0.1", eng.sip_port)
        calls = {}
        for port, phone, number in ((0, b, "1002"), (1, c, "1003")):  # a call on each port
            sim.play(port, 1000.0)
            sim.off_hook(port)
            sim.wait_for(lambda p=port: ToneKind.DIAL in sim.tones(p), 3.0)
            sim.press(port, number + "#")
            calls[port] = phone.wait_incoming(timeout=5.0)
            phone.answer(calls[port], play_wav=tones[2000])
            phone.wait_state(calls[port], "CONFIRMED")

        # Port 1 (in a call) removed, port 2 added, a second board added; port 0 unchanged.
        lb0_new = {**lb0, "ports": {0: {"fxs": "1005"}, 2: {"fxs": "1007"}}}
        _write(eng, [lb0_new, {"device": str(sim2.path), "name": "lb1", "ports": {0: {"fxs": "1008"}}}])
        status, body = eng.api("POST", "/v1/reload")
        assert status == 200, body
        assert sorted(body["hardware"]) == ["board lb1 added", "lb0 port 1 removed", "lb0 port 2 added"], body

        c.wait_state(calls[1], "DISCONNECTED", timeout=5.0)  # the removed port's call ends...
        _wait(lambda: "ended: 503 Line port removed from hardware.yaml" in eng.stderr_tail(20000), 5.0,
              "the log saying why")  # ...with a cause that says why
        sim.clear_recorded(0)  # the call on port 0 goes on: its phone still hears the far end
        _wait(lambda: best_second(sim.recorded(0), 8000, 2000) > 0.7, 5.0, "port 0 still hearing 1002")
        assert not [e for e in b.events("state") if e.data.get("state") == "DISCONNECTED"]
        _wait(lambda: (_board(eng, "lb1") or {}).get("state") == "up", 5.0, "lb1 up")
        lb0_status = _board(eng, "lb0")
        assert lb0_status is not None and lb0_status["counters"]["opens"] == 1  # its link was never reopened
        assert [p["extension"] for p in lb0_status["ports"]] == ["1005", "1007"]
        assert [p["state"] for p in lb0_status["ports"]] == ["call", "idle"]

        # A bad file is refused, naming the field; nothing of it is applied.
        _write(eng, [{**lb0_new, "ports": {0: {"fxs": "1005"}, 1: {"fxq": "1"}}}])
        status, body = eng.api("POST", "/v1/reload")
        assert status == 400 and "hardware.yaml" in body["error"] and "boards[0].ports.1" in body["error"], body
        assert "running configuration is kept" in body["error"]
        assert [b["name"] for b in _hardware(eng)["boards"]] == ["lb0", "lb1"]
        _write(eng, [lb0_new])  # hardware.yaml good again, headsets.yaml bad: refused all the same
        (eng.data_dir / "headsets.yaml").write_text(yaml.safe_dump([{"extension": "x1", "password": "p",
                                                                    "input_device": "mic"}]))
        status, body = eng.api("POST", "/v1/reload")
        assert status == 400 and "headsets[0].extension" in body["error"], body
        assert [b["name"] for b in _hardware(eng)["boards"]] == ["lb0", "lb1"]  # lb1 not removed yet
        (eng.data_dir / "headsets.yaml").unlink()

        # The new port takes calls at once.
        _write(eng, [lb0_new])
        status, body = eng.api("POST", "/v1/reload")
        assert status == 200 and body["hardware"] == ["board lb1 removed"], body
        cc = c.call(eng.uri("1007"))
        sim.wait_for(lambda: sim.ports[2].state == FXS_RINGING, 5.0)
        c.hangup(cc)
        sim.on_hook(0)
        b.wait_state(calls[0], "DISCONNECTED", timeout=5.0)


def test_a_hardware_file_that_appears_later_is_picked_up(tmp_path: Path,
                                                         boards: tuple[LineBoardSim, LineBoardSim]) -> None:
    sim, _ = boards
    eng = Engine(tmp_path / "engine", persistent=True)
    with eng.running(), PjPhone("a") as a:
        status, body = eng.api("GET", "/v1/hardware")
        assert status == 200 and not body.get("boards"), body
        _write(eng, [{"device": str(sim.path), "name": "lb0", "ports": {0: {"fxs": "1005"}}}])
        status, body = eng.api("POST", "/v1/reload")
        assert status == 200 and body["hardware"] == ["hardware.yaml started"], body
        _wait(lambda: (_board(eng, "lb0") or {}).get("state") == "up", 5.0, "lb0 up")
        a.register("1001", eng.secret("1001"), "127.0.0.1", eng.sip_port)
        ca = a.call(eng.uri("1005"))
        sim.wait_for(lambda: sim.ports[0].state == FXS_RINGING, 5.0)
        sim.off_hook(0)
        a.wait_state(ca, "CONFIRMED", timeout=5.0)
        a.hangup(ca)
        sim.on_hook(0)
