"""An in-process rig for the PBX core: a real `Switchboard` (calls, transfer, supervision, the ACD)
on a real store, with fakes of its PORTS only: the media engine (`FakeMedia`, a MediaPort that
keeps the bridges, players and monitors it was asked for), the clock and scheduler (`SimClock`,
virtual time), and the channel technology (`Line`, `Phones`: a ChannelFactory whose legs are
driven by the test as a SIP phone's far end would be).

The pattern is tests/session_rig.py's: nothing of the component under test is faked.
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.media.tones import ToneSpec
from appliance.pbx.call import Call
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
from appliance.pbx.switchboard import PbxSettings, Switchboard
from appliance.store.db import Store
from appliance.store.models import Extension


class SimTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimClock:
    """Virtual time: the Scheduler port (`schedule`) and the clock (`__call__`)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self._timers: list[tuple[float, int, SimTimer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    def schedule(self, delay: float, fn: Callable[[], None]) -> SimTimer:
        handle = SimTimer()
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), handle, fn))
        return handle

    def advance(self, seconds: float) -> None:
        """Run every timer due within the next `seconds`, in time order."""
        until = self.now + seconds
        while self._timers and self._timers[0][0] <= until:
            at, _, handle, fn = heapq.heappop(self._timers)
            self.now = max(self.now, at)
            if not handle.cancelled:
                fn()
        self.now = until


class FakeMedia:
    """The MediaPort, keeping what the PBX asked of it: which legs each bridge mixes, what each
    leg hears played, and each monitoring leg's (hears, whisper_to)."""

    def __init__(self) -> None:
        self.legs: set[str] = set()
        self.bridges: dict[str, set[str]] = {}
        self.playing: dict[str, ToneSpec | str] = {}
        self.monitors: dict[str, tuple[list[str], list[str]]] = {}
        self.dtmf: list[tuple[str, str]] = []
        self.ops: list[tuple[str, ...]] = []
        self._ids = itertools.count(1)

    def bridge_of(self, leg_id: str) -> str | None:
        return next((b for b, legs in self.bridges.items() if leg_id in legs), None)

    def create_leg(self, leg_id: str) -> int:
        self.legs.add(leg_id)
        return 40000

    def configure_leg(self, leg_id: str, remote: tuple[str, int] | None, codec: str, payload_type: int,
                      dtmf_payload_type: int | None, direction: str = "sendrecv",
                      detect_inband_dtmf: bool = False) -> None: ...

    def destroy_leg(self, leg_id: str) -> None:
        self.legs.discard(leg_id)
        self.unbridge(leg_id)
        self.playing.pop(leg_id, None)
        self.monitors.pop(leg_id, None)

    def bridge(self, bridge_id: str, leg_ids: list[str]) -> None:
        self.ops.append(("bridge", bridge_id, *leg_ids))
        for leg in leg_ids:  # a leg is in one bridge at a time, and a bridge ends its monitor
            self.unbridge(leg)
            self.monitors.pop(leg, None)
        self.bridges.setdefault(bridge_id, set()).update(leg_ids)

    def unbridge(self, leg_id: str) -> None:
        for legs in self.bridges.values():
            legs.discard(leg_id)

    def destroy_bridge(self, bridge_id: str) -> None:
        self.ops.append(("destroy_bridge", bridge_id))
        self.bridges.pop(bridge_id, None)

    def play(self, leg_id: str, source: ToneSpec | str, loop: bool = True) -> str:
        self.playing[leg_id] = source
        return f"play-{next(self._ids)}"

    def stop_play(self, leg_id: str) -> None:
        self.playing.pop(leg_id, None)

    def record(self, target: str, path: str) -> str:
        return f"rec-{next(self._ids)}"

    def stop_record(self, rec_id: str) -> None: ...

    def record_parties(self, path: str, legs: list[str], stereo: bool) -> str:
        return f"rec-{next(self._ids)}"

    def record_set_party(self, rec_id: str, index: int, leg_id: str) -> None: ...

    def pause_record(self, rec_id: str) -> None: ...

    def resume_record(self, rec_id: str) -> None: ...

    def monitor(self, leg_id: str, hears: list[str], whisper_to: list[str]) -> None:
        self.unbridge(leg_id)  # as the engine: a monitoring leg leaves any bridge
        self.monitors[leg_id] = (list(hears), list(whisper_to))

    def unmonitor(self, leg_id: str) -> None:
        self.monitors.pop(leg_id, None)

    def send_dtmf(self, leg_id: str, digit: str, duration_ms: int = 100) -> None:
        self.dtmf.append((leg_id, digit))

    def detect_machine(self, leg_id: str, params: dict[str, Any] | None = None) -> None: ...

    def stop_detect_machine(self, leg_id: str) -> None: ...

    def leg_stats(self, leg_id: str) -> dict[str, Any]:
        return {}

    def engine_stats(self) -> dict[str, Any]:
        return {}


class Line(Channel):
    """A call leg whose far end is the test. The PBX's requests move its state as a SIP channel's
    would (posting nothing); `remote_*`, `key`, `refer` are what the phone at the far end does."""

    technology = "line"

    def __init__(self, media: FakeMedia, direction: str, caller: Party, callee: str) -> None:
        super().__init__(direction, caller, callee)
        self.media = media
        self.dialled = False
        self.ended_with: Cause | None = None
        self.notified: list[tuple[int, str, bool]] = []  # transfer progress (NOTIFY sipfrag)
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
        line = Line(self.media, "outbound", caller, ext.number)
        self.lines.append(line)
        return [line]

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel:
        line = Line(self.media, "outbound", caller, dest.number)
        self.lines.append(line)
        return line

    def reachable(self, number: str) -> bool:
        return number in self.registered

    def ringing(self, number: str) -> Line:
        """The newest line dialled towards `number`."""
        return next(line for line in reversed(self.lines) if line.callee == number)


class PbxRig:
    """A real Switchboard on `store`, with fake media, virtual time and test-driven phones."""

    def __init__(self, store: Store, tmp_path: Path, failure_tone_seconds: float = 2.0) -> None:
        self.store = store
        self.clock = SimClock()
        self.media = FakeMedia()
        self.phones = Phones(self.media)
        settings = PbxSettings(failure_tone_seconds=failure_tone_seconds, tts_dir=tmp_path / "tts",
                               recordings_dir=tmp_path / "recordings", voicemail_dir=tmp_path / "voicemail")
        self.pbx = Switchboard(store, self.media, self.clock.schedule, settings, clock=self.clock)
        self.pbx.factory = self.phones

    def extension(self, number: str, registered: bool = True, **fields: Any) -> Extension:
        ext = Extension(number=number, name=f"Desk {number}", secret=f"secret-{number}", **fields)
        self.store.put_extension(ext)
        self.pbx.reload()
        if registered:
            self.phones.registered.add(number)
        return ext

    def dial(self, from_ext: str, number: str) -> tuple[Call, Line]:
        """The phone of `from_ext` calls `number`: its inbound leg and the call the PBX made."""
        ext = self.pbx.dialplan.extensions[from_ext]
        line = Line(self.media, "inbound", Party(from_ext, ext.name), number)
        return self.pbx.incoming(line, number, ext), line

    def connected(self, from_ext: str, to_ext: str) -> tuple[Call, Line, Line]:
        """An answered call from `from_ext` to `to_ext`: (call, caller's leg, callee's leg)."""
        call, a = self.dial(from_ext, to_ext)
        b = self.phones.ringing(to_ext)
        b.remote_ringing()
        b.remote_answer()
        return call, a, b
