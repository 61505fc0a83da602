"""Where a call can be sent: destination kind -> the handler that takes the call there.

The dialplan decides *which* destination a number or a configured target means (`dialplan.py`:
`ToExtension`, `ToTrunk`, `ToIvr`, `ToQueue`, `ToVoicemail`, `Refused`); this registry decides
*what happens* to a call sent there. Adding a kind (call parking, a conference) is a new
destination dataclass, its handler written with `Call`'s public operations, and one
`register` call here: `Call` is not edited (docs/ARCHITECTURE.md, "Adding a destination kind").
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from appliance.pbx.call import MAX_FORWARD_HOPS, Call, CallState
from appliance.pbx.channel import BUSY, NO_ANSWER, UNAVAILABLE, Cause
from appliance.pbx.dialplan import Refused, ToExtension, ToIvr, ToQueue, ToTrunk, ToVoicemail
from appliance.pbx.permission import Principal

log = logging.getLogger("plateau.pbx")

D = TypeVar("D")
Handler = Callable[[Call, D, int], None]  # (the call, the destination, forwarding hops so far)


class Destinations:
    """The handlers of the destination kinds, by the destination's class."""

    def __init__(self) -> None:
        self._handlers: dict[type, Callable[[Call, Any, int], None]] = {}

    def register(self, kind: type[D], handler: Handler[D]) -> None:
        """Send calls for destinations of class `kind` to `handler`; one handler per kind."""
        if kind in self._handlers:
            raise ValueError(f"destination kind {kind.__name__} already has a handler")
        self._handlers[kind] = handler

    def kinds(self) -> list[type]:
        return list(self._handlers)

    def route(self, call: Call, dest: object, hops: int) -> None:
        """Take `call` to `dest`. A kind nobody registered is a fault of this build, not of the
        caller: the call fails with 503 and the fault is logged."""
        handler = self._handlers.get(type(dest))
        if handler is None:
            log.error("%s: no handler for destination %r", call.id, dest)
            call.fail(Cause(503, "Service Unavailable"))
            return
        handler(call, dest, hops)


def standard() -> Destinations:
    """The kinds a PBX has today: extension, trunk (external), IVR flow, queue, voicemail, refusal."""
    reg = Destinations()
    reg.register(Refused, _refused)
    reg.register(ToIvr, lambda call, dest, hops: call.to_ivr(dest.flow, hops))
    reg.register(ToQueue, lambda call, dest, hops: call.to_queue(dest.queue, hops))
    reg.register(ToVoicemail, lambda call, dest, hops: call.to_voicemail(dest.mailbox))
    reg.register(ToTrunk, _trunk)
    reg.register(ToExtension, _extension)
    return reg


def _refused(call: Call, dest: Refused, hops: int) -> None:
    log.info("%s: %s", call.id, dest.why)
    call.fail(dest.cause)


def _trunk(call: Call, dest: ToTrunk, hops: int) -> None:
    call.dial([call.pbx.channel_for_trunk(dest, call.a.caller)], timeout=120.0, on_fail=call.fail)


def _extension(call: Call, dest: ToExtension, hops: int) -> None:
    """Ring the extension's devices, applying do-not-disturb and its forwarding rules."""
    ext = dest.extension
    if ext.forward_always and hops < MAX_FORWARD_HOPS:
        log.info("%s: %s forwards all calls to %s", call.id, ext.number, ext.forward_always)
        call.route_number(ext.forward_always, Principal.extension(ext), hops + 1)  # as the forwarder
        return
    if ext.dnd:
        _after_failure(call, dest, BUSY, hops)
        return
    channels = call.pbx.channels_for_extension(ext, call.a.caller)
    if not channels:
        _after_failure(call, dest, UNAVAILABLE, hops)
        return
    call.dial(channels, timeout=float(ext.noanswer_seconds),
              on_fail=lambda cause: _after_failure(call, dest, cause, hops))


def _after_failure(call: Call, dest: ToExtension, cause: Cause, hops: int) -> None:
    """Apply the callee's forward-on-busy / forward-on-no-answer before giving up."""
    if call.state in (CallState.ENDED, CallState.FAILING):
        return
    ext = dest.extension
    target = None
    if cause.code in (486, 600):
        target = ext.forward_busy
    elif cause in (NO_ANSWER, UNAVAILABLE) or cause.code in (408, 480):
        target = ext.forward_noanswer
    if target and hops < MAX_FORWARD_HOPS:
        log.info("%s: %s %s, forwarding to %s", call.id, ext.number, cause.reason, target)
        call.route_number(target, Principal.extension(ext), hops + 1)  # authorised as the forwarder
        return
    if ext.voicemail and cause.code in (408, 480, 486, 600, 603):
        log.info("%s: %s %s, to voicemail", call.id, ext.number, cause.reason)
        call.to_voicemail(ext.number)
        return
    call.fail(cause)
