"""Channels: one call leg, whatever its technology (SIP/RTP, line-board port, headset).

The PBX drives channels through this interface and hears from them only through typed
events, so queues, IVR and transfer work the same for SIP and for analog/ISDN calls.
Every channel owns one leg of the media engine (`media_leg`).
"""
from __future__ import annotations

import enum
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field


class ChannelState(enum.Enum):
    DIALING = "dialing"  # outbound: request sent, nothing heard yet
    OFFERED = "offered"  # inbound: the call has arrived, routing under way
    RINGING = "ringing"  # the callee's device is alerting
    EARLY = "early"  # early media flowing (183 / in-band progress)
    UP = "up"  # answered
    DOWN = "down"  # ended; terminal


# The one place where channel transitions are decided: anything else is a bug.
_ALLOWED: dict[ChannelState, set[ChannelState]] = {
    ChannelState.DIALING: {ChannelState.RINGING, ChannelState.EARLY, ChannelState.UP, ChannelState.DOWN},
    ChannelState.OFFERED: {ChannelState.RINGING, ChannelState.EARLY, ChannelState.UP, ChannelState.DOWN},
    ChannelState.RINGING: {ChannelState.EARLY, ChannelState.UP, ChannelState.DOWN, ChannelState.RINGING},
    ChannelState.EARLY: {ChannelState.RINGING, ChannelState.UP, ChannelState.DOWN, ChannelState.EARLY},
    ChannelState.UP: {ChannelState.DOWN},
    ChannelState.DOWN: set(),
}


class IllegalTransition(RuntimeError):
    """A channel was asked to move to a state its state machine does not allow."""


@dataclass(frozen=True)
class Cause:
    """Why a channel ended or failed: a SIP-style status (Q.850 maps onto it for ISDN)."""

    code: int
    reason: str

    def __str__(self) -> str:
        return f"{self.code} {self.reason}"


NORMAL_CLEARING = Cause(200, "Normal clearing")
BUSY = Cause(486, "Busy Here")
UNAVAILABLE = Cause(480, "Temporarily Unavailable")
NO_ANSWER = Cause(480, "No Answer")
NOT_FOUND = Cause(404, "Not Found")
FORBIDDEN = Cause(403, "Forbidden")
CANCELLED = Cause(487, "Request Terminated")
CONGESTION = Cause(503, "Service Unavailable")
DECLINED = Cause(603, "Decline")
ANSWERED_ELSEWHERE = Cause(200, "Call completed elsewhere")


@dataclass(frozen=True)
class Party:
    """Who is calling: number and display name as presented."""

    number: str
    name: str = ""


# -- events a channel posts to its listener (the Call that owns it) ---------------
@dataclass(frozen=True)
class Ringing:
    channel: Channel


@dataclass(frozen=True)
class Progress:
    channel: Channel


@dataclass(frozen=True)
class Answered:
    channel: Channel


@dataclass(frozen=True)
class HungUp:
    channel: Channel
    cause: Cause
    remote: bool  # True when the far end ended it


@dataclass(frozen=True)
class HoldChanged:
    channel: Channel
    held: bool


@dataclass(frozen=True)
class TransferRequested:
    """The party on this channel asks to be replaced by `target` (REFER, hook flash...)."""

    channel: Channel
    target: str
    replaces: tuple[str, str | None, str | None] | None  # (call-id, to-tag, from-tag) for attended


@dataclass(frozen=True)
class DtmfReceived:
    """A key from the party on this channel; ``duration_ms`` is how long it was held (RFC 4733
    event length, SIP INFO Duration, the board's report; 100 where the source does not say)."""

    channel: Channel
    digit: str
    source: str
    duration_ms: int = 100


@dataclass(frozen=True)
class MediaTimeout:
    """No media has arrived from the far end for `seconds` (a peer gone without a BYE)."""

    channel: Channel
    seconds: float


@dataclass(frozen=True)
class PlaybackEnded:
    """A prompt played to this channel reached its end."""

    channel: Channel
    play_id: str


ChannelEvent = (Ringing | Progress | Answered | HungUp | HoldChanged | TransferRequested | DtmfReceived
                | MediaTimeout | PlaybackEnded)
