"""Demo configuration for a fresh appliance: ten extensions, one guarded route."""

from __future__ import annotations

import secrets
import string

from appliance.store.db import Store
from appliance.store.models import Extension, InboundRoute, OutboundRoute, Trunk

_SECRET_ALPHABET = string.ascii_letters + string.digits
DEMO_TRUNK = "demo-trunk"
DEMO_ROUTE = "national"
DEMO_IVR_NUMBER = "7000"  # dial it from a demo phone to hear the reception menu
DEMO_FLOW = "reception"  # appliance/ivr/examples/reception.yaml, copied to data/flows/ by `plateau run`


def _secret(length: int = 12) -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(length))


def seed_demo(store: Store) -> dict[str, str]:
    """Create demo extensions 1001-1010, a disabled trunk and a route; return number->secret.

    Does nothing (returns {}) when any extension already exists. Only 1001 and 1002
    may dial out, so the demo does not open a toll-fraud hole.
    """
    with store.transaction():
        if store.extensions():
            return {}
        store.put_trunk(Trunk(name=DEMO_TRUNK, host="127.0.0.1", port=5070, enabled=False))
        store.put_outbound_route(
            OutboundRoute(name=DEMO_ROUTE, pattern="_0XXXXXXXXX", trunk=DEMO_TRUNK)
        )
        created: dict[str, str] = {}
        for n in range(1001, 1011):
            number = str(n)
            created[number] = _secret()
            store.put_extension(
                Extension(
                    number=number,
                    name=f"Demo {number}",
                    secret=created[number],
                    dial_permissions=[DEMO_ROUTE] if n in (1001, 1002) else [],
                )
            )
        store.put_inbound_route(InboundRoute(did=DEMO_IVR_NUMBER, destination=f"ivr:{DEMO_FLOW}"))
    return created
