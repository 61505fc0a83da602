"""Fakes of the PBX's ports for unit tests of its services (docs/ARCHITECTURE.md, "Ports").

The service under test is always the real one; what it is given is one of these: virtual time
with a `Scheduler` on it, a media port that records what it is asked, and phone channels whose
far end the test plays (ring, answer, reject). Like tests/session_rig.py, nothing here is a
stand-in for the component a test is about.
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
from appliance.pbx.channel import NORMAL_CLEARING, Answered, Cause, Channel, ChannelState, HungUp, Party, Ringing
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
    """The media port: records every request as (method, leg or id, ...); nothing is mixed."""

    def __init__(self) -> None:
        self.requests: list[tuple[Any, ...]] = []
        self._ids = itertools.count(1)

    def _did(self, *request: Any) -> str:
        self.requests.append(request)
        return f"media-{next(self._ids)}"

    def create_leg(self, leg_id: str) -> int:
        self._did("create_leg", leg_id)
        return 40000

    def configure_leg(self, leg_id: str, remote: tuple[str, int] | None, codec: str, payload_type: int,
                      dtmf_payload_type: int | None, direction: str = "sendrecv",
                      detect_inband_dtmf: bool = False) -> None:
        self._did("configure_leg", leg_id)

    def destroy_leg(self, leg_id: str) -> None:
        self._did("destroy_leg", leg_id)

    def bridge(self, bridge_id: str, leg_ids: list[str]) -> None:
        self._did("bridge", bridge_id, tuple(leg_ids))

    def unbridge(self, leg_id: str) -> None:
        self._did("unbridge", leg_id)

    def destroy_bridge(self, bridge_id: str) -> None:
        self._did("destroy_bridge", bridge_id)

    def play(self, leg_id: str, source: ToneSpec | str, loop: bool = True) -> str:
        return self._did("play", leg_id, source, loop)

    def stop_play(self, leg_id: str) -> None:
        self._did("stop_play", leg_id)

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

    def unmonitor(self, leg_id: str) -> None:
        self._did("unmonitor", leg_id)

    def send_dtmf(self, leg_id: str, digit: str, duration_ms: int = 100) -> None:
        self._did("send_dtmf", leg_id, digit)

    def detect_machine(self, leg_id: str, params: dict[str, Any] | None = None) -> None:
        self._did("detect_machine", leg_id)

    def stop_detect_machine(self, leg_id: str) -> None:
        self._did("stop_detect_machine", leg_id)

    def leg_stats(self, leg_id: str) -> dict[str, Any]:
        return {}

    def engine_stats(self) -> dict[str, Any]:
        return {}

    def played(self, leg_id: str) -> list[Any]:
        """The sources played on `leg_id`, in order."""
        return [r[2] for r in self.requests if r[0] == "play" and r[1] == leg_id]


class PhoneChannel(Channel):
    """A leg whose far end is the test: the PBX's requests move its state as a SIP channel's
    would (a local action posts no event), and `far_*` posts what the far end did."""

    technology = "phone"

    def __init__(self, direction: str, caller: Party, callee: str) -> None:
        super().__init__(direction, caller, callee)
        self.dialled = False
        self.hangup_cause: Cause | None = None

    def dial(self) -> None:
        self.dialled = True

    def ring(self) -> None:
        if self.state in (ChannelState.OFFERED, ChannelState.DIALING):
            self.set_state(ChannelState.RINGING)

    def progress(self) -> None: ...

    def answer(self) -> None:
        if not self.is_down and not self.is_up:
            self.set_state(ChannelState.UP)

    def hangup(self, cause: Cause = NORMAL_CLEARING) -> None:
        if self.is_down:
            return
        self.hangup_cause = cause
        self.set_state(ChannelState.DOWN)

    def notify_transfer(self, status: int, reason: str, final: bool) -> None: ...

    def remote_description(self) -> str:
        return "test"

    # -- what the far end does ----------------------------------------------------------------
    def far_ringing(self) -> None:
        self.set_state(ChannelState.RINGING)
        self.post(Ringing(self))

    def far_answer(self) -> None:
        self.set_state(ChannelState.UP)
        self.post(Answered(self))

    def far_hangup(self, cause: Cause = NORMAL_CLEARING) -> None:
        self.hangup_cause = cause
        self.set_state(ChannelState.DOWN)
        self.post(HungUp(self, cause, remote=True))


class Caller:
    """A caller as the distributor sees a call (the `QueueCall` port), recording what it is asked."""

    def __init__(self, call_id: str, number: str, priority: int | None = None) -> None:
        self.id = call_id
        self.a: Channel = PhoneChannel("inbound", Party(number, f"Caller {number}"), "6000")
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


@dataclass
class Extensions:
    extensions: dict[str, Extension] = field(default_factory=dict)


class QueuePbx:
    """The distributor's PBX port (`DistributorPbx`): agents' desk phones ring as `PhoneChannel`s kept in `phones`."""

    def __init__(self, store: Store, time: VirtualTime, prompts: PromptCache) -> None:
        self.store = store
        self.schedule = time.schedule
        self.media = FakeMedia()
        self.prompts = prompts
        self.contacts = InMemoryContacts()
        self.settings = Paths()
        self.dialplan = Extensions()
        self.calls: dict[str, Caller] = {}
        self.phones: dict[str, list[PhoneChannel]] = {}  # extension -> every channel that rang it
        self.callbacks: list[tuple[Channel, str, str]] = []

    def moh_source(self) -> str:
        return "default-moh"

    def device_busy(self, number: str) -> bool:
        return any(not c.is_down for c in self.phones.get(number, []))

    def device_reachable(self, number: str) -> bool:
        return number in self.dialplan.extensions

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]:
        chan = PhoneChannel("outbound", caller, ext.number)
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

    def ringing(self, ext: str) -> PhoneChannel:
        """The channel ringing `ext` now (there must be exactly one)."""
        live = [c for c in self.phones.get(ext, []) if c.dialled and not c.is_down]
        assert len(live) == 1, f"{ext}: {len(live)} channels ringing"
        return live[0]
