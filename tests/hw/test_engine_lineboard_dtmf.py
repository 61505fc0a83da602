"""DTMF through the line board (issue 12 finding 7): an analog phone's keys reach a SIP phone as
RFC 4733 events with their durations, and a SIP phone's RFC 4733 keys reach the analog phone
in-band (its leg has no telephone-event), checked by content with Goertzel at the board."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hw.frames import ToneKind
from hw.sim.lineboard import LineBoardSim
from tests.audio import dtmf_digits_settled
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until

DURATION_MS = 200
TOLERANCE_MS = 45


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Engine, LineBoardSim]]:
    """An engine with extensions 1001-1010 and a one-port twin: FXS port 0 is extension 1005."""
    sim = LineBoardSim(("fxs",), link=tmp_path / "ttyACM0").start()
    eng = Engine(tmp_path / "engine", config=default_config(), persistent=True)
    eng.data_dir.mkdir(parents=True, exist_ok=True)
    (eng.data_dir / "hardware.yaml").write_text(yaml.safe_dump({"boards": [{
        "device": str(tmp_path / "ttyACM0"), "name": "lb0", "ports": {0: {"fxs": "1005"}}}]}))
    try:
        eng.start()
        wait_until(lambda: _board(eng)["state"] == "up", 5.0, "board up")
        yield eng, sim
    finally:
        eng.stop()
        sim.close()


def _board(eng: Engine) -> dict[str, Any]:
    status, body = eng.api("GET", "/v1/hardware")
    assert status == 200, body
    return dict(body["boards"][0])


def test_keys_cross_between_an_analog_phone_and_a_sip_phone(rig: tuple[Engine, LineBoardSim]) -> None:
    eng, sim = rig
    with eng.no_tracebacks(), PjPhone("b") as b:
        b.register("1002", eng.secret("1002"), "127.0.0.1", eng.sip_port)
        sim.off_hook(0)
        sim.wait_for(lambda: ToneKind.DIAL in sim.tones(0), 3.0)
        sim.press(0, "1002#")
        cb = b.wait_incoming(timeout=5.0)
        b.answer(cb)
        b.wait_state(cb, "CONFIRMED")
        # analog -> SIP: the board's key reports, re-sent as RFC 4733 with their lengths
        sim.press(0, "47", duration_ms=DURATION_MS, gap_s=0.1)
        wait_until(lambda: len(b.received_dtmf()) >= 2, 5.0, "keys at the SIP phone")
        assert "".join(b.received_dtmf()) == "47"
        durations = wait_until(lambda: len(b.received_dtmf_durations()) >= 2 and b.received_dtmf_durations())
        assert all(abs(d - DURATION_MS) <= TOLERANCE_MS for d in durations), durations
        # SIP -> analog: in-band tones on the port's audio
        sim.clear_recorded(0)
        b.dial_dtmf(cb, "36", duration_ms=DURATION_MS)
        keys = wait_until(lambda: len(got := dtmf_digits_settled(sim.recorded(0), 8000)) >= 2 and got,
                          5.0, "tones at the analog phone")
        sim.on_hook(0)
        b.wait_state(cb, "DISCONNECTED", timeout=5.0)
    assert "".join(d for d, _ in keys) == "36", keys
    assert all(abs(ms - DURATION_MS) <= TOLERANCE_MS for _, ms in keys), keys
