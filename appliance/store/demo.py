"""Demo configuration for a fresh appliance: ten extensions, three agents, two queues, one guarded route.

The reception menu (7000, appliance/ivr/examples/reception.yaml) sends callers to the sales and
support queues; agents log in on any demo phone with *61. Passwords and PINs are random and
shown once.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path

from appliance.store import acd
from appliance.store.db import Store
from appliance.store.models import AgentConfig, Extension, InboundRoute, OutboundRoute, QueueConfig, Trunk

_SECRET_ALPHABET = string.ascii_letters + string.digits
DEMO_TRUNK = "demo-trunk"
DEMO_ROUTE = "national"
DEMO_IVR_NUMBER = "7000"  # dial it from a demo phone to hear the reception menu
DEMO_FLOW = "reception"  # appliance/ivr/examples/reception.yaml, copied to data/flows/ by `plateau run`
DEMO_FLOW_FILE = Path(__file__).resolve().parents[1] / "ivr" / "examples" / f"{DEMO_FLOW}.yaml"
DEMO_SUPERVISOR = "1001"  # may listen / whisper / barge (*70, *71, *72 + agent)
DEMO_AGENTS = (
    ("2001", "Ana", ["english:5", "french:4"]),
    ("2002", "Ben", ["english:3"]),
    ("2003", "Chloe", ["french:5", "english:2"]),
)


@dataclass
class DemoAccounts:
    """What the newcomer needs, shown once: SIP passwords and agent PINs."""

    extensions: dict[str, str] = field(default_factory=dict)  # number -> SIP password
    agent_pins: dict[str, str] = field(default_factory=dict)  # agent id -> PIN

    def __bool__(self) -> bool:
        return bool(self.extensions)


def _secret(length: int = 12) -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(length))


def seed_demo(store: Store) -> DemoAccounts:
    """Create the demo configuration; return its accounts (empty when any extension exists).

    Only 1001 and 1002 may dial out, so the demo does not open a toll-fraud hole.
    """
    created = DemoAccounts()
    with store.transaction():
        if store.extensions():
            return created
        store.put_trunk(Trunk(name=DEMO_TRUNK, host="127.0.0.1", port=5070, enabled=False))
        store.put_outbound_route(
            OutboundRoute(name=DEMO_ROUTE, pattern="_0XXXXXXXXX", trunk=DEMO_TRUNK)
        )
        for n in range(1001, 1011):
            number = str(n)
            created.extensions[number] = _secret()
            store.put_extension(
                Extension(
                    number=number,
                    name=f"Demo {number}",
                    secret=created.extensions[number],
                    dial_permissions=[DEMO_ROUTE] if n in (1001, 1002) else [],
                    voicemail=n == 1001,
                )
            )
        for agent_id, name, skills in DEMO_AGENTS:
            created.agent_pins[agent_id] = "".join(secrets.choice(string.digits) for _ in range(4))
            acd.put_agent(store, AgentConfig(agent_id, name, created.agent_pins[agent_id], skills=skills))
        acd.put_queue(store, QueueConfig(
            "sales", label="Ventes", number="6001", strategy="ring-all", members=["2001", "2002"], wrapup_seconds=10,
            announce_seconds=30, callback_key="1", overflow="voicemail:1001"))
        acd.put_queue(store, QueueConfig(
            "support", label="Réclamations", number="6002", strategy="longest-idle", skills=["french:4"],
            escalations=["after 30s: french:1", "after 90s: any"], wrapup_seconds=15, announce_seconds=30,
            callback_key="1", recording="stereo", survey=True, overflow="voicemail:1001"))
        store.set_setting("acd.supervisors", DEMO_SUPERVISOR)
        store.put_inbound_route(InboundRoute(did=DEMO_IVR_NUMBER, destination=f"ivr:{DEMO_FLOW}"))
    return created


def notice(created: DemoAccounts, sip_address: str) -> list[str]:
    """What `plateau run` and `scripts/cluster up` print once about a demo just created."""
    lines = ["Demo configuration created. SIP accounts (shown once, keep them):"]
    lines += [f"  extension {number}  password {secret}" for number, secret in created.extensions.items()]
    lines.append(f"  register to sip:<extension>@{sip_address} (UDP or TCP)")
    lines.append("Agents (log in from any demo phone: dial *61, then agent number #, then PIN #):")
    lines += [f"  agent {agent_id}  PIN {pin}" for agent_id, pin in created.agent_pins.items()]
    lines.append(f"  dial {DEMO_IVR_NUMBER} for the reception menu (data/flows/{DEMO_FLOW}.yaml): 1 sales queue"
                 " (6001), 2 support queue (6002), 0 operator (1001)")
    return lines
