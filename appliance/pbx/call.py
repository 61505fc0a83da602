"""A call: the party that started it, the party it reached, and the bridge between them.

The call owns the routing decisions a PBX user expects: do-not-disturb, forwarding
(unconditional, on busy, on no answer, including out through a trunk), tones the caller
hears when it fails, music on hold, blind and attended transfer. Its states are call_state.py's,
its CDR row is cdr.py's; recording, supervision, surveys and transfers are services that hear of
what it does on the event bus (events.py) and act through its public operations.
"""
from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING
from collections.abc import Callable

from appliance.ivr.flow import FlowError, RouteTarget
from appliance.pbx.channel import (
    CANCELLED,
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
    Party,
    PlaybackEnded,
    TransferRequested,
)
from appliance.pbx.dialplan import FLOW_TARGETS
from appliance.pbx.in_call_keys import InCallKeys
from appliance.pbx.fork import Fork
from appliance.pbx.call_context import CallContext, CallService, CallTransfer
from appliance.pbx.call_state import TRANSITIONS, CallState
from appliance.pbx.cdr import CallDetailRecord
from appliance.pbx.events import (CallAnswered, CallEnded, CallStarted, InCallCode, IvrEntered, PartiesChanged,
                                  SensitiveInput, SurveyDue, TransferAsked)
from appliance.pbx.ports import TimerHandle
from appliance.pbx.permission import Principal
from appliance.store.models import Extension, QueueConfig

if TYPE_CHECKING:
    from appliance.ivr.session import IvrSession
    from appliance.pbx.waiting import Waiting

log = logging.getLogger("plateau.pbx")
_ids = itertools.count(1)
MAX_FORWARD_HOPS = 3


