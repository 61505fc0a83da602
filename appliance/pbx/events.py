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
class IvrEntered:
    """The PBX answered the call with IVR flow `flow`; `record` is the flow's recording mode
    ("none", "mixed", "stereo")."""

    call_id: str
    flow: str
    record: str


@dataclass(frozen=True)
class SensitiveInput:
    """The caller entered (`active`) or left a sensitive IVR node (card capture, PCI DSS): a
    recording must not hear what is said there."""

    call_id: str
    active: bool


@dataclass(frozen=True)
class InCallCode:
    """One of our phones on an answered call keyed an in-call code (*1 record on/off, *2 pause,
    *3 resume; in_call_keys.py)."""

    call_id: str
    channel_id: str
    code: str


@dataclass(frozen=True)
class PartiesChanged:
    """A party left the call or was replaced (a transfer) while the call goes on: `left` is the
    channel gone, `joined` the one that took its place (None: nobody yet)."""

    call_id: str
    left: str
    joined: str | None


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    cause_code: int
    cause: str
    answered: bool


CallEvent = (CallStarted | CallAnswered | QueueJoined | QueueLeft | AgentConnected | AgentReleased
             | CallTransferred | TransferAsked | SurveyDue | IvrEntered | SensitiveInput | InCallCode
             | PartiesChanged | CallEnded)
