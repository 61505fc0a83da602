"""Audio helpers for tests: WAV I/O, tone generation and Goertzel tone detection.

Pure functions on numpy arrays (STYLE.md rule 4) plus thin WAV wrappers, so test peers'
recordings can be checked for the tone another peer played.
"""

from __future__ import annotations

import math
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

# A frame counts as "silence" below this RMS (int16 units, about -60 dBFS); pjsua2 and
# baresip write zero-filled frames before the media path is up, which would dilute the ratio.
SILENCE_RMS = 30.0


def goertzel_power(samples: np.ndarray, rate: int, freq: float) -> float:
    """Power of `freq` in `samples` (Goertzel algorithm, exact bin at `freq`).

    Returns |X(f)|^2 scaled by 2/N^2 so a full-scale sine of amplitude A gives ~A^2/2,
    i.e. comparable with the mean power `mean(x^2)` of the whole signal.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.size
    if n == 0:
        return 0.0
    w = 2.0 * math.pi * freq / rate
    coeff = 2.0 * math.cos(w)
    s1 = 0.0
    s2 = 0.0
    # The recurrence is inherently sequential; a plain loop over a few seconds of audio is fast
    # enough for tests, but use the closed form via a complex dot product for long inputs.
    if n > 4096:
        k = np.exp(-1j * w * np.arange(n))
        mag2 = float(abs(np.dot(x, k)) ** 2)
    else:
        for v in x:
            s0 = v + coeff * s1 - s2
            s2 = s1
            s1 = s0
        mag2 = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return 2.0 * mag2 / (n * n)


def read_wav(path: str | Path) -> tuple[int, np.ndarray]:
    """Read a 16-bit PCM WAV; returns (rate, mono int16 samples). Stereo is down-mixed."""
    with wave.open(str(path), "rb") as wf:
        if wf.getsampwidth() != 2:
            raise ValueError(f"{path}: sample width {wf.getsampwidth()} bytes, expected 2")
        rate = wf.getframerate()
        channels = wf.getnchannels()
        data = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return rate, data.astype(np.int16)


def sine(freq: float, seconds: float, rate: int = 8000, amplitude: int = 8000) -> np.ndarray:
    """An int16 sine of `freq` Hz, `seconds` long."""
    t = np.arange(round(seconds * rate)) / rate
    return np.round(amplitude * np.sin(2.0 * math.pi * freq * t)).astype(np.int16)


def write_tone_wav(
    path: str | Path, freq: float, seconds: float, rate: int = 8000, amplitude: int = 8000
) -> Path:
    """Write a mono 16-bit WAV holding a sine of `freq` Hz; returns the path."""
    if rate not in (8000, 16000):
        raise ValueError(f"rate must be 8000 or 16000, got {rate}")
    path = Path(path)
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(rate)
        wf.writeframes(sine(freq, seconds, rate, amplitude).astype("<i2").tobytes())
    return path


def skip_leading_silence(
    samples: np.ndarray, rate: int, threshold: float = SILENCE_RMS
) -> np.ndarray:
    """Drop whole 20 ms frames from the start while their RMS is below `threshold`."""
    frame = max(1, rate // 50)
    x = np.asarray(samples, dtype=np.float64)
    nframes = x.size // frame
    if nframes == 0:
        return x
    rms = np.sqrt(np.mean(x[: nframes * frame].reshape(nframes, frame) ** 2, axis=1))
    loud = np.nonzero(rms >= threshold)[0]
    if loud.size == 0:
        return x[:0]
    return x[loud[0] * frame :]


def tone_ratio(samples: np.ndarray, rate: int, freq: float) -> float:
    """Fraction of the signal's power at `freq` (0..1), after skipping leading silence."""
    x = skip_leading_silence(samples, rate)
    if x.size == 0:
        return 0.0
    total = float(np.mean(x**2))
    if total == 0.0:
        return 0.0
    return goertzel_power(x, rate, freq) / total


