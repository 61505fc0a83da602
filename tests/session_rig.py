"""An in-process rig for call-session drivers: one caller on a real MediaEngine, on virtual time.

The caller is an RTP peer of one PCMU leg: each 20 ms step it sends a tone, silence or nothing,
the engine ticks, the engine's media events are delivered to `rig.session` as the PBX does
(Engine._media_event), and due timers of the rig's Scheduler fire. What the caller hears is
decoded from the packets the leg sends. Keys arrive either as RFC 4733 telephone-event packets
fed to the engine (`press`, detected by it) or as DtmfReceived events posted directly (`key`).
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from types import TracebackType
from typing import Any

import numpy as np

from appliance.media import g711, rtp
from appliance.media.dtmf import TelephoneEvent, encode_event, event_code
from appliance.media.engine import MediaEngine
from appliance.media.events import DtmfEvent, PlaybackFinished
from appliance.pbx.channel import NORMAL_CLEARING, Cause, Channel, DtmfReceived, Party, PlaybackEnded
from tests.audio import goertzel_power

TICK = 0.02
PT_EVENT = 101
RATE = 8000
SAMPLES = 160  # one 20 ms PCMU packet


class TestChannel(Channel):
    """A channel whose technology is the test: a session driver only uses its leg and caller."""

    technology = "test"
    __test__ = False

    def ring(self) -> None: ...
    def progress(self) -> None: ...
    def answer(self) -> None: ...
    def hangup(self, cause: Cause = NORMAL_CLEARING) -> None: ...
    def notify_transfer(self, status: int, reason: str, final: bool) -> None: ...
    def remote_description(self) -> str:
        return "rig"


class _Timer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Rig:
    """One caller on one engine leg, a virtual clock and a Scheduler on it.

    `send_silence`: whether the caller's phone sends silence on steps without a talking tone, as
    a real one does, or nothing at all.
    """

    def __init__(self, send_silence: bool = True) -> None:
        self.now = 1000.0
        self.send_silence = send_silence
        self.events: list[Any] = []
        self.engine = MediaEngine(self.events.append, clock=lambda: self.now, wallclock=lambda: self.now)
        self.chan = TestChannel("inbound", Party("1002", "Bob"), "1001")
        self.heard: list[bytes] = []
        self.engine.add_leg(self.chan.media_leg, 0, lambda d, a: self.heard.append(d), lambda d, a: None)
        self.engine.configure_leg(self.chan.media_leg, ("127.0.0.1", 4000), "PCMU", 0, PT_EVENT)
        self._timers: list[tuple[float, int, _Timer, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._rtp_seq = 0
        self._ts = 0  # advances by one packet per audio packet sent
        self.session: Any = None
        self.detected: list[str] = []  # digits the engine detected (RFC 4733)

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the engine (its leg, any player or recorder)."""
        self.engine.close()

    def schedule(self, delay: float, fn: Callable[[], None]) -> _Timer:
        """The Scheduler the session is given: `fn` runs at the first step at or after now + delay."""
        handle = _Timer()
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), handle, fn))
        return handle

    def _send(self, pt: int, ts: int, payload: bytes, marker: bool = False) -> None:
        self.engine.rtp_received(self.engine.legs[self.chan.media_leg],
                                 rtp.build(pt, self._rtp_seq, ts, 77, payload, marker), ("127.0.0.1", 4000),
                                 self.now)
        self._rtp_seq += 1

    def _send_audio(self, pcm: np.ndarray) -> None:
        self._send(0, self._ts, g711.ulaw_encode(pcm).tobytes())
        self._ts += SAMPLES

    def step(self, talk: float | None = None) -> None:
        """One 20 ms tick; `talk`: the frequency of the tone the caller sends, else silence or nothing."""
        if talk is not None:
            n = np.arange(self._ts, self._ts + SAMPLES)
            self._send_audio((8000 * np.sin(2 * np.pi * talk * n / RATE)).astype(np.int16))
        elif self.send_silence:
            self._send_audio(np.zeros(SAMPLES, dtype=np.int16))
        self.engine.tick(self.now)
        self.now += TICK
        self._deliver()
        while self._timers and self._timers[0][0] <= self.now:
            _, _, handle, fn = heapq.heappop(self._timers)
            if not handle.cancelled:
                fn()

    def _deliver(self) -> None:
        events, self.events[:] = list(self.events), []
        for ev in events:  # what Engine._media_event does
            if isinstance(ev, PlaybackFinished):
                self.session.handle(PlaybackEnded(self.chan, ev.play_id))
            elif isinstance(ev, DtmfEvent):
                self.detected.append(ev.digit)
                self.session.handle(DtmfReceived(self.chan, ev.digit, ev.source))

    def press(self, digit: str) -> None:
        """An RFC 4733 key press of 60 ms: three packets with the event's start timestamp (2.5.1.2)."""
        start = self._ts
        for i in range(3):
            payload = encode_event(TelephoneEvent(event_code(digit), end=i == 2, volume=10, duration=160 * (i + 1)))
            self._send(PT_EVENT, start, payload, marker=i == 0)
            self.step()

    def key(self, digit: str) -> None:
        """A key as the signalling delivers it, straight to the session (no engine detection)."""
        self.session.handle(DtmfReceived(self.chan, digit, "rfc4733"))

    def run(self, seconds: float, talk: float | None = None) -> None:
        for _ in range(round(seconds / TICK)):
            self.step(talk)

    def run_until(self, cond: Callable[[], bool], limit: float = 30.0, talk: float | None = None) -> float:
        """Advance until `cond()`; returns the virtual seconds it took."""
        start = self.now
        while not cond():
            if self.now - start > limit:
                raise AssertionError(f"condition not met within {limit} s (state {self.session.state})")
            self.step(talk)
        return self.now - start

    def heard_pcm(self, since: int = 0) -> np.ndarray:
        """What the caller heard (8 kHz) from packet `since` on."""
        return g711.ulaw_decode(b"".join(rtp.parse(d).payload for d in self.heard[since:])).astype(np.float64)


def power_share(pcm: np.ndarray, freq: float) -> float:
    """The share of `pcm`'s (8 kHz) power at `freq`; 0 for nothing or silence."""
    if pcm.size == 0 or not np.any(pcm):
        return 0.0
    return goertzel_power(pcm, RATE, freq) / float(np.mean(pcm ** 2))


def rms(pcm: np.ndarray) -> float:
    """The root mean square level of `pcm`."""
    return float(np.sqrt(np.mean(pcm ** 2)))
