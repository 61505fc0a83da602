"""One outbound try at a lead, customer first: ring, answer, human or machine, agent or abandon.

The dialer (`appliance.pbx.dialer`) decides *whether* and *how many*; a `DialerAttempt` carries
one call through its states, and `PreviewAttempt` the agent-first call of preview mode:

========== ================================================================================
DIALING    the customer's line rings through the campaign's trunk -> DETECTING (answered, AMD
           on), QUEUED (answered, AMD off), ENDED (busy, no answer, failed)
DETECTING  the answering-machine detector listens to the greeting -> QUEUED (HUMAN, NOTSURE),
           MACHINE, ENDED (the person hung up)
QUEUED     waits, first in line, in the campaign's queue -> CONNECTED (an agent answered),
           ABANDONING (no agent within `abandon_seconds` of the greeting's end), ENDED
CONNECTED  talking with the agent -> ENDED
ABANDONING hears the abandon message and may press 9 to stop our calls -> ENDED
MACHINE    hung up at once, or hears `machine_message` -> ENDED
ENDED      the attempt's outcome is stored (`finish_attempt`); terminal
========== ================================================================================

FTC 16 CFR 310.4(b)(4): a call a person answers must reach an agent within two seconds of the
greeting's end, or hear a recorded message (and an opt-out, 310.4(b)(1)(iii)(B)); machines are
not counted in the abandon rate and never reach an agent.
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any, Protocol

from appliance.dialer.campaign import CampaignConfig
from appliance.pbx.channel import NO_ANSWER, Cause, Channel, DtmfReceived, PlaybackEnded
from appliance.pbx.dialer_ports import AttemptCall, DialerPbx
from appliance.pbx.distributor import DIALER_PRIORITY
from appliance.pbx.fork import Fork
from appliance.pbx.ports import TimerHandle
from appliance.pbx.prompter import Prompter
from appliance.store import dialer as dstore
from appliance.store.dialer import LeadRecord

log = logging.getLogger("plateau.dialer")
AMD_GIVE_UP_S = 8.0  # no verdict by then (no audio at all): treat the answer as a person
OPT_OUT_KEY = "9"
OPT_OUT_WAIT_S = 5.0


class AttemptState(enum.Enum):
    DIALING = "dialing"
    DETECTING = "detecting"
    QUEUED = "queued"
    CONNECTED = "connected"
    ABANDONING = "abandoning"
    MACHINE = "machine"
    ENDED = "ended"


_ALLOWED: dict[AttemptState, set[AttemptState]] = {
    AttemptState.DIALING: {AttemptState.DETECTING, AttemptState.QUEUED, AttemptState.ABANDONING, AttemptState.ENDED},
    AttemptState.DETECTING: {AttemptState.QUEUED, AttemptState.MACHINE, AttemptState.ABANDONING, AttemptState.ENDED},
    AttemptState.QUEUED: {AttemptState.CONNECTED, AttemptState.ABANDONING, AttemptState.ENDED},
    AttemptState.CONNECTED: {AttemptState.ENDED},
    AttemptState.ABANDONING: {AttemptState.ENDED},
    AttemptState.MACHINE: {AttemptState.ENDED},
    AttemptState.ENDED: set(),
}


class IllegalAttemptTransition(RuntimeError):
    """A dialer attempt was asked to move where its state machine does not go."""


class AttemptOwner(Protocol):
    """What an attempt asks of, and reports to, the dialer that placed it (`appliance.pbx.dialer.Dialer`)."""

    @property
    def pbx(self) -> DialerPbx: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def amd_params(self) -> dict[str, Any]: ...

    def watch_leg(self, leg: str, attempt: DialerAttempt) -> None: ...

    def unwatch_leg(self, leg: str) -> None: ...

    def about_to_queue(self, attempt: DialerAttempt) -> None: ...

    def agent_took(self, attempt: DialerAttempt | PreviewAttempt, agent_id: str) -> None: ...

    def abandoned(self, attempt: DialerAttempt, why: str) -> None: ...

    def opted_out(self, attempt: DialerAttempt) -> None: ...

    def attempt_ended(self, attempt: DialerAttempt | PreviewAttempt, outcome: str, detail: str) -> None: ...


def failure_outcome(cause: Cause) -> str:
    """The attempt outcome of a call that was never answered (RFC 3261 21.4/21.6 statuses)."""
    if cause.code in (486, 600):
        return "busy"
    if cause == NO_ANSWER or cause.code in (408, 480, 487):
        return "no-answer"
    return "failed"


class DialerAttempt:
    """A customer-first call of a progressive or predictive campaign."""

    def __init__(self, dialer: AttemptOwner, campaign: CampaignConfig, lead: LeadRecord, attempt_id: int,
                 chan: Channel, ring_timeout: float) -> None:
        self.dialer = dialer
        self.pbx = dialer.pbx
        self.campaign = campaign
        self.lead = lead
        self.attempt_id = attempt_id
        self.chan = chan
        self.ring_timeout = ring_timeout
        self.state = AttemptState.DIALING
        self.call: AttemptCall | None = None
        self.fork: Fork | None = None
        self.timer: TimerHandle | None = None
        self.prompter: Prompter | None = None
        self.outcome = ""
        self.agent_id: str | None = None
        self.placed_at = dialer.clock()
        self.answered_at: float | None = None
        self.connected_at: float | None = None
        self.opted_out = False
        self.heard_message = False

    # -- state machine -------------------------------------------------------------------------
    def _to(self, new: AttemptState) -> None:
        if new not in _ALLOWED[self.state]:
            raise IllegalAttemptTransition(f"attempt {self.attempt_id}: {self.state.value} -> {new.value}")
        self.state = new

    @property
    def live(self) -> bool:
        return self.state is not AttemptState.ENDED

    # -- ringing -----------------------------------------------------------------------------
    def start(self) -> None:
        """Ring the customer; the ring timeout makes a "no-answer" of it."""
        self.chan.owner = self
        self.fork = Fork([self.chan], self.ring_timeout, self.pbx.schedule, lambda chan: None, self._answered,
                         self._unanswered)
        self.fork.start()

    def _unanswered(self, cause: Cause) -> None:
        self.fork = None
        self._finish(failure_outcome(cause), str(cause))

    def _answered(self, chan: Channel) -> None:
        self.fork = None
        now = self.dialer.clock()
        self.answered_at = now
        dstore.mark_attempt(self.pbx.store, self.attempt_id, answered_at=now)
        call = self.call = self.pbx.call_factory.new_call(chan, self.lead.number, "outbound",
                                                          via_trunk=self.campaign.trunk)
        call.variables.update({"priority": str(DIALER_PRIORITY), "campaign": self.campaign.name,
                               "lead_id": str(self.lead.id), "attempt_id": str(self.attempt_id)})
        call.observe(on_agent_connected=self._agent_connected, on_ended=self._call_ended)
        call.attach_service(self)
        call.adopt_answered()
        if self.campaign.amd:
            self._to(AttemptState.DETECTING)
            self.dialer.watch_leg(chan.media_leg, self)
            try:
                self.pbx.media.detect_machine(chan.media_leg, self.dialer.amd_params)
            except Exception as exc:  # noqa: BLE001 - no detector: the answer goes to an agent
                log.error("attempt %d: AMD could not start (%s): taken as a person", self.attempt_id, exc)
                self._to_agent()
                return
            self.timer = self.pbx.schedule(AMD_GIVE_UP_S, lambda: self.machine_verdict("NOTSURE", "no verdict", 0))
        else:
            self._to_agent()

    # -- the greeting --------------------------------------------------------------------------
    def machine_verdict(self, verdict: str, cause: str, ms: int) -> None:
        """The detector's verdict on the greeting (HUMAN, MACHINE or NOTSURE)."""
        if self.state is not AttemptState.DETECTING:
            return
        self._cancel_timer()
        self.dialer.unwatch_leg(self.chan.media_leg)
        dstore.mark_attempt(self.pbx.store, self.attempt_id, amd=verdict)
        log.info("attempt %d to %s: AMD %s (%s, %d ms)", self.attempt_id, self.lead.number, verdict, cause, ms)
        if verdict != "MACHINE":
            self._to_agent()
            return
        self._to(AttemptState.MACHINE)
        self.outcome = "machine"
        call = self.call
        if call is None or call.a.is_down:
            return
        if self.campaign.machine_action == "message" and self.campaign.machine_message.strip():
            # The verdict comes while the greeting still plays; the message waits for its beep
            # the simple way: a pause as long as the greeting heard so far, at most 10 s.
            wait = min(10.0, max(1.0, ms / 1000.0))
            self.timer = self.pbx.schedule(wait, lambda: self._say(self.campaign.machine_message, self._hang_up))
        else:
            self._hang_up()

    def _to_agent(self) -> None:
        """A person (or maybe one): first in the campaign's queue, with the abandon deadline."""
        call = self.call
        if call is None or call.a.is_down:
            return
        self._to(AttemptState.QUEUED)
        call.attach_service(None)  # keys and prompt ends go to the queue from now on
        self.dialer.about_to_queue(self)
        if not call.wait_in_queue(self.campaign.queue):
            self._abandon("the queue did not take the call")
            return
        self.timer = self.pbx.schedule(self.campaign.abandon_seconds, lambda: self._abandon("no agent in time"))

    def _agent_connected(self, call: AttemptCall) -> None:
        if self.state is not AttemptState.QUEUED:
            return
        self._cancel_timer()
        self._to(AttemptState.CONNECTED)
        self.agent_id = call.agent_id
        self.connected_at = self.dialer.clock()
        dstore.mark_attempt(self.pbx.store, self.attempt_id, connected_at=self.connected_at, agent=call.agent_id)
        self.dialer.agent_took(self, call.agent_id or "")

    # -- abandon ------------------------------------------------------------------------------
    def _abandon(self, why: str) -> None:
        call = self.call
        if self.state not in (AttemptState.QUEUED, AttemptState.DETECTING) or call is None:
            return
        waiting = self.state is AttemptState.QUEUED and call.queue_entry is not None
        if waiting and not call.leave_queue("EXITWITHTIMEOUT"):
            return  # an agent is taking it at this very moment
        self._cancel_timer()
        self._to(AttemptState.ABANDONING)
        self.outcome = "abandoned"
        self.dialer.abandoned(self, why)
        call.attach_service(self)
        self.heard_message = True
        text = f"{self.campaign.abandon_message.strip()} To stop our calls, press {OPT_OUT_KEY}."
        prompter = self.prompter = Prompter(call.a, self.pbx.media, self.pbx.schedule, self.pbx.prompts)
        prompter.ask(text, 1, self._opt_out_answer, timeout=OPT_OUT_WAIT_S)

    def _opt_out_answer(self, digits: str) -> None:
        if digits != OPT_OUT_KEY:
            self._hang_up()
            return
        self.opted_out = True
        self.dialer.opted_out(self)
        self._say("You will not be called again. Goodbye.", self._hang_up)

    # -- service of the call (CallService) -----------------------------------------------------
    def handle(self, event: DtmfReceived | PlaybackEnded) -> None:
        if self.prompter is not None:
            self.prompter.handle(event)

    def stop(self) -> None:
        if self.prompter is not None:
            self.prompter.stop()
            self.prompter = None

    def _say(self, text: str, then: Callable[[], None]) -> None:
        call = self.call
        if call is None or call.a.is_down:
            return
        if self.prompter is not None:
            self.prompter.stop()
        self.prompter = Prompter(call.a, self.pbx.media, self.pbx.schedule, self.pbx.prompts)
        self.prompter.say(text, then)

    def _hang_up(self) -> None:
        if self.call is not None and not self.call.a.is_down:
            self.call.hangup(self.call.a)

    # -- the end --------------------------------------------------------------------------------
    def _call_ended(self, call: AttemptCall) -> None:
        if self.state is AttemptState.CONNECTED:
            outcome = "connected"
        elif self.state in (AttemptState.DETECTING, AttemptState.QUEUED):
            # The person hung up before an agent came: counted as abandoned, the safe reading.
            outcome = "abandoned"
            self.dialer.abandoned(self, "hung up before an agent answered")
        else:
            outcome = self.outcome or "abandoned"
        self._finish(outcome, str(call.cause))

    def _finish(self, outcome: str, detail: str) -> None:
        if self.state is AttemptState.ENDED:
            return
        self._cancel_timer()
        self.stop()
        if self.state is AttemptState.DETECTING:
            try:
                self.pbx.media.stop_detect_machine(self.chan.media_leg)
            except Exception as exc:  # noqa: BLE001 - the leg is already gone with its detector
                log.debug("stop_detect_machine: %s", exc)
        self.dialer.unwatch_leg(self.chan.media_leg)
        self.state = AttemptState.ENDED
        self.outcome = outcome
        self.dialer.attempt_ended(self, outcome, detail)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def info(self) -> dict[str, Any]:
        return {"attempt": self.attempt_id, "lead": self.lead.id, "number": self.lead.number,
                "state": self.state.value, "agent": self.agent_id}


