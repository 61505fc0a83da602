"""WAV player and recorder (mono 16-bit PCM, 8 or 16 kHz).

The recorder writes a RIFF header whose sizes claim the maximum (2 GiB) and flushes the data every
two seconds; ``close`` rewrites the header with the true sizes. A file left by a killed process is
therefore still readable (WAV readers stop at end of file) and loses at most two seconds.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np

from appliance.media import resample
from appliance.media.codecs import MIX_RATE, MIX_SAMPLES

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
HEADER_LEN = _HEADER.size  # 44
MAX_DATA = 0x7FFFFFFF - HEADER_LEN


class WavError(ValueError):
    """A WAV file this engine cannot play."""


def load_wav(path: str | Path, rate: int = MIX_RATE) -> np.ndarray:
    """All samples of a mono 16-bit WAV at 8 or 16 kHz, converted to ``rate`` (8000 or 16000)."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise WavError(f"{path}: need mono 16-bit PCM")
            src_rate = w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: {exc}") from exc
    if src_rate == rate:
        return data
    if src_rate == 8000 and rate == 16000:
        pad = (-len(data)) % 160
        x = np.concatenate((data, np.zeros(pad, np.int16))).reshape(1, -1)
        y, _ = resample.upsample2(x, np.zeros((1, resample.UP_HISTORY), np.float32))
        return y[0, :2 * len(data)]
    if src_rate == 16000 and rate == 8000:
        pad = (-len(data)) % 2
        x = np.concatenate((data, np.zeros(pad, np.int16))).reshape(1, -1)
        y, _ = resample.decimate2(x, np.zeros((1, resample.DOWN_HISTORY), np.float32))
        return y[0]
    raise WavError(f"{path}: sample rate {src_rate} not supported (8000 or 16000)")


class WavPlayer:
    """Successive 20 ms frames of a WAV file, looping or not."""

    def __init__(self, path: str | Path, loop: bool = True, rate: int = MIX_RATE,
                 samples: int = MIX_SAMPLES) -> None:
        self.samples = samples
        self.loop = loop
        data = load_wav(path, rate)
        if len(data) == 0:
            raise WavError(f"{path}: no audio")
        self._data = data
        self._pos = 0
        self.finished = False

    def next_frame(self) -> np.ndarray | None:
        """The next frame (zero padded at the end), or None once a non-looping file is done."""
        if self.finished:
            return None
        n, data = self.samples, self._data
        if self.loop:
            idx = (self._pos + np.arange(n)) % len(data)
            self._pos = (self._pos + n) % len(data)
            return data[idx]
        frame = data[self._pos:self._pos + n]
        self._pos += n
        if self._pos >= len(data):
            self.finished = True
        if len(frame) < n:
            frame = np.concatenate((frame, np.zeros(n - len(frame), np.int16)))
        return frame


def _header(rate: int, data_len: int) -> bytes:
    return _HEADER.pack(b"RIFF", data_len + HEADER_LEN - 8, b"WAVE", b"fmt ", 16, 1, 1, rate,
                        rate * 2, 2, 16, b"data", data_len)


class WavRecorder:
    """Writes int16 frames to a WAV file incrementally."""

    FIX_EVERY_S = 2.0

    def __init__(self, path: str | Path, rate: int = MIX_RATE) -> None:
        self.path = Path(path)
        self.rate = rate
        self._f = open(self.path, "wb")  # noqa: SIM115 - kept open across ticks
        self._f.write(_header(rate, MAX_DATA))
        self._data_len = 0
        self._since_fix = 0
        self.closed = False

    def write(self, frame: np.ndarray) -> None:
        """Append int16 samples."""
        if self.closed:
            return
        self._f.write(np.asarray(frame, dtype="<i2").tobytes())
        self._data_len += 2 * len(frame)
        self._since_fix += len(frame)
        if self._since_fix >= self.FIX_EVERY_S * self.rate:
            self._since_fix = 0
            self._f.flush()

    def close(self) -> None:
        """Write the true sizes into the header and close."""
        if self.closed:
            return
        self.closed = True
        self._f.seek(0)
        self._f.write(_header(self.rate, self._data_len))
        self._f.close()
