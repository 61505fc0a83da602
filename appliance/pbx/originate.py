"""Click-to-call and supervisor call-outs: ring the originating extension first; its answer
becomes the A leg of a normal call to the number asked for."""
from __future__ import annotations

from appliance.pbx.call import Call
from appliance.pbx.call_factory import CallFactory
from appliance.pbx.channel import NOT_FOUND, Cause, Channel, Party
from appliance.store.models import Extension


def originate(calls: CallFactory, ext: Extension, channels: list[Channel], to: str) -> Call:
    """Ring `channels` (the devices of `ext`); the one that answers calls `to` as `ext`."""
    call = calls.new_call(_FirstLeg(), to, "internal", ext)
    call.ring_originator(channels, float(ext.noanswer_seconds))
    return call


class _FirstLeg(Channel):
    """Stands in for the A leg until the originating extension answers."""

    technology = "originate"

    def __init__(self) -> None:
        super().__init__("outbound", Party(""), "")

    def ring(self) -> None: ...

    def progress(self) -> None: ...

    def answer(self) -> None: ...

    def hangup(self, cause: Cause = NOT_FOUND) -> None: ...

    def notify_transfer(self, status: int, reason: str, final: bool) -> None: ...

    def remote_description(self) -> str:
        return ""
