"""Where a dialled number goes: an extension, a trunk, or a refusal.

Outbound routes use Asterisk dial patterns; an extension may only use the routes named
in its `dial_permissions` (the toll-fraud guard: a stolen phone password must not be
able to call premium numbers abroad).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from appliance.pbx.channel import FORBIDDEN, NOT_FOUND, Cause
from appliance.pbx.permission import Principal, refusal
from appliance.store.models import Extension, InboundRoute, OutboundRoute, Trunk
from appliance.store.patterns import pattern_to_regex
from appliance.store.validation import IVR_PREFIX, QUEUE_PREFIX, VOICEMAIL_PREFIX


MIN_DID_SUFFIX = 6


@dataclass(frozen=True)
class ToExtension:
    extension: Extension


@dataclass(frozen=True)
class ToTrunk:
    route: OutboundRoute
    trunk: Trunk
    number: str  # after strip/prepend
    caller_id: str | None  # number presented to the carrier


@dataclass(frozen=True)
class ToIvr:
    flow: str  # the flow's name: data/flows/<name>.yaml


@dataclass(frozen=True)
class ToQueue:
    queue: str


@dataclass(frozen=True)
class ToVoicemail:
    mailbox: str  # an extension number


@dataclass(frozen=True)
class Refused:
    cause: Cause
    why: str


Destination = ToExtension | ToTrunk | ToIvr | ToQueue | ToVoicemail | Refused

# An IVR flow's route node names its target by kind (ivr/flow.py's RouteTarget): these kinds are a
# destination of that kind; "extension" and "external" are a number to route.
FLOW_TARGETS: dict[str, Callable[[str], Destination]] = {"flow": ToIvr, "queue": ToQueue, "voicemail": ToVoicemail}


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return pattern_to_regex(pattern)


def _specificity(pattern: str) -> tuple[int, int]:
    # Asterisk prefers the most specific match: literals before classes before wildcards.
    if not pattern.startswith("_"):
        return (0, -len(pattern))
    wild = pattern.endswith((".", "!"))
    return (1 if not wild else 2, -len(pattern))


def match_outbound(number: str, routes: list[OutboundRoute]) -> OutboundRoute | None:
    """The route for `number`: lowest priority value first, then the most specific pattern."""
    candidates = [r for r in routes if _regex(r.pattern).fullmatch(number)]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (r.priority, _specificity(r.pattern), r.name))


class Dialplan:
    """Resolves numbers against a snapshot of the configuration."""

    def __init__(
        self,
        extensions: dict[str, Extension],
        trunks: dict[str, Trunk],
        outbound: list[OutboundRoute],
        inbound: list[InboundRoute],
        queue_numbers: dict[str, str] | None = None,
    ) -> None:
        self.extensions = extensions
        self.trunks = trunks
        self.outbound = outbound
        self.inbound = {r.did: r.destination for r in inbound}
        self.queue_numbers = dict(queue_numbers or {})  # internal number -> queue name

    def resolve(self, number: str, who: Principal) -> ToExtension | ToTrunk | ToQueue | Refused:
        """Resolve a number dialled by, or for, `who`; permission.refusal() decides whether it may."""
        queue = self.queue_numbers.get(number)
        ext = self.extensions.get(number)
        internal: ToExtension | ToQueue | None = None
        if queue is not None and ext is None:
            internal = ToQueue(queue)
        elif ext is not None:
            if not ext.enabled:
                return Refused(NOT_FOUND, f"extension {number} is disabled")
            internal = ToExtension(ext)
        if internal is not None:
            why = refusal(who, None, number)
            return internal if why is None else Refused(FORBIDDEN, why)
        route = match_outbound(number, self.outbound)
        if route is None:
            return Refused(NOT_FOUND, f"no extension or route for {number}")
        why = refusal(who, route, number)
        if why is not None:
            return Refused(FORBIDDEN, why)
        trunk = self.trunks.get(route.trunk)
        if trunk is None or not trunk.enabled:
            return Refused(Cause(503, "Service Unavailable"), f"trunk {route.trunk} is not available")
        digits = number[route.strip:]
        presented = route.caller_id or who.caller_id or trunk.caller_id
        return ToTrunk(route, trunk, route.prepend + digits, presented)

    def resolve_did(self, did: str) -> Destination:
        """Route a call arriving on a trunk by the number it was sent to."""
        dest = self.inbound.get(did)
        if dest is None and len(did) >= MIN_DID_SUFFIX:
            # Carriers differ in the number form they send (+33 1..., 01..., or only the last
            # digits): a long enough common tail still identifies the DID; a short one would not.
            for known, target in self.inbound.items():
                if len(known) >= MIN_DID_SUFFIX and (known.endswith(did) or did.endswith(known)):
                    dest = target
                    break
        if dest is None:
            return Refused(NOT_FOUND, f"no inbound route for DID {did}")
        return self.destination(dest)

    def destination(self, dest: str) -> Destination:
        """A configured destination (inbound route, queue overflow): extension, ivr:, queue:, voicemail:."""
        if dest.startswith(IVR_PREFIX):
            return ToIvr(dest[len(IVR_PREFIX):])
        if dest.startswith(QUEUE_PREFIX):
            return ToQueue(dest[len(QUEUE_PREFIX):])
        if dest.startswith(VOICEMAIL_PREFIX):
            return ToVoicemail(dest[len(VOICEMAIL_PREFIX):])
        ext = self.extensions.get(dest)
        if ext is None or not ext.enabled:
            return Refused(NOT_FOUND, f"destination {dest} is not a known extension")
        return ToExtension(ext)

    def ivr_number(self, number: str) -> str | None:
        """The flow behind `number` when an inbound route sends it to an IVR: phones may dial it
        too (e.g. 7000 for the reception menu), which is how admins test a flow from a desk."""
        dest = self.inbound.get(number)
        if dest is not None and dest.startswith(IVR_PREFIX):
            return dest[len(IVR_PREFIX):]
        return None

    def trunk_for_source(self, host: str, port: int) -> Trunk | None:
        """The trunk a request came from, recognised by its source address and port.

        The port counts too: on a small site a trunk peer may share an address with
        phones, and a phone must never be taken for a trunk (trunk calls skip digest).
        """
        for trunk in self.trunks.values():
            if trunk.enabled and trunk.host == host and trunk.port == port:
                return trunk
        return None
