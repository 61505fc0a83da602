"""Call-progress tones (dial, ringback, busy, congestion) for FR, UK and US.

Frequencies and cadences follow ITU-T E.180 Supplement 2 ("Various tones used in national
networks"): France 440 Hz; UK 350+440 dial, 400+450 ring, 400 busy/congestion; US (ANSI T1.401
precise tones) 350+440 dial, 440+480 ring, 480+620 busy/reorder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appliance.media.codecs import MIX_RATE, MIX_SAMPLES

DEFAULT_LEVEL_DBM0 = -13.0  # per-frequency level, typical for call progress tones (E.180 s.2)
_DBM0_PEAK = 32768 / (10 ** (3.17 / 20))  # G.711 0 dBm0 sine peak (digital milliwatt, G.711 T.5)


@dataclass(frozen=True)
class ToneSpec:
    """A tone: frequencies summed, and a repeating cadence of (seconds on, seconds off, ...).

    An empty cadence means a continuous tone.
    """

    name: str
    freqs: tuple[float, ...]
    cadence: tuple[float, ...] = ()
    level_dbm0: float = DEFAULT_LEVEL_DBM0

    def __post_init__(self) -> None:
        if not self.freqs or any(f <= 0 or f >= MIX_RATE / 2 for f in self.freqs):
            raise ValueError(f"tone {self.name!r}: frequencies must be in (0, {MIX_RATE // 2}) Hz")
        if len(self.cadence) % 2 or any(d <= 0 for d in self.cadence):
            raise ValueError(f"tone {self.name!r}: cadence must be positive (on, off) pairs")


TONES: dict[tuple[str, str], ToneSpec] = {
    ("US", "dial"): ToneSpec("US dial", (350, 440)),
    ("US", "ringback"): ToneSpec("US ringback", (440, 480), (2.0, 4.0)),
    ("US", "busy"): ToneSpec("US busy", (480, 620), (0.5, 0.5)),
    ("US", "congestion"): ToneSpec("US congestion", (480, 620), (0.25, 0.25)),
    ("UK", "dial"): ToneSpec("UK dial", (350, 440)),
    ("UK", "ringback"): ToneSpec("UK ringback", (400, 450), (0.4, 0.2, 0.4, 2.0)),
    ("UK", "busy"): ToneSpec("UK busy", (400,), (0.375, 0.375)),
    ("UK", "congestion"): ToneSpec("UK congestion", (400,), (0.4, 0.35, 0.225, 0.525)),
    ("FR", "dial"): ToneSpec("FR dial", (440,)),
    ("FR", "ringback"): ToneSpec("FR ringback", (440,), (1.5, 3.5)),
    ("FR", "busy"): ToneSpec("FR busy", (440,), (0.5, 0.5)),
    ("FR", "congestion"): ToneSpec("FR congestion", (440,), (0.25, 0.25)),
}


def tone(country: str, kind: str) -> ToneSpec:
    """The ToneSpec for a country ("FR", "UK", "US") and kind (dial/ringback/busy/congestion)."""
    spec = TONES.get((country.upper(), kind.lower()))
    if spec is None:
        raise KeyError(f"no {kind!r} tone for country {country!r}")
    return spec


def on_mask(cadence: tuple[float, ...], start: int, count: int, rate: int) -> np.ndarray:
    """Boolean array: whether each sample ``start .. start+count-1`` falls in an 'on' period."""
    if not cadence:
        return np.ones(count, dtype=bool)
    bounds = np.cumsum(np.rint(np.array(cadence) * rate).astype(np.int64))
    period = int(bounds[-1])
    pos = (np.arange(start, start + count, dtype=np.int64)) % period
    segment = np.searchsorted(bounds, pos, side="right")
    return (segment % 2) == 0


class ToneGenerator:
    """Produces successive 20 ms frames (int16 at ``rate``) of a ToneSpec, phase-continuous."""

    def __init__(self, spec: ToneSpec, rate: int = MIX_RATE, samples: int = MIX_SAMPLES) -> None:
        self.spec = spec
        self.rate = rate
        self.samples = samples
        self._pos = 0
        self._amp = _DBM0_PEAK * 10 ** (spec.level_dbm0 / 20)
        self._omega = 2 * np.pi * np.array(spec.freqs, dtype=np.float64)[:, None] / rate

    def next_frame(self) -> np.ndarray:
        """The next frame of the tone."""
        n = np.arange(self._pos, self._pos + self.samples, dtype=np.float64)
        wave = self._amp * np.sin(self._omega * n).sum(axis=0)
        wave *= on_mask(self.spec.cadence, self._pos, self.samples, self.rate)
        self._pos += self.samples
        return np.clip(np.rint(wave), -32768, 32767).astype(np.int16)