class PreviewAttempt:
    """Preview mode: the agent's phone rings first; once answered the lead is dialled through
    the campaign's trunk (as a queue callback is), and the call's end gives the outcome."""

    def __init__(self, dialer: AttemptOwner, campaign: CampaignConfig, lead: LeadRecord, attempt_id: int,
                 agent_id: str) -> None:
        self.dialer = dialer
        self.pbx = dialer.pbx
        self.campaign = campaign
        self.lead = lead
        self.attempt_id = attempt_id
        self.agent_id = agent_id
        self.call: AttemptCall | None = None
        self.state = AttemptState.DIALING
        self.outcome = ""
        self.placed_at = dialer.clock()
        self.answered_at: float | None = None
        self.connected_at: float | None = None
        self.heard_message = False

    @property
    def live(self) -> bool:
        return self.state is not AttemptState.ENDED

    def agent_answered(self, call: AttemptCall) -> None:
        """The agent's leg is up and `call` (A = agent) now dials the lead."""
        self.call = call
        call.observe(on_answered=self._answered, on_ended=self._ended)

    def _answered(self, call: AttemptCall) -> None:
        now = self.dialer.clock()
        self.answered_at = self.connected_at = now
        self.state = AttemptState.CONNECTED
        dstore.mark_attempt(self.pbx.store, self.attempt_id, answered_at=now, connected_at=now, agent=self.agent_id)

    def _ended(self, call: AttemptCall) -> None:
        self.finish("connected" if self.state is AttemptState.CONNECTED else failure_outcome(call.cause),
                    str(call.cause))

    def finish(self, outcome: str, detail: str) -> None:
        if self.state is AttemptState.ENDED:
            return
        self.state = AttemptState.ENDED
        self.outcome = outcome
        self.dialer.attempt_ended(self, outcome, detail)

    def info(self) -> dict[str, Any]:
        return {"attempt": self.attempt_id, "lead": self.lead.id, "number": self.lead.number,
                "state": self.state.value, "agent": self.agent_id}