def best_second(samples: np.ndarray, rate: int, freq: float) -> float:
    """The tone's share in the best one-second window (quarter-second steps): when in a call the
    tone was heard depends on how fast a loaded machine answered and connected; what was heard
    does not."""
    starts = range(0, max(1, len(samples) - rate + 1), rate // 4)
    return max(tone_ratio(samples[i:i + rate], rate, freq) for i in starts)


def wait_heard(samples: Callable[[], np.ndarray], freq: float, seconds: float = 2.0, rate: int = 8000,
               min_ratio: float = 0.7, timeout: float = 10.0) -> np.ndarray:
    """Poll `samples()` (a recording that grows) until it holds `seconds` of audio with one second
    in which `freq` carries `min_ratio`; return it. A talk-time wait that a loaded machine cannot
    cut short, and that still fails when the tone never comes."""
    deadline = time.monotonic() + timeout
    while True:
        got = samples()
        if len(got) >= rate * seconds and best_second(got, rate, freq) >= min_ratio:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{freq} Hz not heard in {timeout}s ({len(got) / rate:.1f} s recorded, "
                                 f"best second {best_second(got, rate, freq) if len(got) else 0.0:.2f})")
        time.sleep(0.05)


def tone_present(wav_path: str | Path, freq: float, min_ratio: float = 0.5) -> bool:
    """True if `freq` carries at least `min_ratio` of the WAV's power (after leading silence).

    A clean tone through G.711/G.722 keeps well above 0.8; the default 0.5 tolerates a few
    dropped or silent frames from a real network peer.
    """
    rate, data = read_wav(wav_path)
    return tone_ratio(data, rate, freq) >= min_ratio


# ITU-T Q.23 keypad frequencies (row, column).
DTMF_PAIRS = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209),
              "5": (770, 1336), "6": (770, 1477), "7": (852, 1209), "8": (852, 1336),
              "9": (852, 1477), "*": (941, 1209), "0": (941, 1336), "#": (941, 1477)}


def write_dtmf_wav(path: str | Path, digits: str, rate: int = 8000, lead_s: float = 0.5,
                   tail_s: float = 10.0) -> Path:
    """In-band DTMF: 120 ms tone + 120 ms gap per digit, after `lead_s` of silence."""
    t = np.arange(int(0.12 * rate)) / rate
    chunks = [np.zeros(int(lead_s * rate))]
    for d in digits:
        lo, hi = DTMF_PAIRS[d]
        chunks.append(6000 * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)))
        chunks.append(np.zeros(int(0.12 * rate)))
    chunks.append(np.zeros(int(tail_s * rate)))
    path = Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate(chunks).astype(np.int16).tobytes())
    return path


def dtmf_digits_settled(samples: np.ndarray, rate: int) -> list[tuple[str, int]]:
    """`dtmf_digits` of a recording still being written, once its last key has ended (the same
    keys and lengths without its last 100 ms), else []: a key still sounding is not counted."""
    keys = dtmf_digits(samples, rate)
    return keys if keys == dtmf_digits(samples[:-rate // 10], rate) else []


def dtmf_digits(samples: np.ndarray, rate: int, frame_ms: int = 10) -> list[tuple[str, int]]:
    """In-band DTMF heard in `samples`: (digit, duration_ms) per key, in order.

    Independent of the engine's detector: per `frame_ms` frame, the strongest Q.23 row and column
    tones must together carry most of the frame's power (speech and single tones fail that), and
    a key must last at least 30 ms (Q.24 asks receivers to accept 40 ms).
    """
    n = max(1, rate * frame_ms // 1000)
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477)
    by_pair = {pair: d for d, pair in DTMF_PAIRS.items()}
    x = np.asarray(samples, dtype=np.float64)
    keys: list[str | None] = []
    for start in range(0, len(x) - n + 1, n):
        frame = x[start:start + n]
        total = float(np.mean(frame * frame))
        if total < 1e4:  # ~ -40 dBFS: nothing keyed here
            keys.append(None)
            continue
        row = max(rows, key=lambda f: goertzel_power(frame, rate, f))
        col = max(cols, key=lambda f: goertzel_power(frame, rate, f))
        tone = goertzel_power(frame, rate, row) + goertzel_power(frame, rate, col)
        keys.append(by_pair[(row, col)] if tone >= 0.6 * total else None)
    # A dropout of up to 20 ms inside one key (a late or lost packet on a loaded machine, which
    # the phone conceals with silence) is bridged: Q.24 has receivers bridge short interruptions,
    # and the shortest pause between two keys a sender may leave is 40 ms, twice that.
    bridge = max(1, 20 // frame_ms)
    for i in range(1, len(keys) - 1):
        if keys[i] is None and keys[i - 1] is not None:
            end = i
            while end < len(keys) and keys[end] is None:
                end += 1
            if end - i <= bridge and end < len(keys) and keys[end] == keys[i - 1]:
                keys[i:end] = [keys[i - 1]] * (end - i)
    out: list[tuple[str, int]] = []
    run_digit: str | None = None
    run = 0
    for key in [*keys, None]:
        if key == run_digit:
            run += 1
            continue
        if run_digit is not None and run * frame_ms >= 30:
            out.append((run_digit, run * frame_ms))
        run_digit, run = key, 1
    return out
