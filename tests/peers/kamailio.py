"""Kamailio in front of given engines, for tests: the repository's own configuration on free ports.

`front_door(tmp_path, engines)` starts Kamailio (appliance/cluster/kamailio.py renders and checks
the configuration, then waits until it answers OPTIONS) on 127.0.0.2 at a free port, with the
engines as its dispatcher set, and stops it, its workers included, when the block ends.
127.0.0.2, not the phones' 127.0.0.1: an engine trusts the front door's address
(``--front-door``), which must not be the address of the phones it counts failures of.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance.cluster.kamailio import EngineHop, FrontDoor, Kamailio
from tests.peers.engine import Engine, free_port


def hop(engine: Engine) -> EngineHop:
    """An engine as a dispatcher destination (its SIP address over UDP)."""
    return EngineHop(engine.sip_ip, engine.sip_port)


FRONT_DOOR_IP = "127.0.0.2"  # Linux routes all of 127/8 on lo


def behind_front_door(engine: Engine) -> Engine:
    """``engine`` told to trust the front door's X-Plateau-Source (before it starts)."""
    engine.extra_args += ["--front-door", FRONT_DOOR_IP]
    return engine


@contextmanager
def front_door(run_dir: Path, engines: Sequence[Engine | EngineHop], **limits: Any) -> Iterator[Kamailio]:
    """A running Kamailio on 127.0.0.2:<free port> in front of ``engines``; stopped on exit."""
    door = FrontDoor(FRONT_DOOR_IP, free_port(host=FRONT_DOOR_IP),
                     tuple(e if isinstance(e, EngineHop) else hop(e) for e in engines), Path(run_dir), **limits)
    with Kamailio(door).running() as kam:
        yield kam