class Call:
    """One call between `a` (who started it) and `b` (who it reached)."""

    def __init__(self, pbx: CallContext[Call], a: Channel, dialed: str, caller_ext: Extension | None,
                 direction: str, via_trunk: str | None = None, principal: Principal | None = None) -> None:
        self.id = f"call-{next(_ids)}"
        self.pbx = pbx
        self.a = a
        self.b: Channel | None = None
        self.dialed = dialed
        self.caller_ext = caller_ext
        # Who the first hop is dialled for (permission.py): the calling extension, else the
        # system purpose the creator named (queue callback...), else nobody with rights outside.
        self.principal = principal or (Principal.extension(caller_ext) if caller_ext is not None
                                       else Principal.unknown(f"caller {a.caller.number}"))
        self.direction = direction
        self.via_trunk = via_trunk
        self.state = CallState.ROUTING
        self.fork: Fork | None = None
        self.bridge_id = f"bridge-{self.id}"
        self.answered = False
        self.cdr = CallDetailRecord(pbx.store)
        self.cause: Cause = NORMAL_CLEARING
        self.caller_gave_up = False
        self.fail_timer: TimerHandle | None = None
        self.transfer: CallTransfer | None = None
        self.ivr: IvrSession | None = None
        self.variables: dict[str, str] = {}  # what an IVR learnt about the caller (screen pop)
        # The PBX itself talking with the caller: a feature-code dialogue, voicemail, a survey,
        # a supervisor's listen/whisper/barge session. It gets the caller's keys and prompt ends.
        self.service: CallService | None = None
        self.queue_entry: Waiting | None = None  # set while the caller waits in a queue
        self.queue_config: QueueConfig | None = None  # the queue whose agent took the call
        self.agent_id: str | None = None  # the ACD agent on this call, wrap-up follows its end
        self.agent_answered_at: float | None = None
        self.agent_leg: Channel | None = None
        self.hops = 0
        self.bridged = False
        self.interaction_id: int | None = None  # what this call is about (contact, status, disposition)
        self._keys = InCallKeys(self.id, pbx.media, pbx.schedule, self.partner,
                                lambda: self.state == CallState.UP, self._feature_code)
        # Observers for a service that owns this call from outside (the outbound dialer): an agent
        # took it from a queue, it answered (b leg), it ended. Called after the call's own work.
        self.on_agent_connected: Callable[[Call], None] | None = None
        self.on_answered: Callable[[Call], None] | None = None
        self.on_ended: Callable[[Call], None] | None = None
        self._adopt(a)

    # -- state machine ------------------------------------------------------------------
    def _to(self, new: CallState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"{self.id}: illegal call transition {self.state.value} -> {new.value}")
        self.state = new

    def _adopt(self, chan: Channel) -> None:
        chan.owner = self
        chan.listener = self._event

    @property
    def cdr_id(self) -> int | None:
        """The id of this call's CDR row while it is open."""
        return self.cdr.row_id

    def partner(self, chan: Channel) -> Channel | None:
        if chan is self.a:
            return self.b
        if chan is self.b:
            return self.a
        return None

    # -- operations for the services around the call (transfer, features, the ACD, the dialer) --
    # They are the only way another module changes a call: none writes its fields.
    def assign_agent(self, agent_id: str, queue: QueueConfig, leg: Channel, at: float) -> None:
        """`leg` is the answered leg of ACD agent `agent_id` serving `queue` (a callback, a
        preview dial): the agent's wrap-up and the queue's statistics follow this call."""
        self.agent_id, self.queue_config, self.agent_leg = agent_id, queue, leg
        self.agent_answered_at = at

    def attach_service(self, service: CallService | None) -> None:
        """From now on `service` (a prompt dialogue, voicemail, a survey, a supervision session)
        gets the caller's keys and prompt ends; None gives them back to the call (or its queue)."""
        self.service = service

    def observe(self, on_answered: Callable[[Call], None] | None = None,
                on_agent_connected: Callable[[Call], None] | None = None,
                on_ended: Callable[[Call], None] | None = None) -> None:
        """Observers for a service that owns this call from outside (the outbound dialer); an
        observer not given keeps the one set before."""
        if on_answered is not None:
            self.on_answered = on_answered
        if on_agent_connected is not None:
            self.on_agent_connected = on_agent_connected
        if on_ended is not None:
            self.on_ended = on_ended

    def waiting_as(self, entry: Waiting | None) -> None:
        """The distributor's record of this caller waiting in a queue (None: it no longer waits)."""
        self.queue_entry = entry

    def link_interaction(self, interaction_id: int | None) -> None:
        """What this call is about (contact, status, disposition), as the ACD opened or found it."""
        self.interaction_id = interaction_id

    def begin_transfer(self, transfer: CallTransfer) -> None:
        """A blind transfer runs on this call: one at a time (RFC 3515 §2.4.5 "491 Request Pending")."""
        if self.transfer is not None:
            raise RuntimeError(f"{self.id}: a transfer is already running")
        self.transfer = transfer

    def transfer_done(self) -> None:
        self.transfer = None

    def replace_party(self, old: Channel, new: Channel) -> None:
        """`new` takes the place of `old` (a transfer): the agent on `old` is released, and `new`'s
        events come to this call. `bridge_parties()` joins the media afterwards."""
        if old is not self.a and old is not self.b:
            raise RuntimeError(f"{self.id}: {old.id} is not a party to this call")
        if old is self.agent_leg:
            self.release_agent("transfer")
        if self.a is old:
            self.a = new
        else:
            self.b = new
        self._adopt(new)
        self.pbx.events.publish(PartiesChanged(self.id, old.id, new.id))

    def give_up_party(self, chan: Channel) -> None:
        """`chan` leaves this call for another one (the target of an attended transfer): the
        party left behind is hung up and the call ends, without touching `chan`."""
        other = self.partner(chan)
        if other is None:
            raise RuntimeError(f"{self.id}: {chan.id} is not a party to this call")
        self.a, self.b = other, None
        self.pbx.events.publish(PartiesChanged(self.id, chan.id, None))
        self.hangup(other)

    def release_after_tone(self, chan: Channel, cause: Cause, seconds: float) -> None:
        """`chan` hears busy or congestion for `seconds`, then the call ends with `cause`
        (a blind transfer failed and there is no transferor to go back to)."""
        self.cause = cause
        self.pbx.media.play(chan.media_leg, self.pbx.tone("busy" if cause.code in (486, 600) else "congestion"),
                            True)
        self._to(CallState.FAILING)
        self.fail_timer = self.pbx.schedule(seconds, lambda: self._end(cause))

    def ring_originator(self, channels: list[Channel], timeout: float) -> None:
        """Click-to-call: ring the originating extension's `channels`; the one that answers becomes
        the A leg and the call starts to `dialed`. Nobody answers: the call is dropped, no CDR."""
        ext = self.caller_ext

        def answered(chan: Channel) -> None:
            if ext is not None:
                chan.caller = Party(ext.number, ext.name)
            self.a = chan
            self._adopt(chan)
            self.fork = None
            self.start()

        def failed(cause: Cause) -> None:
            self.fork = None
            self.pbx.call_ended(self)
            log.info("originate from %s failed: %s", ext.number if ext is not None else "?", cause)

        self.fork = Fork(channels, timeout, self.pbx.schedule, lambda c: None, answered, failed)
        self.fork.start()

    # -- routing ----------------------------------------------------------------------------
    def _open_cdr(self) -> None:
        self.cdr.open(self.a, self.dialed, self.direction, self.via_trunk)
        self.pbx.events.publish(CallStarted(self.id, self.a.caller.number, self.dialed, self.direction))

    def start(self, first_hop_did: bool = False) -> None:
        self._open_cdr()
        # DEBUG: the one INFO line of a call is its end, which says who called whom (a busy
        # engine logged three lines per call, ~0.2 ms of its SIP loop each).
        log.debug("%s: %s calls %s", self.id, self.a.caller.number, self.dialed,
                  extra={"CALL_ID": self.id, "EXTENSION": self.caller_ext.number if self.caller_ext else ""})
        if first_hop_did:
            self.go(self.pbx.dialplan.resolve_did(self.dialed), hops=0)
        else:
            self.route_number(self.dialed, self.principal, hops=0)

    def start_to(self, dest: object) -> None:
        """Like `start`, but to a destination already decided (the dialer's campaign trunk), of any
        kind the destination registry knows."""
        self._open_cdr()
        log.debug("%s: %s calls %s", self.id, self.a.caller.number, self.dialed, extra={"CALL_ID": self.id})
        self.go(dest, hops=0)

    def adopt_answered(self) -> None:
        """The A leg is a callee the system itself called and that answered (the dialer): open
        the CDR as answered, and let a service talk to it (IVR state) until it queues."""
        self._open_cdr()
        self._to(CallState.IVR)
        self.answer_here()

    def wait_in_queue(self, name: str) -> bool:
        """Wait in queue `name` with no overflow (the dialer's answered callee, whose only way
        out is an agent or the abandon message); False when the queue will not take it."""
        if self.state == CallState.IVR:
            self._to(CallState.ROUTING)
        self.answer_here()
        self._to(CallState.QUEUED)
        if self.pbx.distributor.enqueue(self, name) is None and self.queue_entry is not None:
            return True
        self._to(CallState.ROUTING)
        self._to(CallState.IVR)
        return False

    def leave_queue(self, event: str) -> bool:
        """Take the caller out of its queue (offers cancelled), logging `event`; False if it was
        not waiting (an agent took it meanwhile). The call goes back to the IVR state."""
        if self.state != CallState.QUEUED or not self.pbx.distributor.withdraw(self, event):
            return False
        self.pbx.media.stop_play(self.a.media_leg)
        self._to(CallState.ROUTING)
        self._to(CallState.IVR)
        return True

    def route_number(self, number: str, who: Principal, hops: int) -> None:
        """Route `number` as dialled by `who`: a feature code, an IVR's number, or what the dialplan
        makes of it. A call ringing elsewhere (forward on no answer) is routed anew."""
        if self.state == CallState.RINGING:
            self._to(CallState.ROUTING)
        if number.startswith("*") and self.pbx.features.handles(number):
            self._to(CallState.IVR)
            self.pbx.features.run(self, number)
            return
        flow = self.pbx.dialplan.ivr_number(number)
        if flow is not None and number not in self.pbx.dialplan.extensions:
            self.to_ivr(flow, hops)
            return
        self.go(self.pbx.dialplan.resolve(number, who), hops)

    def go(self, dest: object, hops: int) -> None:
        """Take the call to `dest`, whatever its kind: the destination registry's handler does."""
        self.pbx.destinations.route(self, dest, hops)

    def to_ivr(self, flow_name: str, hops: int) -> None:
        """Answer and walk the caller through a flow; its route continues this call's routing."""
        try:
            flow = self.pbx.flow(flow_name)
        except (FlowError, OSError) as exc:
            log.error("%s: IVR flow %s unusable: %s", self.id, flow_name, exc)
            self.fail(Cause(503, "Service Unavailable"))
            return
        self._to(CallState.IVR)
        self.answer_here()
        self.pbx.events.publish(IvrEntered(self.id, flow_name, flow.record))  # call_recording.py may record it

        def routed(target: RouteTarget, variables: dict[str, str]) -> None:
            self.ivr = None
            self.variables.update(variables)
            self._to(CallState.ROUTING)
            if target.kind in ("extension", "external"):
                # The number an admin wrote in the flow, nothing else (permission.py).
                self.route_number(target.value,
                                  Principal.system(f"ivr:{flow_name}", numbers=frozenset({target.value})), hops + 1)
            else:  # flow, queue, voicemail: a destination of that kind
                self.go(FLOW_TARGETS[target.kind](target.value), hops + 1)

        def hung_up() -> None:
            self.ivr = None
            self.a.hangup(NORMAL_CLEARING)
            self._end(NORMAL_CLEARING, by=None)

        # The caller entering (leaving) a sensitive node is published: a recording must not hear the card.
        self.ivr = self.pbx.ivr_session(self.a, flow, routed, hung_up,
                                        lambda active: self.pbx.events.publish(SensitiveInput(self.id, active)))
        self.ivr.start()

    def _feature_code(self, chan: Channel, code: str) -> None:
        """*1 starts/stops an on-demand recording, *2 pauses it (card details), *3 resumes: the
        recording service (call_recording.py) hears of it."""
        if chan.extension is None or self.state != CallState.UP:
            return
        log.info("%s: feature code %s from %s", self.id, code, chan.id, extra={"CALL_ID": self.id})
        self.pbx.events.publish(InCallCode(self.id, chan.id, code))

    def answer_here(self) -> None:
        """The PBX itself answers the caller (IVR, queue, feature code): the CDR counts from here.

        An originated call's A leg is already up (the originator answered): it counts as
        answered all the same."""
        if self.answered:
            return
        if not self.a.is_up:
            self.a.answer()
        self.answered = True  # answered by us: a caller leaving now is not an unanswered call
        self.cdr.answer(self.a.answered_at or self.pbx.clock())
        self.pbx.events.publish(CallAnswered(self.id, self.a.id))

    # -- queues ---------------------------------------------------------------------------------
    def to_queue(self, name: str, hops: int) -> None:
        """Wait in an ACD queue; the distributor connects an agent or sends us to the overflow."""
        if hops > MAX_FORWARD_HOPS + 2:
            log.error("%s: queue overflow loop at %s", self.id, name)
            self.fail(Cause(503, "Service Unavailable"))
            return
        self.answer_here()
        self._to(CallState.QUEUED)
        self.hops = hops
        overflow = self.pbx.distributor.enqueue(self, name)
        if overflow is not None:
            self.overflow(overflow)

    def overflow(self, dest: str) -> None:
        """Leave the queue for `dest` (a configured destination); no destination: fail."""
        if self.state == CallState.ENDED:
            return
        self.pbx.media.stop_play(self.a.media_leg)
        self._to(CallState.ROUTING)
        if not dest:
            self.fail(UNAVAILABLE)
            return
        log.info("%s: queue overflow to %s", self.id, dest)
        self.go(self.pbx.dialplan.destination(dest), self.hops + 1)

    def connect_agent(self, chan: Channel, agent_id: str, queue: QueueConfig) -> None:
        """An agent answered the offer of this waiting caller: bridge them."""
        self.b = self.agent_leg = chan
        self._adopt(chan)
        self.agent_id, self.queue_config = agent_id, queue
        self.agent_answered_at = self.pbx.clock()
        self.pbx.media.stop_play(self.a.media_leg)
        self._to(CallState.UP)
        self.bridge_parties()
        log.info("%s: agent %s answered %s from queue %s", self.id, agent_id, self.a.caller.number, queue.name,
                 extra={"CALL_ID": self.id})
        if self.on_agent_connected is not None:
            self.on_agent_connected(self)

    def to_voicemail(self, mailbox: str) -> None:
        """Leave a message in `mailbox` (an extension's); the deposit session ends the call."""
        if self.state == CallState.RINGING:
            self._to(CallState.ROUTING)
        self._to(CallState.IVR)
        self.answer_here()
        self.pbx.voicemail_deposit(self, mailbox)

    def _survey_after_agent(self) -> bool:
        """The agent hung up on a queue with a survey: the caller stays to answer it."""
        queue = self.queue_config
        if (queue is None or not queue.survey or self.agent_id is None or self.a.is_down
                or self.state != CallState.UP or self.direction == "outbound"):
            return False
        agent_id = self.agent_id
        self.release_agent("agent hung up")
        self.b = None
        self.pbx.media_destroy_bridge(self.bridge_id)
        self.bridged = False
        self._to(CallState.IVR)
        self.pbx.events.publish(SurveyDue(self.id, queue.name, agent_id))
        return True

    def release_agent(self, how: str) -> None:
        """The agent is off this call: tell the distributor once (wrap-up, COMPLETE/TRANSFER)."""
        agent_id, self.agent_id = self.agent_id, None
        if agent_id is not None:
            self.pbx.distributor.agent_call_ended(self, agent_id, how)

    def dial(self, channels: list[Channel], timeout: float, on_fail: Callable[[Cause], None]) -> None:
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
        self.bridged = True

    def _on_answer(self, chan: Channel) -> None:
        self.fork = None
        self.b = chan
        self._adopt(chan)
        if self.a.is_up or self.a.state == ChannelState.EARLY:
            self.pbx.media.stop_play(self.a.media_leg)  # our ringback tone, if we were playing one
        if not self.a.is_up:
            self.a.answer()
        self._to(CallState.UP)
        if not self.answered:  # an IVR may have answered already
            self.cdr.answer(chan.answered_at or self.a.created)
        self.answered = True
        self.bridge_parties()
        log.debug("%s: %s answered %s", self.id, chan.callee, self.a.caller.number,
                 extra={"CALL_ID": self.id, "EXTENSION": chan.extension or ""})
        self.pbx.events.publish(CallAnswered(self.id, chan.id))
        if self.on_answered is not None:
            self.on_answered(self)

    def bridge_parties(self) -> None:
        if self.b is None:
            return
        self.pbx.media.bridge(self.bridge_id, [self.a.media_leg, self.b.media_leg])
        self.bridged = True
        self.a.bridge_id = self.b.bridge_id = self.bridge_id

    def fail(self, cause: Cause) -> None:
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
            self.pbx.events.publish(TransferAsked(self.id, chan.id, event.target, event.replaces))
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
        elif isinstance(event, (DtmfReceived, PlaybackEnded)) and self.service is not None and chan is self.a:
            self.service.handle(event)
        elif isinstance(event, (DtmfReceived, PlaybackEnded)) and self.queue_entry is not None and chan is self.a:
            self.pbx.distributor.caller_event(self, event)
        elif isinstance(event, DtmfReceived):
            log.info("%s: DTMF %s from %s (%s)", self.id, event.digit, chan.id, event.source,
                     extra={"CALL_ID": self.id})
            self._keys.key(chan, event)

    def _party_gone(self, chan: Channel, cause: Cause) -> None:
        if self.state == CallState.ENDED:
            return
        if self.transfer is not None and chan is self.transfer.transferor:
            self.transfer.transferor_left()
            self.pbx.events.publish(PartiesChanged(self.id, chan.id, None))
            return
        if self.ivr is not None:
            self.ivr.stop()
            self.ivr = None
        if self.service is not None:
            self.service.stop()
            self.service = None
        if self.queue_entry is not None:
            self.pbx.distributor.caller_left(self)
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
        elif chan is self.b and self._survey_after_agent():
            return
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

    def release(self, cause: Cause) -> None:
        """End the call from the PBX side for a reason its CDR keeps (e.g. its media was lost)."""
        self.cause = cause
        self._end(cause)

    def _end(self, cause: Cause, by: Channel | None = None) -> None:
        if self.state == CallState.ENDED:
            return
        self.state = CallState.ENDED
        self._keys.cancel()
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
        if self.bridged:  # an IVR or feature-code call never had one
            self.pbx.media_destroy_bridge(self.bridge_id)
        if self.queue_entry is not None:
            self.pbx.distributor.caller_left(self)
        self.release_agent("agent hung up" if by is not None and by is self.agent_leg else
                            "caller hung up" if by is not None else str(self.cause))
        self.cdr.close(self.pbx.clock(), self.cause, self.answered, self.caller_gave_up,
                       "caller" if by is self.a else "callee" if by is not None else None)
        log.info("%s: %s called %s, %s, ended (%s)", self.id, self.a.caller.number, self.dialed,
                 "answered" if self.answered else "not answered", self.cause,
                 extra={"CALL_ID": self.id, "EXTENSION": self.caller_ext.number if self.caller_ext else ""})
        self.pbx.call_ended(self)
        self.pbx.events.publish(CallEnded(self.id, self.cause.code, self.cause.reason, self.answered))
        if self.on_ended is not None:
            self.on_ended(self)

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