_ids = itertools.count(1)


@dataclass
class ChannelInfo:
    """A snapshot for the control API."""

    id: str
    technology: str
    direction: str
    state: str
    caller: str
    caller_name: str
    callee: str
    peer: str
    media_leg: str
    created: float
    answered: float | None
    held: bool
    dtmf: str
    bridge: str | None
    extra: dict[str, object] = field(default_factory=dict)


class Channel(ABC):
    """Base of every channel technology."""

    technology = "generic"

    def __init__(self, direction: str, caller: Party, callee: str) -> None:
        self.id = f"{self.technology}-{next(_ids)}"
        self.direction = direction  # "inbound" (towards the PBX) or "outbound"
        self.caller = caller
        self.callee = callee
        self.state = ChannelState.OFFERED if direction == "inbound" else ChannelState.DIALING
        self.listener: Callable[[ChannelEvent], None] | None = None
        self.media_leg = f"leg-{self.id}"
        self.created = time.time()
        self.answered_at: float | None = None
        self.held = False
        self.dtmf_received = ""
        self.bridge_id: str | None = None
        self.owner: object | None = None  # the Call this channel belongs to
        self.extension: str | None = None  # the local extension whose device this reaches
        self.trunk: str | None = None  # the trunk this leg runs on (permission.py: trunk rights)

    def set_state(self, new: ChannelState) -> bool:
        """Move to `new`; returns False when already there (a repeated 180 is fine)."""
        if new == self.state and new in (ChannelState.RINGING, ChannelState.EARLY):
            return False
        if new not in _ALLOWED[self.state]:
            raise IllegalTransition(f"{self.id}: {self.state.value} -> {new.value}")
        self.state = new
        if new == ChannelState.UP:
            self.answered_at = time.time()
        return True

    @property
    def is_up(self) -> bool:
        return self.state == ChannelState.UP

    @property
    def is_down(self) -> bool:
        return self.state == ChannelState.DOWN

    def post(self, event: ChannelEvent) -> None:
        if isinstance(event, DtmfReceived):
            self.dtmf_received = (self.dtmf_received + event.digit)[-64:]
        if self.listener is not None:
            self.listener(event)

    # -- what the PBX asks of a channel --------------------------------------------
    @abstractmethod
    def ring(self) -> None:
        """Inbound: tell the caller the callee is alerting."""

    @abstractmethod
    def progress(self) -> None:
        """Inbound: open early media so the caller hears tones we play."""

    @abstractmethod
    def answer(self) -> None:
        """Inbound: answer the call."""

    @abstractmethod
    def hangup(self, cause: Cause = NORMAL_CLEARING) -> None:
        """End the channel: reject, cancel or release as its state requires."""

    @abstractmethod
    def notify_transfer(self, status: int, reason: str, final: bool) -> None:
        """Report the progress of a transfer this channel asked for."""

    def party(self) -> Party:
        """Who is on this channel, as presented to a third party (e.g. a transfer target)."""
        if self.direction == "inbound":
            return self.caller
        return Party(self.callee, "")

    def dialog_key(self) -> str:
        """A technology-level identifier of this leg (SIP Call-ID), for CDRs and Replaces."""
        return self.id

    def dial(self) -> None:
        """Outbound: start the call towards the far end."""
        raise NotImplementedError(f"{self.technology} channel {self.id} cannot dial")

    @abstractmethod
    def remote_description(self) -> str:
        """Where the far end is, for status listings."""

    def info_extra(self) -> dict[str, object]:
        """Technology details for status listings (codec, ports, SIP Call-ID...)."""
        return {}

    def info(self) -> ChannelInfo:
        return ChannelInfo(
            id=self.id,
            technology=self.technology,
            direction=self.direction,
            state=self.state.value,
            caller=self.caller.number,
            caller_name=self.caller.name,
            callee=self.callee,
            peer=self.remote_description(),
            media_leg=self.media_leg,
            created=self.created,
            answered=self.answered_at,
            held=self.held,
            dtmf=self.dtmf_received,
            bridge=self.bridge_id,
            extra=self.info_extra(),
        )
