"""Fakes of the PBX's ports for unit tests of its services (docs/ARCHITECTURE.md, "Ports").

The service under test is always the real one; what it is given is one of these:

- `VirtualTime`: a clock (`clock()`) and the `Scheduler` on it; `advance` fires due timers in order;
- `FakeMedia`: the `MediaPort`, recording every request as (method, leg or id, ...) and keeping
  what the PBX asked for: which legs each bridge mixes, what each leg hears, each monitoring
  leg's (hears, whisper_to);
- `Line`: a call leg whose far end is the test (`remote_*`, `key`, `refer`), and `Phones`, the
  ChannelFactory port that makes them for registered extensions and trunks;
- `Caller` and `QueuePbx`: a call and the PBX as the distributor sees them (its `QueueCall` and
  `DistributorPbx` ports).

Like tests/session_rig.py, nothing here is a stand-in for the component a test is about;
tests/pbx_rig.py assembles a real `Switchboard` on these.
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.ivr.contacts import InMemoryContacts
from appliance.ivr.tts import PromptCache
from appliance.media.tones import ToneSpec
from appliance.pbx.channel import (
    NORMAL_CLEARING,
    Answered,
    Cause,
    Channel,
    ChannelState,
    DtmfReceived,
    HungUp,
    Party,
    Ringing,
    TransferRequested,
)
from appliance.pbx.dialplan import ToTrunk
from appliance.store.db import Store
from appliance.store.models import Extension, QueueConfig


class Timer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualTime:
    """A clock (`clock()`) and the Scheduler on it (`schedule`); `advance` fires due timers in order."""

    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now
        self._timers: list[tuple[float, int, Timer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    def schedule(self, delay: float, fn: Callable[[], None]) -> Timer:
        handle = Timer()
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), handle, fn))
        return handle

    def advance(self, seconds: float) -> None:
        """Move time on by `seconds`, running each timer due on the way at its own time."""
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            at, _, handle, fn = heapq.heappop(self._timers)
            self.now = max(self.now, at)
            if not handle.cancelled:
                fn()
        self.now = end


class FakeMedia:
    """The media port: records every request as (method, leg or id, ...) in `requests` and keeps
    its state (legs, bridges, what each leg hears, monitors, DTMF sent); nothing is mixed."""

    def __init__(self) -> None:
        self.requests: list[tuple[Any, ...]] = []
        self.legs: set[str] = set()
        self.bridges: dict[str, set[str]] = {}
        self.playing: dict[str, ToneSpec | str] = {}
        self.monitors: dict[str, tuple[list[str], list[str]]] = {}
        self.dtmf: list[tuple[str, str]] = []
        self._ids = itertools.count(1)

    def _did(self, *request: Any) -> str:
        self.requests.append(request)
        return f"media-{next(self._ids)}"

    def played(self, leg_id: str) -> list[Any]:
        """The sources played on `leg_id`, in order."""
        return [r[2] for r in self.requests if r[0] == "play" and r[1] == leg_id]

    def bridge_of(self, leg_id: str) -> str | None:
        return next((b for b, legs in self.bridges.items() if leg_id in legs), None)

    def _leave_bridges(self, leg_id: str) -> None:
        for legs in self.bridges.values():
            legs.discard(leg_id)

    def create_leg(self, leg_id: str) -> int:
        self._did("create_leg", leg_id)
        self.legs.add(leg_id)
        return 40000

    def configure_leg(self, leg_id: str, remote: tuple[str, int] | None, codec: str, payload_type: int,
                      dtmf_payload_type: int | None, direction: str = "sendrecv",
                      detect_inband_dtmf: bool = False) -> None:
        self._did("configure_leg", leg_id)

    def destroy_leg(self, leg_id: str) -> None:
        self._did("destroy_leg", leg_id)
        self.legs.discard(leg_id)
        self._leave_bridges(leg_id)
        self.playing.pop(leg_id, None)
        self.monitors.pop(leg_id, None)

    def bridge(self, bridge_id: str, leg_ids: list[str]) -> None:
        self._did("bridge", bridge_id, tuple(leg_ids))
        for leg in leg_ids:  # a leg is in one bridge at a time, and a bridge ends its monitor
            self._leave_bridges(leg)
            self.monitors.pop(leg, None)
        self.bridges.setdefault(bridge_id, set()).update(leg_ids)

    def unbridge(self, leg_id: str) -> None:
        self._did("unbridge", leg_id)
        self._leave_bridges(leg_id)

    def destroy_bridge(self, bridge_id: str) -> None:
        self._did("destroy_bridge", bridge_id)
        self.bridges.pop(bridge_id, None)

    def play(self, leg_id: str, source: ToneSpec | str, loop: bool = True) -> str:
        self.playing[leg_id] = source
        return self._did("play", leg_id, source, loop)

    def stop_play(self, leg_id: str) -> None:
        self._did("stop_play", leg_id)
        self.playing.pop(leg_id, None)

    def record(self, target: str, path: str) -> str:
        return self._did("record", target, path)

    def stop_record(self, rec_id: str) -> None:
        self._did("stop_record", rec_id)

    def record_parties(self, path: str, legs: list[str], stereo: bool) -> str:
        return self._did("record_parties", path, tuple(legs), stereo)

    def record_set_party(self, rec_id: str, index: int, leg_id: str) -> None:
        self._did("record_set_party", rec_id, index, leg_id)

    def pause_record(self, rec_id: str) -> None:
        self._did("pause_record", rec_id)

    def resume_record(self, rec_id: str) -> None:
        self._did("resume_record", rec_id)

    def monitor(self, leg_id: str, hears: list[str], whisper_to: list[str]) -> None:
        self._did("monitor", leg_id)
        self._leave_bridges(leg_id)  # as the engine: a monitoring leg leaves any bridge
        self.monitors[leg_id] = (list(hears), list(whisper_to))

    def unmonitor(self, leg_id: str) -> None:
        self._did("unmonitor", leg_id)
        self.monitors.pop(leg_id, None)

    def send_dtmf(self, leg_id: str, digit: str, duration_ms: int = 100) -> None:
        self._did("send_dtmf", leg_id, digit)
        self.dtmf.append((leg_id, digit))

    def detect_machine(self, leg_id: str, params: dict[str, Any] | None = None) -> None:
        self._did("detect_machine", leg_id)

    def stop_detect_machine(self, leg_id: str) -> None:
        self._did("stop_detect_machine", leg_id)

    def leg_stats(self, leg_id: str) -> dict[str, Any]:
        return {}

    def engine_stats(self) -> dict[str, Any]:
        return {}


class Line(Channel):
    """A call leg whose far end is the test. The PBX's requests move its state as a SIP channel's
    would (posting nothing); `remote_*`, `key`, `refer` are what the phone at the far end does."""

    technology = "line"

    def __init__(self, direction: str, caller: Party, callee: str, media: FakeMedia | None = None) -> None:
        super().__init__(direction, caller, callee)
        self.media = media  # None: a leg the media port never hears of (a distributor's offer)
        self.dialled = False
        self.ended_with: Cause | None = None  # the cause the PBX hung up with
        self.notified: list[tuple[int, str, bool]] = []  # transfer progress (NOTIFY sipfrag)
        if media is not None:
            media.create_leg(self.media_leg)

    def ring(self) -> None:
        if not self.is_down and not self.is_up:
            self.set_state(ChannelState.RINGING)

    def progress(self) -> None:
        if not self.is_down and not self.is_up and self.state != ChannelState.EARLY:
            self.set_state(ChannelState.EARLY)

    def answer(self) -> None:
        if not self.is_down and not self.is_up:
            self.set_state(ChannelState.UP)

    def hangup(self, cause: Cause = NORMAL_CLEARING) -> None:
        if self.is_down:
            return
        self.ended_with = cause
        self.set_state(ChannelState.DOWN)
        if self.media is not None:
            self.media.destroy_leg(self.media_leg)

    def notify_transfer(self, status: int, reason: str, final: bool) -> None:
        self.notified.append((status, reason, final))

    def remote_description(self) -> str:
        return "test"

    def dial(self) -> None:
        self.dialled = True

    # -- the far end ------------------------------------------------------------------------
    def remote_ringing(self) -> None:
        self.set_state(ChannelState.RINGING)
        self.post(Ringing(self))

    def remote_answer(self) -> None:
        self.set_state(ChannelState.UP)
        self.post(Answered(self))

    def remote_hangup(self, cause: Cause = NORMAL_CLEARING) -> None:
        self.set_state(ChannelState.DOWN)
        if self.media is not None:
            self.media.destroy_leg(self.media_leg)
        self.post(HungUp(self, cause, remote=True))

    def key(self, digit: str) -> None:
        self.post(DtmfReceived(self, digit, "rfc4733"))

    def refer(self, target: str, replaces: tuple[str, str | None, str | None] | None = None) -> None:
        self.post(TransferRequested(self, target, replaces))


class Phones:
    """The ChannelFactory port: every enabled extension listed in `registered` has one phone;
    each call to it makes a new `Line`, kept in `lines` (newest last)."""

    def __init__(self, media: FakeMedia) -> None:
        self.media = media
        self.registered: set[str] = set()
        self.lines: list[Line] = []

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]:
        if ext.number not in self.registered:
            return []
        line = Line("outbound", caller, ext.number, self.media)
        self.lines.append(line)
        return [line]

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel:
        line = Line("outbound", caller, dest.number, self.media)
        self.lines.append(line)
        return line

    def reachable(self, number: str) -> bool:
        return number in self.registered

    def ringing(self, number: str) -> Line:
        """The newest line dialled towards `number`."""
        return next(line for line in reversed(self.lines) if line.callee == number)


class Caller:
    """A caller as the distributor sees a call (the `QueueCall` port), recording what it is asked."""

    def __init__(self, call_id: str, number: str, priority: int | None = None) -> None:
        self.id = call_id
        self.a: Channel = Line("inbound", Party(number, f"Caller {number}"), "6000")
        self.direction = "inbound"
        self.dialed = "6000"
        self.variables: dict[str, str] = {} if priority is None else {"priority": str(priority)}
        self.queue_config: QueueConfig | None = None
        self.agent_answered_at: float | None = None
        self.interaction_id: int | None = None
        self.queue_entry: Any = None
        self.agent: tuple[Channel, str] | None = None
        self.overflowed_to: str | None = None
        self.hung_up = False

    def link_interaction(self, interaction_id: int | None) -> None:
        self.interaction_id = interaction_id

    def waiting_as(self, entry: Any) -> None:
        self.queue_entry = entry

    def connect_agent(self, chan: Channel, agent_id: str, queue: QueueConfig) -> None:
        self.agent, self.queue_config, self.agent_answered_at = (chan, agent_id), queue, 0.0

    def overflow(self, dest: str) -> None:
        self.overflowed_to = dest

    def hangup(self, chan: Channel | None = None) -> None:
        self.hung_up = True


@dataclass
class Paths:
    sounds_dir: Path | None = None
    node: str = "local"


@dataclass
class Extensions:
    extensions: dict[str, Extension] = field(default_factory=dict)


class QueuePbx:
    """The distributor's PBX port (`DistributorPbx`): agents' desk phones ring as `Line`s kept in `phones`."""

    def __init__(self, store: Store, time: VirtualTime, prompts: PromptCache) -> None:
        self.store = store
        self.schedule = time.schedule
        self.media = FakeMedia()
        self.prompts = prompts
        self.contacts = InMemoryContacts()
        self.settings = Paths()
        self.dialplan = Extensions()
        self.calls: dict[str, Caller] = {}
        self.phones: dict[str, list[Line]] = {}  # extension -> every channel that rang it
        self.callbacks: list[tuple[Channel, str, str]] = []

    def moh_source(self) -> str:
        return "default-moh"

    def device_busy(self, number: str) -> bool:
        return any(not c.is_down for c in self.phones.get(number, []))

    def device_reachable(self, number: str) -> bool:
        return number in self.dialplan.extensions

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]:
        chan = Line("outbound", caller, ext.number)
        chan.extension = ext.number
        self.phones.setdefault(ext.number, []).append(chan)
        return [chan]

    def callback_refusal(self, number: str) -> str | None:
        return None

    def call_back(self, agent_chan: Channel, number: str, agent_id: str, queue: QueueConfig) -> Caller:
        self.callbacks.append((agent_chan, number, agent_id))
        call = Caller(f"cb-{len(self.callbacks)}", number)
        self.calls[call.id] = call
        return call

    def ringing(self, ext: str) -> Line:
        """The channel ringing `ext` now (there must be exactly one)."""
        live = [c for c in self.phones.get(ext, []) if c.dialled and not c.is_down]
        assert len(live) == 1, f"{ext}: {len(live)} channels ringing"
        return live[0]
