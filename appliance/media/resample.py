"""2:1 sample-rate conversion between 8 kHz (G.711) and the 16 kHz mixing rate.

Both directions use one windowed-sinc half-band FIR (every other tap is zero), applied as a
handful of whole-array multiply-adds over a batch of legs ``[legs, samples]``: the Python loop
runs over filter taps, never over samples or legs. Each leg keeps a short history so frames join
without clicks; the history arrays are owned by the caller (one row per leg).
"""

from __future__ import annotations

import numpy as np

HALF_TAPS = 6  # M: odd-phase taps per side; the filter has 4M-1 = 23 taps
UP_HISTORY = 2 * HALF_TAPS - 1  # input samples (8 kHz) kept between frames
DOWN_HISTORY = 4 * HALF_TAPS - 2  # input samples (16 kHz) kept between frames


def _halfband_odd_taps(m: int) -> np.ndarray:
    """Coefficients c_1..c_M for the odd taps h[±(2k-1)] of a Blackman-windowed half-band sinc."""
    k = np.arange(1, m + 1)
    n = 2 * k - 1
    sinc = np.sin(np.pi * n / 2) / (np.pi * n)
    span = 2 * m  # window half-length in taps
    window = 0.42 + 0.5 * np.cos(np.pi * n / span) + 0.08 * np.cos(2 * np.pi * n / span)
    c = sinc * window
    return (c / (4 * c.sum())).astype(np.float32)  # centre tap 0.5, odd taps (both sides) 0.5


_C = _halfband_odd_taps(HALF_TAPS)


def upsample2(x: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upsample ``x`` [legs, n] int16 at 8 kHz to [legs, 2n] int16 at 16 kHz.

    ``history`` is [legs, UP_HISTORY] float32 (zeros for a new leg); returns (y, new_history).
    Output is delayed by HALF_TAPS input samples (2 * HALF_TAPS output samples).
    """
    legs, n = x.shape
    ext = np.concatenate((history, x.astype(np.float32)), axis=1)
    base = HALF_TAPS - 1
    y = np.empty((legs, 2 * n), dtype=np.float32)
    y[:, 0::2] = ext[:, base:base + n]
    odd = np.zeros((legs, n), dtype=np.float32)
    for m in range(1, HALF_TAPS + 1):
        # interpolated sample between ext[b] and ext[b+1]: 2 * sum c_m (x[b+1-m] + x[b+m])
        odd += _C[m - 1] * (ext[:, base + 1 - m:base + 1 - m + n] + ext[:, base + m:base + m + n])
    y[:, 1::2] = 2.0 * odd
    return _to_int16(y), ext[:, -UP_HISTORY:]


def decimate2(x: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Low-pass and decimate ``x`` [legs, 2n] int16 at 16 kHz to [legs, n] int16 at 8 kHz.

    ``history`` is [legs, DOWN_HISTORY] float32; returns (y, new_history).
    """
    n = x.shape[1] // 2
    ext = np.concatenate((history, x.astype(np.float32)), axis=1)
    centre = 2 * HALF_TAPS - 1
    y = 0.5 * ext[:, centre:centre + 2 * n:2]
    for m in range(1, HALF_TAPS + 1):
        off = 2 * m - 1
        y += _C[m - 1] * (ext[:, centre - off:centre - off + 2 * n:2]
                          + ext[:, centre + off:centre + off + 2 * n:2])
    return _to_int16(y), ext[:, -DOWN_HISTORY:]


def _to_int16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)
