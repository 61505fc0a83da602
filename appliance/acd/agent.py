"""An ACD agent: a person who logs in on any desk phone, with an explicit state machine.

States and the events that leave each one (every state has an exit; ``Logout`` leaves any of
them, and ``reconcile``/``expire`` repair the timed ones so no agent can stay stuck, the classic
FreeSWITCH mod_callcenter complaint):

=========== ====================================================================================
LOGGED_OUT  ``Login(device)`` -> AVAILABLE
AVAILABLE   ``Offer(call_id)`` -> RINGING; ``Pause(reason)`` -> PAUSED
RINGING     ``Answer`` -> ON_CALL; ``NoAnswer`` (rejected, or ring timeout found by
            ``expire``) -> AVAILABLE, then PAUSED("no-answer") after ``max_no_answer`` in a row;
            ``OfferCancelled`` (caller gone, another agent answered a ring-all) -> AVAILABLE
ON_CALL     ``CallEnded(wrapup_seconds)`` -> WRAP_UP (and at once AVAILABLE when the wrap-up
            is 0 s); ``reconcile(has_live_call=False)`` produces that CallEnded
WRAP_UP     ``WrapUpDone`` (timer expired, found by ``expire``, or the agent ends it early)
            -> AVAILABLE; ``Pause(reason)`` -> PAUSED
PAUSED      ``Unpause`` -> AVAILABLE; ``Pause(reason)`` -> PAUSED (new reason)
=========== ====================================================================================

Anything else raises :class:`IllegalTransition`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from appliance.acd.strategies import Candidate

NO_ANSWER_REASON = "no-answer"


class AgentState(enum.Enum):
    LOGGED_OUT = "logged-out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on-call"
    WRAP_UP = "wrap-up"
    PAUSED = "paused"


# -- events ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentEvent:
    """Base of every agent event."""


@dataclass(frozen=True)
class Login(AgentEvent):
    device: str


@dataclass(frozen=True)
class Logout(AgentEvent):
    pass


@dataclass(frozen=True)
class Offer(AgentEvent):
    call_id: str


@dataclass(frozen=True)
class Answer(AgentEvent):
    pass


@dataclass(frozen=True)
class NoAnswer(AgentEvent):
    pass


@dataclass(frozen=True)
class OfferCancelled(AgentEvent):
    """The offer went away without the agent at fault: not counted as unanswered."""


@dataclass(frozen=True)
class CallEnded(AgentEvent):
    wrapup_seconds: float = 0.0


@dataclass(frozen=True)
class WrapUpDone(AgentEvent):
    pass


@dataclass(frozen=True)
class Pause(AgentEvent):
    reason: str


@dataclass(frozen=True)
class Unpause(AgentEvent):
    pass


S = AgentState
# The one transition table: (state, event type) -> next state. Conditional follow-ups
# (auto-pause after N no-answers, zero wrap-up) are themselves events run through this table.
TRANSITIONS: dict[tuple[AgentState, type[AgentEvent]], AgentState] = {
    (S.LOGGED_OUT, Login): S.AVAILABLE,
    (S.AVAILABLE, Offer): S.RINGING,
    (S.AVAILABLE, Pause): S.PAUSED,
    (S.RINGING, Answer): S.ON_CALL,
    (S.RINGING, NoAnswer): S.AVAILABLE,
    (S.RINGING, OfferCancelled): S.AVAILABLE,
    (S.ON_CALL, CallEnded): S.WRAP_UP,
    (S.WRAP_UP, WrapUpDone): S.AVAILABLE,
    (S.WRAP_UP, Pause): S.PAUSED,
    (S.PAUSED, Unpause): S.AVAILABLE,
    (S.PAUSED, Pause): S.PAUSED,
}
for _state in AgentState:
    TRANSITIONS[(_state, Logout)] = S.LOGGED_OUT


class IllegalTransition(Exception):
    """An event that the agent's current state does not accept."""

    def __init__(self, agent_id: str, state: AgentState, event: AgentEvent) -> None:
        super().__init__(f"agent {agent_id}: {type(event).__name__} is not allowed in state {state.value}")
        self.agent_id = agent_id
        self.state = state
        self.event = event


