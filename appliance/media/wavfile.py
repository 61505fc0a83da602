"""WAV player (mono 16-bit PCM, 8 or 16 kHz), recorder (16-bit PCM, mono or stereo) and repair.

The recorder writes a RIFF header whose sizes claim the maximum (2 GiB) and flushes the data every
two seconds; ``close`` rewrites the header with the true sizes. A file left by a killed process is
therefore still readable (WAV readers stop at end of file) and loses at most two seconds;
``repair_wav`` then writes its true sizes, so every reader (and a later append) sees its length.
"""

from __future__ import annotations

import os
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


def _header(rate: int, data_len: int, channels: int = 1) -> bytes:
    # canonical PCM WAVE: RIFF header, 16-octet "fmt " chunk, then "data" (RIFF/WAVE, 1991)
    return _HEADER.pack(b"RIFF", data_len + HEADER_LEN - 8, b"WAVE", b"fmt ", 16, 1, channels,
                        rate, rate * 2 * channels, 2 * channels, 16, b"data", data_len)


class WavRecorder:
    """Writes int16 frames to a WAV file incrementally (``channels`` 1 or 2)."""

    FIX_EVERY_S = 2.0

    def __init__(self, path: str | Path, rate: int = MIX_RATE, channels: int = 1) -> None:
        if channels not in (1, 2):
            raise WavError(f"{path}: {channels} channels (1 or 2 supported)")
        self.path = Path(path)
        self.rate = rate
        self.channels = channels
        self._f = open(self.path, "wb")  # noqa: SIM115 - kept open across ticks
        self._f.write(_header(rate, MAX_DATA, channels))
        self._f.flush()  # the header on disk now: a disk that fills later still leaves a valid WAV
        self._data_len = 0
        self._since_fix = 0
        self.closed = False

    def write(self, frame: np.ndarray) -> None:
        """Append int16 samples: shape [n] (mono) or [n, channels] (one row per sample frame)."""
        if self.closed:
            return
        data = np.asarray(frame, dtype="<i2")
        n = len(data)
        if data.size != n * self.channels:
            raise WavError(f"{self.path}: frame of shape {data.shape} for {self.channels} channels")
        self._f.write(data.tobytes())  # C order: a row per sample frame, channels interleaved
        self._data_len += 2 * data.size
        self._since_fix += n
        if self._since_fix >= self.FIX_EVERY_S * self.rate:
            self._since_fix = 0
            self._f.flush()

    def abort(self) -> float:
        """The disk refused a write (ENOSPC, EIO): close, and give the file the true sizes of
        what reached it (rewriting the header in place needs no new block). Return its seconds."""
        self.closed = True
        try:
            self._f.close()  # the buffered tail fails again to flush; the descriptor is closed anyway
        except OSError:
            pass
        repair_wav(self.path)
        frame = 2 * self.channels
        return ((self.path.stat().st_size - 44) // frame) / float(self.rate)

    def close(self) -> None:
        """Write the true sizes into the header and close."""
        if self.closed:
            return
        self.closed = True
        self._f.seek(0)
        self._f.write(_header(self.rate, self._data_len, self.channels))
        self._f.close()


def repair_wav(path: str | Path) -> bool:
    """Give a WAV left by a killed recorder its true RIFF and data sizes; True if it changed.

    The data chunk is taken to run to the end of the file (the recorder writes it last); a
    trailing partial sample frame is cut off. Works for any PCM channel count. WavError if the
    file is not a RIFF/WAVE file with a "fmt " chunk before its "data" chunk.
    """
    path = Path(path)
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise WavError(f"{path}: not a RIFF/WAVE file")
        block_align = 0
        pos = 12
        while True:  # walk the chunks up to "data" (RIFF chunks are padded to even length)
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                raise WavError(f"{path}: no data chunk")
            cid, clen = struct.unpack("<4sI", chunk)
            if cid == b"fmt ":
                fmt = f.read(16)
                if len(fmt) < 16:
                    raise WavError(f"{path}: truncated fmt chunk")
                block_align = struct.unpack_from("<H", fmt, 12)[0]
            elif cid == b"data":
                break
            pos += 8 + clen + (clen & 1)
        if block_align <= 0:
            raise WavError(f"{path}: no fmt chunk before the data chunk")
        data_start = pos + 8
        data_len = max(0, size - data_start)
        data_len -= data_len % block_align
        riff_len = data_start + data_len - 8
        f.seek(4)
        old_riff = struct.unpack("<I", f.read(4))[0]
        if (old_riff, clen, size) == (riff_len, data_len, data_start + data_len):
            return False
        f.truncate(data_start + data_len)
        f.seek(4)
        f.write(struct.pack("<I", riff_len))
        f.seek(pos + 4)
        f.write(struct.pack("<I", data_len))
    return True
