"""HardwareManager.health(): one PartHealth per hw thread, the names the engine's supervisor reads."""
from __future__ import annotations

import types
from pathlib import Path

import yaml

from hw.manager import HardwareManager
from hw.sim.lineboard import LineBoardSim
from hw.sim.modem import ModemTwin
from tests.peers.polling import wait_until


def test_health_lists_every_link_modem_and_relay_thread(tmp_path: Path) -> None:
    with LineBoardSim(("fxs",), link=tmp_path / "ttyACM0") as sim:
        twin = ModemTwin().start()
        path = tmp_path / "hardware.yaml"
        board = {"device": str(sim.path), "name": "lb0", "ports": {0: {"fxs": "1005"}}}
        path.write_text(yaml.safe_dump({"boards": [board], "modems": [{"device": twin.url, "did": "0140000001"}]}))
        mgr = HardwareManager(types.SimpleNamespace(factory=None), None, lambda _d, _f: None, path,
                              call_soon=lambda _fn: None)
        try:
            mgr.start()
            wait_until(lambda: mgr.boards[0].link.is_up, 5.0, "board up")
            health = {h.name: h for h in mgr.health()}
            assert set(health) == {"hw-audio-relay", f"hw-link-rx {sim.path}", f"hw-link-keep {sim.path}",
                                   f"modem-ctrl {twin.url}", f"modem-reader {twin.url}"}
            wait_until(lambda: all(h.alive for h in mgr.health()), 5.0, "every thread alive")
            assert all(h.deaths == 0 and not h.fatal for h in mgr.health())
        finally:
            mgr.stop()
            twin.close()