@dataclass
class Agent:
    """A person with skills; ``device`` is the phone they are logged in on, if any."""

    agent_id: str
    name: str
    pin: str
    skills: dict[str, int] = field(default_factory=dict)
    max_no_answer: int = 3
    ring_timeout: float = 20.0
    state: AgentState = AgentState.LOGGED_OUT
    pause_reason: str | None = None
    device: str | None = None
    call_id: str | None = None
    state_since: float = 0.0
    idle_since: float = 0.0  # last call end, or login: the longest-idle key
    wrapup_until: float | None = None
    answered_at: float | None = None
    calls_today: int = 0
    talk_seconds: float = 0.0
    consecutive_no_answer: int = 0

    def handle(self, event: AgentEvent, now: float) -> AgentState:
        """Apply ``event`` at ``now``; return the new state or raise IllegalTransition."""
        target = TRANSITIONS.get((self.state, type(event)))
        if target is None:
            raise IllegalTransition(self.agent_id, self.state, event)
        follow_up: AgentEvent | None = None
        match event:
            case Login(device=device):
                self.device = device
                self.idle_since = now
                self.consecutive_no_answer = 0
            case Logout():
                self.device = None
                self.call_id = None
                self.wrapup_until = None
                self.answered_at = None
            case Offer(call_id=call_id):
                self.call_id = call_id
            case Answer():
                self.answered_at = now
                self.consecutive_no_answer = 0
                self.calls_today += 1
            case NoAnswer():
                self.call_id = None
                self.consecutive_no_answer += 1
                if self.max_no_answer > 0 and self.consecutive_no_answer >= self.max_no_answer:
                    follow_up = Pause(NO_ANSWER_REASON)
            case OfferCancelled():
                self.call_id = None
            case CallEnded(wrapup_seconds=wrapup):
                if self.answered_at is not None:
                    self.talk_seconds += max(0.0, now - self.answered_at)
                self.answered_at = None
                self.call_id = None
                self.idle_since = now
                self.wrapup_until = now + max(0.0, wrapup)
                if wrapup <= 0:
                    follow_up = WrapUpDone()
            case WrapUpDone():
                self.wrapup_until = None
            case Unpause():
                self.consecutive_no_answer = 0
            case _:
                pass
        if target is AgentState.PAUSED:
            self.pause_reason = event.reason if isinstance(event, Pause) else self.pause_reason
            self.wrapup_until = None
        else:
            self.pause_reason = None
        if target is not self.state or isinstance(event, Pause):
            self.state_since = now
        self.state = target
        if follow_up is not None:
            return self.handle(follow_up, now)
        return self.state

    def expire(self, now: float) -> AgentState:
        """Fire the timers: ring timeout (counts as NoAnswer) and end of wrap-up."""
        if self.state is AgentState.RINGING and now - self.state_since >= self.ring_timeout:
            return self.handle(NoAnswer(), now)
        if self.state is AgentState.WRAP_UP and (self.wrapup_until is None or now >= self.wrapup_until):
            return self.handle(WrapUpDone(), now)
        return self.state

    def reconcile(self, has_live_call: bool, now: float, wrapup_seconds: float = 0.0) -> AgentState:
        """Repair a state that contradicts the channels the engine actually has.

        ON_CALL without a live channel -> CallEnded (WRAP_UP, or AVAILABLE with no wrap-up);
        RINGING past the ring timeout -> NoAnswer; WRAP_UP past its timer -> AVAILABLE. Run at
        start-up (every channel is gone after a restart) and periodically.
        """
        if self.state is AgentState.ON_CALL and not has_live_call:
            self.handle(CallEnded(wrapup_seconds), now)
        return self.expire(now)

    def reset_daily(self) -> None:
        """Start a new day's counters (the engine calls this at local midnight)."""
        self.calls_today = 0
        self.talk_seconds = 0.0

    @property
    def available(self) -> bool:
        return self.state is AgentState.AVAILABLE

    def candidate(self, order: int = 0) -> Candidate:
        """This agent as the record selection strategies work on."""
        return Candidate(self.agent_id, self.idle_since, self.calls_today, self.talk_seconds, order)
