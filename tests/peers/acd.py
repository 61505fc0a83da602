"""Helpers for engine tests of the contact centre: a queue configuration, registered phones,
agent states through the control API, and the queue log read from the database."""
from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone

CALLER, ANA_PHONE, BOB_PHONE = "1001", "1002", "1003"


def queue_config(**overrides: Any) -> dict[str, Any]:
    """Extensions 1001-1010, agents 2001 (Ana, french 5) and 2002 (Bob, french 2), queue support on 6000."""
    cfg: dict[str, Any] = default_config()
    cfg["agents"] = [
        {"agent_id": "2001", "name": "Ana", "pin": "1111", "skills": ["french:5"]},
        {"agent_id": "2002", "name": "Bob", "pin": "2222", "skills": ["french:2"]},
    ]
    queue = {"name": "support", "number": "6000", "strategy": "longest-idle", "skills": ["french:4"],
             "escalations": ["after 6s: french:1"], "wrapup_seconds": 2, "announce_seconds": 0,
             "join_empty": True, "leave_empty": False, "callback_key": "1"}
    queue.update(overrides)
    cfg["queues"] = [queue]
    return cfg


@contextlib.contextmanager
def phone(pbx: Engine, name: str, number: str, **kw: Any) -> Iterator[PjPhone]:
    """A pjsua2 phone registered as `number`."""
    with PjPhone(name, **kw) as p:
        p.register(number, pbx.secret(number), "127.0.0.1", pbx.sip_port)
        yield p


def agent(pbx: Engine, agent_id: str) -> dict[str, Any]:
    _, agents = pbx.api("GET", "/v1/agents")
    return next(a for a in agents if a["agent"] == agent_id)


def wait_agent(pbx: Engine, agent_id: str, state: str, timeout: float = 8.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = agent(pbx, agent_id)
        if info["state"] == state:
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"agent {agent_id} is {info['state']}, not {state}")
        time.sleep(0.1)


def queue_log(pbx: Engine) -> list[tuple[str, str, int | None, float | None]]:
    """(event, agent, position, wait_s) of every queue-log row, oldest first."""
    db = sqlite3.connect(pbx.data_dir / "plateau.db")
    try:
        return db.execute("SELECT event, agent, position, wait_s FROM queue_log ORDER BY id").fetchall()
    finally:
        db.close()


def login_by_feature_code(pbx: Engine, p: PjPhone, agent_id: str, pin: str) -> None:
    """Log `agent_id` in on the phone `p` by dialling *61, then the agent number and PIN."""
    call = p.call(pbx.uri("*61"))
    p.wait_state(call, "CONFIRMED")
    # Kept: the API shows no prompt state, and keys pressed before a prompt starts are flushed
    # (as on any IVR), so the test paces the keys the way a person following the prompts would.
    time.sleep(0.5)
    p.dial_dtmf(call, agent_id + "#")
    time.sleep(1.5)
    p.dial_dtmf(call, pin + "#")
    p.wait_state(call, "DISCONNECTED", timeout=10.0)  # the PBX confirms and hangs up


@contextlib.contextmanager
def engine_with_flows(work_dir: Any, config: dict[str, Any], flows: dict[str, str]) -> Iterator[Engine]:
    """A started engine whose data/flows holds `flows` (name -> YAML), stopped on exit."""
    eng = Engine(work_dir, config=config)
    (eng.data_dir / "flows").mkdir(parents=True, exist_ok=True)
    for name, text in flows.items():
        (eng.data_dir / "flows" / f"{name}.yaml").write_text(text)
    with eng.running():
        yield eng
