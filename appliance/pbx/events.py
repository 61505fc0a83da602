"""Call-level events, published on the engine's `EventBus` (appliance/pbx/bus.py).

They say what happened to a call, in the engine loop, at the moment it happened. Services
(distributor, recording, survey, supervision, the dialer's attempt, the API's live view) subscribe
to them instead of being called by `Call` or writing its fields (docs/ARCHITECTURE.md, "Event
bus"). Events carry identifiers and plain values, not objects: a subscriber that needs the call
looks it up by `call_id` in the switchboard's directory of live calls.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CallStarted:
    call_id: str
    caller: str
    dialed: str
    direction: str  # "inbound" | "internal" | "outbound"


@dataclass(frozen=True)
class CallAnswered:
    """The call is up between two parties (or answered by the PBX itself, `channel_id` its caller's)."""

    call_id: str
    channel_id: str


@dataclass(frozen=True)
class QueueJoined:
    call_id: str
    queue: str
    caller: str


@dataclass(frozen=True)
class QueueLeft:
    """The caller left the queue: `reason` is the queue-log event (CONNECT, ABANDON, EXITWITHTIMEOUT...)."""

    call_id: str
    queue: str
    reason: str


@dataclass(frozen=True)
class AgentConnected:
    call_id: str
    queue: str
    agent_id: str
    channel_id: str


@dataclass(frozen=True)
class AgentReleased:
    """The agent is off the call; `how` is why ("agent hung up", "caller hung up", "transfer"...)."""

    call_id: str
    queue: str
    agent_id: str
    how: str


@dataclass(frozen=True)
class CallTransferred:
    call_id: str
    transferor: str  # channel id
    target: str
    attended: bool


@dataclass(frozen=True)
class TransferAsked:
    """A party of the call asked to be replaced by `target` (REFER, RFC 3515; `replaces`: the
    (call-id, to-tag, from-tag) of the dialog an attended transfer replaces, RFC 3891)."""

    call_id: str
    channel_id: str
    target: str
    replaces: tuple[str, str | None, str | None] | None


@dataclass(frozen=True)
class SurveyDue:
    """The agent left a queue call whose queue runs a post-call survey: the caller stays for it."""

    call_id: str
    queue: str
    agent_id: str


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    cause_code: int
    cause: str
    answered: bool


CallEvent = (CallStarted | CallAnswered | QueueJoined | QueueLeft | AgentConnected | AgentReleased
             | CallTransferred | TransferAsked | SurveyDue | CallEnded)
