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
from typing import Any

from appliance.media.tones import ToneSpec
from appliance.pbx.channel import NORMAL_CLEARING, Answered, Cause, Channel, ChannelState, HungUp, Party, Ringing


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
