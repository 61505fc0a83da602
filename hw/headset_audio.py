"""The headset's audio path: pjsua2 conference-bridge frames to and from PyAudio streams.

Separate from hw/headset.py (the softphone: SIP, call states, events) because this is the
one part that runs on pjmedia's clock thread rather than the control thread, and the one
part about sound devices rather than SIP. pjsua2 runs with the null sound device, so its
conference bridge ticks on its own 20 ms clock; a `HeadsetPort` (a pjsua2 `AudioMediaPort`)
on that bridge takes each frame it is asked for from the PyAudio input stream (the headset
microphone) and writes each frame it receives to the PyAudio output stream (the earpiece).

Two clocks meet in `HeadsetPort`: the bridge's and the sound device's. It never blocks the
bridge: it reads only what the device has captured, and never more than real time allows
since the call's audio started. That pacing is needed because an emulated PCM such as ALSA's
`file`/`null` plugins (what the tests use) has no clock and hands out samples as fast as they
are read; a USB headset cannot. What is over `MAX_BUFFER_FRAMES` is dropped, oldest first,
and a missing frame becomes silence. On the way out a frame the device has no room for is
dropped.

Threads: `attach`/`detach` run on the headset's control thread; the two frame callbacks run
on pjmedia's clock thread and touch nothing but the streams, under the port's lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pjsua2 as pj

FRAME_MS = 20  # pjmedia's default ptime for G.711 and G.722
MAX_BUFFER_FRAMES = 4  # microphone audio held ahead of the bridge: bounds latency to 80 ms
EARPIECE_PREFILL_FRAMES = 2  # silence written first, so the first late tick does not underrun
CLOCK_SLACK = 0.002  # the device may run this much faster than our clock (USB: +-0.05 %)


# -- errors (hw.headset re-exports them beside its own) -------------------------------------------
class HeadsetError(Exception):
    """Base of the headset driver's errors."""


class DeviceNotFound(HeadsetError):
    """No PyAudio device has the configured name (the message lists those that exist)."""


@dataclass
class AudioStats:
    """Frame counters of one call's audio path (20 ms frames)."""

    mic_frames: int = 0  # frames handed to the bridge
    mic_underruns: int = 0  # ... of which silence because the device had nothing yet
    mic_dropped: int = 0  # frames captured but dropped to bound latency
    ear_frames: int = 0  # frames written to the earpiece
    ear_dropped: int = 0  # frames the earpiece had no room for


# -- device selection -----------------------------------------------------------------------------
def find_device(pa: Any, name: str, want_input: bool) -> int:
    """Index of the PyAudio device called `name` (exact, else the only one containing it)."""
    key = "maxInputChannels" if want_input else "maxOutputChannels"
    devices = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]
    usable = [d for d in devices if int(d[key]) >= 1]
    exact = [d for d in usable if d["name"] == name]
    found = exact or [d for d in usable if name in d["name"]]
    if len(found) != 1:
        kind = "input" if want_input else "output"
        names = ", ".join(repr(d["name"]) for d in usable) or "none"
        what = "no" if not found else f"{len(found)}"
        raise DeviceNotFound(f"{what} {kind} device named {name!r}; {kind} devices: {names}")
    return int(found[0]["index"])


# -- the audio bridge between pjmedia and PyAudio -------------------------------------------------
class HeadsetPort(pj.AudioMediaPort):
    """A conference-bridge port: microphone frames out of PyAudio, earpiece frames into it.

    Its callbacks run on pjmedia's clock thread; `attach`/`detach` run on the control thread.
    """

    def __init__(self, rate: int) -> None:
        super().__init__()
        self.rate = rate
        self.samples = rate * FRAME_MS // 1000
        self.frame_bytes = self.samples * 2  # 16-bit linear mono
        self._silence = bytes(self.frame_bytes)
        self._lock = threading.Lock()
        self._mic: Any = None
        self._ear: Any = None
        self._buf = bytearray()
        self._started = 0.0
        self._captured = 0  # samples read from the microphone since attach()
        # Set from the control thread (the headset's mute button), read on the clock thread: a
        # bool assignment is atomic in CPython. The microphone is still read while muted so its
        # buffer does not fill up and replay stale speech on unmute.
        self.muted = False
        self.stats = AudioStats()
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_L16, rate, 1, FRAME_MS * 1000, 16)
        self.createPort("headset", fmt)

    def attach(self, mic: Any, ear: Any) -> None:
        """Start moving audio between the bridge and these two open PyAudio streams."""
        ear.write(self._silence * EARPIECE_PREFILL_FRAMES)
        with self._lock:
            self._mic, self._ear = mic, ear
            self._buf.clear()
            self._started = time.monotonic()
            self._captured = 0
            self.stats = AudioStats()

    @property
    def attached(self) -> bool:
        return self._mic is not None

    def detach(self) -> tuple[Any, Any]:
        """Stop using the streams and return them (the caller closes them)."""
        with self._lock:
            streams = (self._mic, self._ear)
            self._mic = self._ear = None
            return streams

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        """The bridge wants the next microphone frame."""
        data = self._silence
        with self._lock:
            if self._mic is not None:
                data = self._next_mic_frame()
                if self.muted:
                    data = self._silence
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = len(data)

    def _next_mic_frame(self) -> bytes:
        mic = self._mic
        # Never ahead of real time (plus the drift a real device may have), never more than
        # the latency bound: an emulated PCM would otherwise hand out its whole file at once.
        allowed = int((time.monotonic() - self._started) * self.rate * (1.0 + CLOCK_SLACK))
        allowed += self.samples - self._captured  # the first frame is due at once
        want = min(mic.get_read_available(), allowed)
        if want > 0:
            self._buf += mic.read(want, exception_on_overflow=False)
            self._captured += want
        excess = len(self._buf) - MAX_BUFFER_FRAMES * self.frame_bytes
        if excess > 0:
            drop = -(-excess // self.frame_bytes) * self.frame_bytes
            del self._buf[:drop]
            self.stats.mic_dropped += drop // self.frame_bytes
        if len(self._buf) < self.frame_bytes:
            self.stats.mic_underruns += 1
            self.stats.mic_frames += 1
            return self._silence
        data = bytes(self._buf[: self.frame_bytes])
        del self._buf[: self.frame_bytes]
        self.stats.mic_frames += 1
        return data

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        """The bridge hands us what the far end said: to the earpiece if it has room."""
        with self._lock:
            ear = self._ear
            if ear is None:
                return
            data = bytes(frame.buf) if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO else b""
            if len(data) != self.frame_bytes:
                data = self._silence  # a NONE frame (silence from the bridge) is still a tick
            if ear.get_write_available() < self.samples:
                self.stats.ear_dropped += 1
                return
            ear.write(data, exception_on_underflow=False)
            self.stats.ear_frames += 1

