"""Who a call is placed for, and the one check that decides whether it may go there.

Every call the PBX places on someone's behalf (a dialled number, a forward, a blind or
attended transfer, a queue callback, a click-to-call, a campaign attempt, a supervisor's
ring) is authorised as a `Principal`, by `refusal()`. There is no "nobody": a request
whose origin is unknown gets `Principal.unknown()`, which may reach nothing outside.

This is the toll-fraud guard of issue 12: a trunk leg used to transfer with no caller at
all, and "no caller" meant "every route".
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# Per-trunk transfer rights, in the settings table: "trunk.<name>.transfer" (its values and their
# check, which the YAML import applies: appliance/schema/settings.py).
from appliance.schema.settings import TRUNK_TRANSFER_INTERNAL as INTERNAL
from appliance.schema.settings import TRUNK_TRANSFER_SETTING as TRUNK_TRANSFER_SETTING
from appliance.store.models import Extension, OutboundRoute


class Kind(Enum):
    EXTENSION = "extension"  # a desk phone, authenticated by digest or by its board port
    TRUNK = "trunk"  # the far side of a call that came in (or went out) on a trunk
    SYSTEM = "system"  # the PBX itself: queue callback, campaign, IVR route, supervision
    UNKNOWN = "unknown"  # a leg with no known origin: nothing outside


@dataclass(frozen=True)
class Principal:
    """The party a call is placed for: what it may reach and how it is presented."""

    kind: Kind
    name: str  # extension number, trunk name, or what the system does ("callback", "campaign:x")
    routes: frozenset[str] = frozenset()  # outbound routes it may use
    internal: bool = True  # may reach extensions, queues, IVRs, voicemail
    numbers: frozenset[str] = frozenset()  # exact numbers an admin configured (an IVR route)
    caller_id: str | None = None  # the extension's external caller ID

    @classmethod
    def extension(cls, ext: Extension) -> Principal:
        return cls(Kind.EXTENSION, ext.number, frozenset(ext.dial_permissions),
                   caller_id=ext.external_caller_id)

    @classmethod
    def trunk(cls, trunk: str, transfer_setting: str | None) -> Principal:
        """A trunk leg (only ever asks by REFER, or INVITE with Replaces), per its site setting."""
        rights = {r.strip() for r in (transfer_setting or "off").split(",") if r.strip()}
        internal = INTERNAL in rights
        routes = frozenset(rights - {INTERNAL, "off"}) if internal else frozenset()
        return cls(Kind.TRUNK, trunk, routes, internal=internal)

    @classmethod
    def system(cls, purpose: str, routes: frozenset[str] = frozenset(),
               numbers: frozenset[str] = frozenset()) -> Principal:
        return cls(Kind.SYSTEM, purpose, routes, numbers=numbers)

    @classmethod
    def unknown(cls, what: str) -> Principal:
        return cls(Kind.UNKNOWN, what, internal=True)

    def describe(self) -> str:
        return f"{self.kind.value} {self.name}"


def refusal(who: Principal, route: OutboundRoute | None, number: str = "") -> str | None:
    """Why `who` may not place a call to `number` (None: it may).

    `route` None means an internal destination (extension, queue, IVR, voicemail); otherwise the
    outbound route the number matched (for a campaign, the route named after it).
    """
    if route is None:
        if who.internal:
            return None
        return f"{who.describe()} may not reach internal destinations"
    if route.name in who.routes or (number and number in who.numbers):
        return None
    return f"{who.describe()} may not use route {route.name}"
