"""A carrier call answered by an IVR flow: spoken prompts, keys by RFC 4733 and in-band, routing on."""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.audio import read_wav, write_dtmf_wav
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone

DID = "+33140000100"
FLOW = """
name: reception
version: 1
start: identify
nodes:
  identify:
    type: lookup_caller
    next: menu
  menu:
    type: menu
    prompt: "say: For Bob press 1. For the support desk press 2."
    options:
      1: to_bob
      2: support
    timeout: 8
    max_retries: 1
    on_invalid: goodbye
    on_timeout: goodbye
  support:
    type: menu
    prompt: "say: For Carol press 3."
    options:
      3: to_carol
    timeout: 8
    max_retries: 1
    on_invalid: goodbye
    on_timeout: goodbye
  to_bob:
    type: route
    target: extension:1002
  to_carol:
    type: route
    target: extension:1003
  goodbye:
    type: hangup
"""


@pytest.fixture
def carrier() -> Iterator[PjPhone]:
    with PjPhone("carrier") as phone:
        yield phone


@pytest.fixture
def pbx(tmp_path: Path, carrier: PjPhone) -> Iterator[Engine]:
    cfg = default_config()
    cfg["trunks"] = [{"name": "carrier", "host": "127.0.0.1", "port": carrier.sip_port}]
    cfg["inbound_routes"] = [{"did": DID, "destination": "ivr:reception"},
                             {"did": "7000", "destination": "ivr:reception"}]
    eng = Engine(tmp_path / "engine", config=cfg)
    eng.data_dir.mkdir(parents=True, exist_ok=True)
    (eng.data_dir / "flows").mkdir(exist_ok=True)
    (eng.data_dir / "flows" / "reception.yaml").write_text(FLOW)
    with eng.running():
        yield eng


def test_spoken_menu_and_rfc4733_key_reach_the_extension(pbx: Engine, carrier: PjPhone, tmp_path: Path) -> None:
    heard = tmp_path / "ivr.wav"
    with PjPhone("bob", auto_answer=True) as bob:
        bob.register("1002", pbx.secret("1002"), "127.0.0.1", pbx.sip_port)
        call = carrier.call(pbx.uri(DID), record_wav=heard)
        carrier.wait_state(call, "CONFIRMED")  # the flow answers
        carrier.wait_rx_audio(call, 2.0)
        carrier.stop_record(call)
        carrier.dial_dtmf(call, "1")
        bob.wait_state(0, "CONFIRMED", timeout=8.0)
        _, calls = pbx.api("GET", "/v1/calls")
        assert len(calls) == 1 and calls[0]["state"] == "up"
        carrier.hangup(call)
        bob.wait_state(0, "DISCONNECTED")
    db = sqlite3.connect(pbx.data_dir / "plateau.db")
    assert db.execute("SELECT number FROM contacts").fetchall() == [("carrier",)]  # a new caller is recorded
    db.close()
    rate, speech = read_wav(heard)
    # The spoken prompt (espeak-ng) reached the caller: real energy, not the silence of an idle leg.
    assert float(np.sqrt((speech.astype(float) ** 2).mean())) > 300


def test_two_level_menu_walked_with_inband_keys(pbx: Engine, carrier: PjPhone, tmp_path: Path) -> None:
    keys = write_dtmf_wav(tmp_path / "keys.wav", "2", lead_s=0.3, tail_s=1.0)
    second = write_dtmf_wav(tmp_path / "second.wav", "3", lead_s=0.3, tail_s=10.0)
    with PjPhone("carol", auto_answer=True) as carol:
        carol.register("1003", pbx.secret("1003"), "127.0.0.1", pbx.sip_port)
        call = carrier.call(pbx.uri(DID))
        carrier.wait_state(call, "CONFIRMED")
        time.sleep(0.5)  # kept (both): keys before a menu's prompt starts are flushed, and the API has no prompt state
        carrier.play(call, keys, loop=False)  # in-band "2" interrupts the first menu's prompt
        time.sleep(2.0)
        carrier.play(call, second, loop=False)  # then "3" in the second-level menu
        carol.wait_state(0, "CONFIRMED", timeout=12.0)
        carrier.hangup(call)
        carol.wait_state(0, "DISCONNECTED")


def test_a_desk_phone_dials_the_flow_by_its_number(pbx: Engine) -> None:
    with PjPhone("alice") as alice, PjPhone("bob", auto_answer=True) as bob:
        alice.register("1001", pbx.secret("1001"), "127.0.0.1", pbx.sip_port)
        bob.register("1002", pbx.secret("1002"), "127.0.0.1", pbx.sip_port)
        call = alice.call(pbx.uri("7000"))
        alice.wait_state(call, "CONFIRMED")
        time.sleep(0.5)  # kept: the menu's prompt starts before its key (earlier keys are flushed)
        alice.dial_dtmf(call, "1")
        bob.wait_state(0, "CONFIRMED", timeout=8.0)
        assert bob.incoming_info(0)["remote_uri"].startswith("sip:1001@")
        alice.hangup(call)
        bob.wait_state(0, "DISCONNECTED")
