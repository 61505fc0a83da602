"""Adaptive jitter buffer per leg, keyed by extended RTP sequence number.

Each packet is assumed to carry one 20 ms frame (the ptime we offer). The target depth follows the
RFC 3550 A.8 interarrival jitter: ``20 ms + 3 * jitter`` rounded up to frames, within 20..200 ms.
Playout states: BUFFERING (waiting until ``target`` frames are queued) and PLAYING (one frame per
tick; a missing frame yields None). An underrun returns to BUFFERING, so the depth grows; a queue
longer than target + 2 frames drops its oldest frame, so the depth shrinks.
"""

from __future__ import annotations

import enum
import math

from appliance.media.rtcp import MAX_DROPOUT, MAX_MISORDER, ReceptionStats

FRAME_MS = 20
MIN_DEPTH_MS = 20
MAX_DEPTH_MS = 200


class PlayoutState(enum.Enum):
    BUFFERING = "buffering"
    PLAYING = "playing"


class JitterBuffer:
    """Reorders packets, drops duplicates and late packets, returns one payload per tick."""

    def __init__(self, clock_rate: int = 8000) -> None:
        self.stats = ReceptionStats(clock_rate=clock_rate)
        self.state = PlayoutState.BUFFERING
        self._buf: dict[int, bytes] = {}
        self._next: int | None = None
        self.duplicates = 0
        self.late = 0
        self.lost_frames = 0  # ticks that found the expected frame missing while playing
        self.dropped = 0  # frames discarded to shrink the depth
        self.played = 0
        self.target = 1  # frames

    @property
    def depth(self) -> int:
        """Frames currently queued."""
        return len(self._buf)

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter (RFC 3550 A.8) in milliseconds."""
        return self.stats.jitter * 1000.0 / self.stats.clock_rate

    def reset(self) -> None:
        """Drop everything (new SSRC, re-INVITE)."""
        self._buf.clear()
        self._next = None
        self.state = PlayoutState.BUFFERING
        self.stats = ReceptionStats(clock_rate=self.stats.clock_rate)

    def put(self, seq: int, timestamp: int, payload: bytes, arrival: float) -> bool:
        """Queue a packet that arrived at ``arrival`` seconds; False if dropped (late/duplicate)."""
        ext = self.stats.update(seq, timestamp, arrival)
        if self._next is not None:
            if ext < self._next - MAX_MISORDER or ext > self._next + MAX_DROPOUT:
                # the stream restarted (new sequence space): play it from here
                self._buf.clear()
                self._next = None
                self.state = PlayoutState.BUFFERING
            elif ext < self._next:
                self.late += 1
                return False
        if ext in self._buf:
            self.duplicates += 1
            return False
        self._buf[ext] = payload
        target_ms = min(MAX_DEPTH_MS, max(MIN_DEPTH_MS, FRAME_MS + 3.0 * self.jitter_ms))
        self.target = math.ceil(target_ms / FRAME_MS - 1e-9)
        if len(self._buf) > 2 * MAX_DEPTH_MS // FRAME_MS:  # hard cap: drop the oldest
            oldest = min(self._buf)
            del self._buf[oldest]
            self.dropped += 1
            if self._next is not None and self._next <= oldest:
                self._next = oldest + 1
        return True

    def get(self) -> bytes | None:
        """The payload for this 20 ms tick, or None (buffering, lost or nothing received)."""
        if self.state is PlayoutState.BUFFERING:
            if len(self._buf) < self.target:
                return None
            first = min(self._buf)
            self._next = first if self._next is None else max(first, self._next)
            self.state = PlayoutState.PLAYING
        if self._next is None:  # unreachable: PLAYING always has a next frame
            return None
        if len(self._buf) > self.target + 2:
            self._buf.pop(self._next, None)
            self._next += 1
            self.dropped += 1
        payload = self._buf.pop(self._next, None)
        self._next += 1
        if payload is None:
            self.lost_frames += 1
            if not self._buf:
                self.state = PlayoutState.BUFFERING
        else:
            self.played += 1
        return payload
