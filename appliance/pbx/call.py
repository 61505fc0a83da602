"""A call: the party that started it, the party it reached, and the bridge between them.

The call owns the routing decisions a PBX user expects: do-not-disturb, forwarding
(unconditional, on busy, on no answer, including out through a trunk), tones the caller
hears when it fails, music on hold, blind and attended transfer, and its CDR row.
"""
from __future__ import annotations

import enum
import itertools
import logging
from typing import TYPE_CHECKING
from collections.abc import Callable

from appliance.ivr.flow import FlowError, RouteTarget
from appliance.pbx.channel import (
    BUSY,
    CANCELLED,
    NO_ANSWER,
    NORMAL_CLEARING,
    UNAVAILABLE,
    Cause,
    Channel,
    ChannelEvent,
    ChannelState,
    DtmfReceived,
    HoldChanged,
    HungUp,
    MediaTimeout,
    PlaybackEnded,
    TransferRequested,
)
from appliance.pbx.dialplan import Refused, ToExtension, ToIvr, ToTrunk
from appliance.pbx.fork import Fork, TimerHandle
from appliance.store.models import Extension

if TYPE_CHECKING:
    from appliance.ivr.session import IvrSession
    from appliance.pbx.switchboard import Switchboard
    from appliance.pbx.transfer import BlindTransfer

log = logging.getLogger("plateau.pbx")
_ids = itertools.count(1)
MAX_FORWARD_HOPS = 3


class CallState(enum.Enum):
    ROUTING = "routing"
    IVR = "ivr"  # answered by a flow: the caller is choosing where to go
    RINGING = "ringing"
    UP = "up"
    FAILING = "failing"  # the caller hears a busy/congestion tone before release
    ENDED = "ended"


_ALLOWED = {
    CallState.ROUTING: {CallState.RINGING, CallState.UP, CallState.FAILING, CallState.ENDED, CallState.ROUTING,
                        CallState.IVR},
    CallState.IVR: {CallState.ROUTING, CallState.FAILING, CallState.ENDED},
    CallState.RINGING: {CallState.ROUTING, CallState.UP, CallState.FAILING, CallState.ENDED},
    CallState.UP: {CallState.FAILING, CallState.ENDED},
    CallState.FAILING: {CallState.ENDED},
    CallState.ENDED: set(),
}


def disposition_for(cause: Cause, answered: bool, caller_gave_up: bool) -> str:
    """Asterisk-style CDR disposition, what call-centre reports count."""
    if answered:
        return "ANSWERED"
    if caller_gave_up:
        return "CANCELLED"
    if cause.code in (486, 600):
        return "BUSY"
    if cause.code in (408, 480):
        return "NO ANSWER"
    return "FAILED"


