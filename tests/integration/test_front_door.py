"""Kamailio as the site's front door (issue 14, item 2): real Kamailio, real engines on one
PostgreSQL, real pjsua2 phones, all on loopback.

The phones know one address, Kamailio's (127.0.0.2); the engines (127.0.0.1, free ports) are its
dispatcher set, keep the registrations with their Path in the shared store, and reach the phones
back through Kamailio.
"""
from __future__ import annotations

from pathlib import Path

from appliance.store.db import Store
from tests.peers.engine import Engine
from tests.peers.kamailio import FRONT_DOOR_IP, behind_front_door, front_door
from tests.peers.pjsua import PjPhone


def _engine(tmp_path: Path, name: str, db: str) -> Engine:
    return behind_front_door(Engine(tmp_path / name, db=db, extra_args=["--node", name]))


def test_a_registration_through_kamailio_is_stored_with_its_path(tmp_path: Path, postgres_url: str) -> None:
    one = _engine(tmp_path, "one", postgres_url)
    with one.running(), front_door(tmp_path / "kamailio", [one]) as kam:
        with PjPhone("a") as a:
            a.register("1001", one.secret("1001"), FRONT_DOOR_IP, kam.door.port)
            with Store(postgres_url) as store:
                [reg] = store.registrations(aor="1001")
    # RFC 3327: the front door put itself on the path, with the phone's own address as received.
    assert reg.path.startswith(f"<sip:{FRONT_DOOR_IP}:{kam.door.port};lr;received=sip:127.0.0.1")
    assert (reg.source_host, reg.transport) == ("127.0.0.1", "udp")  # the phone's, not Kamailio's
    assert reg.source_port != kam.door.port
