"""The site's SIP front door in `scripts/cluster`: the one place the local cluster starts Kamailio.

Kamailio itself (its configuration, the launcher, why the registrar stays in the engines) is
`appliance/cluster/kamailio.py`; this module only says which one `scripts/cluster` runs, in front
of which engines, and what the engines behind it are told.
"""
from __future__ import annotations

import time
from pathlib import Path

from appliance.cluster.kamailio import FrontDoor, Kamailio, KamailioError, engines_from, kamailio_binary

Address = tuple[str, int]


def missing() -> str | None:
    """What must be installed before the front door can start (None: nothing)."""
    try:
        kamailio_binary()
    except KamailioError as exc:
        return str(exc)
    return None


def engine_args(front: Address) -> list[str]:
    """Extra `plateau run` arguments for an engine behind the front door at FRONT: trust its
    X-Plateau-Source header, so a scanner's wrong passwords block the scanner, not Kamailio."""
    return ["--front-door", front[0]]


def start(run_dir: Path, listen: Address, engines: list[Address]) -> int:
    """Start Kamailio on LISTEN with ENGINES as its dispatcher set (configuration, runtime files
    and log in RUN_DIR); return its pid once it answers OPTIONS. It runs in a session of its own
    and outlives the caller: `scripts/cluster down` stops it by that pid's process group."""
    door = FrontDoor(listen[0], listen[1], engines_from([f"{h}:{p}" for h, p in engines]), run_dir)
    kam = Kamailio(door).start()
    if kam.pid is None:
        raise KamailioError("kamailio did not start")
    try:
        _wait_for_engines(kam, {(h, p) for h, p in engines})
    except KamailioError:
        kam.stop()
        raise
    return kam.pid


def _wait_for_engines(kam: Kamailio, engines: set[Address], timeout: float = 20.0) -> None:
    """Until every engine is in the dispatcher's active set: Kamailio answering its own OPTIONS
    is not enough, it takes an engine in once that engine has answered a keepalive (a REGISTER
    sent before then got "503 no engine")."""
    deadline = time.monotonic() + timeout
    while (active := kam.active_engines()) != engines:
        if time.monotonic() > deadline:
            missing = ", ".join(f"{h}:{p}" for h, p in sorted(engines - active))
            raise KamailioError(f"engines not taken in by Kamailio in {timeout:g} s: {missing}")
        time.sleep(0.1)