class Call:
    """One call between `a` (who started it) and `b` (who it reached)."""

    def __init__(self, pbx: Switchboard, a: Channel, dialed: str, caller_ext: Extension | None,
                 direction: str, via_trunk: str | None = None) -> None:
        self.id = f"call-{next(_ids)}"
        self.pbx = pbx
        self.a = a
        self.b: Channel | None = None
        self.dialed = dialed
        self.caller_ext = caller_ext
        self.direction = direction
        self.via_trunk = via_trunk
        self.state = CallState.ROUTING
        self.fork: Fork | None = None
        self.bridge_id = f"bridge-{self.id}"
        self.answered = False
        self.cdr_id: int | None = None
        self.cause: Cause = NORMAL_CLEARING
        self.caller_gave_up = False
        self.fail_timer: TimerHandle | None = None
        self.transfer: BlindTransfer | None = None
        self.ivr: IvrSession | None = None
        self.variables: dict[str, str] = {}  # what an IVR learnt about the caller (screen pop)
        self._adopt(a)

    # -- state machine ------------------------------------------------------------------
    def _to(self, new: CallState) -> None:
        if new not in _ALLOWED[self.state]:
            raise RuntimeError(f"{self.id}: illegal call transition {self.state.value} -> {new.value}")
        self.state = new

    def _adopt(self, chan: Channel) -> None:
        chan.owner = self
        chan.listener = self._event

    def partner(self, chan: Channel) -> Channel | None:
        if chan is self.a:
            return self.b
        if chan is self.b:
            return self.a
        return None

    # -- routing ----------------------------------------------------------------------------
    def start(self, first_hop_did: bool = False) -> None:
        self.cdr_id = self.pbx.store.cdr_open(
            self.a.dialog_key(), self.a.caller.number, self.a.caller.name, self.dialed,
            self.direction, self.a.created, trunk=self.via_trunk,
        )
        log.info("%s: %s calls %s", self.id, self.a.caller.number, self.dialed,
                 extra={"CALL_ID": self.id, "EXTENSION": self.caller_ext.number if self.caller_ext else ""})
        if first_hop_did:
            self._go(self.pbx.dialplan.resolve_did(self.dialed), hops=0)
        else:
            self._route(self.dialed, self.caller_ext, hops=0)

    def _route(self, number: str, holder: Extension | None, hops: int) -> None:
        flow = self.pbx.dialplan.ivr_number(number)
        if flow is not None and number not in self.pbx.dialplan.extensions:
            self._ivr(flow, hops)
            return
        self._go(self.pbx.dialplan.resolve(number, holder), hops)

    def _go(self, dest: ToExtension | ToTrunk | ToIvr | Refused, hops: int) -> None:
        if isinstance(dest, Refused):
            log.info("%s: %s", self.id, dest.why)
            self._fail(dest.cause)
            return
        if isinstance(dest, ToIvr):
            self._ivr(dest.flow, hops)
            return
        if isinstance(dest, ToTrunk):
            self._dial([self.pbx.channel_for_trunk(dest, self.a.caller)], timeout=120.0,
                       on_fail=self._fail)
            return
        ext = dest.extension
        if ext.forward_always and hops < MAX_FORWARD_HOPS:
            log.info("%s: %s forwards all calls to %s", self.id, ext.number, ext.forward_always)
            self._route(ext.forward_always, ext, hops + 1)
            return
        if ext.dnd:
            self._after_failure(ext, BUSY, hops)
            return
        channels = self.pbx.channels_for_extension(ext, self.a.caller)
        if not channels:
            self._after_failure(ext, UNAVAILABLE, hops)
            return
        self._dial(channels, timeout=float(ext.noanswer_seconds),
                   on_fail=lambda cause: self._after_failure(ext, cause, hops))

    def _ivr(self, flow_name: str, hops: int) -> None:
        """Answer and walk the caller through a flow; its route continues this call's routing."""
        try:
            flow = self.pbx.flow(flow_name)
        except (FlowError, OSError) as exc:
            log.error("%s: IVR flow %s unusable: %s", self.id, flow_name, exc)
            self._fail(Cause(503, "Service Unavailable"))
            return
        self._to(CallState.IVR)
        if not self.a.is_up:
            self.a.answer()
            self.answered = True  # the flow answered: a caller leaving now is not an abandon
            if self.cdr_id is not None:
                self.pbx.store.cdr_answer(self.cdr_id, self.a.answered_at or self.pbx.clock())

        def routed(target: RouteTarget, variables: dict[str, str]) -> None:
            self.ivr = None
            self.variables.update(variables)
            self._to(CallState.ROUTING)
            if target.kind in ("extension", "external"):
                self._route(target.value, None, hops + 1)
            elif target.kind == "flow":
                self._ivr(target.value, hops + 1)
            else:  # queue and voicemail arrive with the contact-centre issue
                log.error("%s: IVR target %s is not available yet", self.id, target)
                self._fail(Cause(503, "Service Unavailable"))

        def hung_up() -> None:
            self.ivr = None
            self.a.hangup(NORMAL_CLEARING)
            self._end(NORMAL_CLEARING, by=None)

        self.ivr = self.pbx.ivr_session(self.a, flow, routed, hung_up)
        self.ivr.start()

    def _after_failure(self, ext: Extension, cause: Cause, hops: int) -> None:
        """Apply the callee's forward-on-busy / forward-on-no-answer before giving up."""
        if self.state in (CallState.ENDED, CallState.FAILING):
            return
        target = None
        if cause.code in (486, 600):
            target = ext.forward_busy
        elif cause in (NO_ANSWER, UNAVAILABLE) or cause.code in (408, 480):
            target = ext.forward_noanswer
        if target and hops < MAX_FORWARD_HOPS:
            log.info("%s: %s %s, forwarding to %s", self.id, ext.number, cause.reason, target)
            if self.state == CallState.RINGING:
                self._to(CallState.ROUTING)
            self._route(target, ext, hops + 1)
            return
        self._fail(cause)

    def _dial(self, channels: list[Channel], timeout: float, on_fail: Callable[[Cause], None]) -> None:
        for chan in channels:
            chan.owner = self
        self.fork = Fork(channels, timeout, self.pbx.schedule, self._on_ringing, self._on_answer, on_fail,
                         on_early_media=self._on_early_media)
        if self.a.is_up:
            self.pbx.media.play(self.a.media_leg, self.pbx.tone("ringback"), True)
        self.fork.start()

    def _on_ringing(self, chan: Channel) -> None:
        if self.state == CallState.ROUTING:
            self._to(CallState.RINGING)
        if self.a.state == ChannelState.EARLY:
            # The caller's phone already plays what we send (a 183 went out, e.g. before a
            # forward): a 180 now would not make it ring back, so we play the ringback tone.
            if chan.state != ChannelState.EARLY:
                self.pbx.media.play(self.a.media_leg, self.pbx.tone("ringback"), True)
        else:
            self.a.ring()

    def _on_early_media(self, chan: Channel) -> None:
        """Let the caller hear the callee side's early media (PSTN ringback, announcements)."""
        if self.a.is_up or self.a.is_down:
            return
        self.a.progress()
        self.pbx.media.stop_play(self.a.media_leg)
        self.pbx.media.bridge(self.bridge_id, [self.a.media_leg, chan.media_leg])

    def _on_answer(self, chan: Channel) -> None:
        self.fork = None
        self.b = chan
        self._adopt(chan)
        if self.a.is_up or self.a.state == ChannelState.EARLY:
            self.pbx.media.stop_play(self.a.media_leg)  # our ringback tone, if we were playing one
        if not self.a.is_up:
            self.a.answer()
        self._to(CallState.UP)
        if self.cdr_id is not None and not self.answered:  # an IVR may have answered already
            self.pbx.store.cdr_answer(self.cdr_id, chan.answered_at or self.a.created)
        self.answered = True
        self._bridge()
        log.info("%s: %s answered %s", self.id, chan.callee, self.a.caller.number,
                 extra={"CALL_ID": self.id, "EXTENSION": chan.extension or ""})

    def _bridge(self) -> None:
        if self.b is None:
            return
        self.pbx.media.bridge(self.bridge_id, [self.a.media_leg, self.b.media_leg])
        self.a.bridge_id = self.b.bridge_id = self.bridge_id

    def _fail(self, cause: Cause) -> None:
        """Give up: the caller hears busy or congestion, then gets the SIP status."""
        if self.state in (CallState.ENDED, CallState.FAILING):
            return
        self.cause = cause
        self.fork = None
        seconds = self.pbx.failure_tone_seconds
        if seconds <= 0 or self.a.is_down:
            self._end(cause)
            return
        self._to(CallState.FAILING)
        tone = "busy" if cause.code in (486, 600) else "congestion"
        try:
            self.a.progress()  # 183 with SDP: early media carries the tone
            self.pbx.media.play(self.a.media_leg, self.pbx.tone(tone), True)
        except Exception:
            log.exception("%s: could not play %s tone", self.id, tone)
        self.fail_timer = self.pbx.schedule(seconds, lambda: self._end(cause))

    # -- events from our channels ----------------------------------------------------------
    def _event(self, event: ChannelEvent) -> None:
        chan = event.channel
        if isinstance(event, HungUp):
            self._party_gone(chan, event.cause)
        elif isinstance(event, HoldChanged):
            other = self.partner(chan)
            if other is not None and not other.is_down:
                if event.held:
                    self.pbx.media.play(other.media_leg, self.pbx.moh_source(), True)
                else:
                    self.pbx.media.stop_play(other.media_leg)
        elif isinstance(event, TransferRequested):
            self.pbx.transfers.requested(self, chan, event.target, event.replaces)
        elif isinstance(event, MediaTimeout):
            # A phone that lost power or network never sends BYE; without this the call (and
            # its CDR, and an agent's state later) would stay up for ever. A party on hold may
            # legitimately send nothing.
            other = self.partner(chan)
            if self.state == CallState.UP and not chan.held and not (other is not None and other.held):
                log.warning("%s: no media from %s for %.0f s, releasing the call", self.id, chan.id,
                            event.seconds, extra={"CALL_ID": self.id})
                self._end(Cause(408, f"no RTP for {event.seconds:.0f} s"))
        elif isinstance(event, (DtmfReceived, PlaybackEnded)) and self.ivr is not None and chan is self.a:
            self.ivr.handle(event)
        elif isinstance(event, DtmfReceived):
            log.info("%s: DTMF %s from %s (%s)", self.id, event.digit, chan.id, event.source,
                     extra={"CALL_ID": self.id})

    def _party_gone(self, chan: Channel, cause: Cause) -> None:
        if self.state == CallState.ENDED:
            return
        if self.transfer is not None and chan is self.transfer.transferor:
            self.transfer.transferor_left()
            return
        if self.ivr is not None:
            self.ivr.stop()
            self.ivr = None
        if chan is self.a:
            if not self.answered and self.state != CallState.FAILING:
                # Hanging up while hearing the busy tone is not abandoning the call.
                self.caller_gave_up = True
                cause = CANCELLED
            if self.fork is not None:
                self.fork.cancel(CANCELLED)
                self.fork = None
            if self.transfer is not None:
                self.transfer.abandon()
            if self.b is not None:
                self.b.hangup(NORMAL_CLEARING)
        elif chan is self.b:
            self.a.hangup(NORMAL_CLEARING)
            if self.transfer is not None:
                self.transfer.abandon()
        self._end(cause if not self.answered else NORMAL_CLEARING, by=chan)

    def hangup(self, chan: Channel | None = None) -> None:
        """End the call from the PBX side (control API, shutdown)."""
        target = chan or self.a
        target.hangup(NORMAL_CLEARING)
        self._party_gone(target, NORMAL_CLEARING)

    def _end(self, cause: Cause, by: Channel | None = None) -> None:
        if self.state == CallState.ENDED:
            return
        self.state = CallState.ENDED
        if self.cause == NORMAL_CLEARING:
            self.cause = cause  # a failure decided earlier (e.g. before the busy tone) stays
        if self.fail_timer is not None:
            self.fail_timer.cancel()
            self.fail_timer = None
        if self.fork is not None:
            self.fork.cancel(CANCELLED)
            self.fork = None
        for chan in (self.a, self.b):
            if chan is not None and not chan.is_down:
                chan.hangup(NORMAL_CLEARING if self.answered else self.cause)
        self.pbx.media_destroy_bridge(self.bridge_id)
        self._close_cdr(by)
        log.info("%s: ended (%s)", self.id, self.cause, extra={"CALL_ID": self.id})
        self.pbx.call_ended(self)

    def _close_cdr(self, by: Channel | None) -> None:
        if self.cdr_id is None:
            return
        if self.answered or self.caller_gave_up:
            hangup_cause = "caller hung up" if by is self.a else "callee hung up" if by else str(self.cause)
        else:
            hangup_cause = str(self.cause)
        disposition = disposition_for(self.cause, self.answered, self.caller_gave_up)
        self.pbx.store.cdr_close(self.cdr_id, self.pbx.clock(), disposition, hangup_cause)
        self.cdr_id = None

    def info(self) -> dict[str, object]:
        return {
            "id": self.id,
            "state": self.state.value,
            "caller": self.a.caller.number,
            "dialed": self.dialed,
            "a": self.a.id,
            "b": self.b.id if self.b else None,
            "bridge": self.bridge_id if self.state == CallState.UP else None,
            "direction": self.direction,
        }
