"""The site's SIP front door in `scripts/cluster`: the one place the local cluster starts Kamailio.

Kamailio itself (its configuration, the launcher, why the registrar stays in the engines) is
`appliance/cluster/kamailio.py`; this module only says which one `scripts/cluster` runs, in front
of which engines, and what the engines behind it are told.
"""
from __future__ import annotations

import time
from pathlib import Path

from appliance.cluster.kamailio import FrontDoor, Kamailio, KamailioError, engines_from, kamailio_binary, options_ping

Address = tuple[str, int]


def missing() -> str | None:
    """What must be installed before the front door can start (None: nothing)."""
    try:
        kamailio_binary()
    except KamailioError as exc:
        return str(exc)
    return None


def engine_args(front: Address) -> list[str]:
    """Extra `plateau run` arguments for an engine behind the front door at FRONT (none so far:
    the engines need nothing of Kamailio's address to serve calls it relays)."""
    return []


def start(run_dir: Path, listen: Address, engines: list[Address]) -> int:
    """Start Kamailio on LISTEN with ENGINES as its dispatcher set (configuration, runtime files
    and log in RUN_DIR); return its pid once it answers OPTIONS. It runs in a session of its own
    and outlives the caller: `scripts/cluster down` stops it by that pid's process group."""
    door = FrontDoor(listen[0], listen[1], engines_from([f"{h}:{p}" for h, p in engines]), run_dir)
    kam = Kamailio(door).start()
    if kam.pid is None:
        raise KamailioError("kamailio did not start")
    try:
        _wait_for_engines(listen, len(engines))
    except KamailioError:
        kam.stop()
        raise
    return kam.pid


def _wait_for_engines(listen: Address, count: int, timeout: float = 20.0) -> None:
    """Until requests get past the front door: Kamailio answering its own OPTIONS is not enough,
    its dispatcher takes an engine in only once that engine has answered a keepalive (a REGISTER
    sent before then got "503 no engine"). An OPTIONS to a user goes through to an engine; each
    has its own Call-ID, so its hash picks any engine of the set."""
    deadline = time.monotonic() + timeout
    good = 0
    while good < 2 * count:
        code = options_ping(listen[0], listen[1], timeout=1.0, user="ping")
        good = good + 1 if code is not None and code != 503 else 0
        if time.monotonic() > deadline:
            raise KamailioError(f"no engine reachable through the front door in {timeout:g} s (last answer {code})")
        if not good:
            time.sleep(0.1)
