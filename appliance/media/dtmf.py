"""DTMF: RFC 4733 telephone-events and in-band (ITU-T Q.23/Q.24) generation and detection."""

from __future__ import annotations

import functools

import enum
import struct
from collections import deque
from dataclasses import dataclass

import numpy as np

from appliance.media.codecs import MIX_RATE, MIX_SAMPLES

DIGITS = "0123456789*#ABCD"
ROW_FREQS = (697.0, 770.0, 852.0, 941.0)  # Q.23 low group
COL_FREQS = (1209.0, 1336.0, 1477.0, 1633.0)  # Q.23 high group
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_DIGIT_FREQS = {_KEYPAD[r][c]: (ROW_FREQS[r], COL_FREQS[c]) for r in range(4) for c in range(4)}
_EVENT_OF_DIGIT = {d: i for i, d in enumerate(DIGITS)}  # RFC 4733 section 3.2 Table 3

# ---------------------------------------------------------------- RFC 4733 payload (section 2.3)


class DtmfError(ValueError):
    """Bad digit or malformed telephone-event payload."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The 4-octet telephone-event payload (RFC 4733 section 2.3)."""

    event: int
    end: bool
    volume: int  # -dBm0, 0..63
    duration: int  # in RTP timestamp units

    @property
    def digit(self) -> str | None:
        """The DTMF digit for events 0..15, else None."""
        return DIGITS[self.event] if self.event < 16 else None


def event_code(digit: str) -> int:
    """RFC 4733 event code of a DTMF digit."""
    try:
        return _EVENT_OF_DIGIT[digit.upper()]
    except KeyError:
        raise DtmfError(f"not a DTMF digit: {digit!r}") from None


def encode_event(ev: TelephoneEvent) -> bytes:
    """Encode a telephone-event payload."""
    if not 0 <= ev.event <= 255 or not 0 <= ev.volume <= 63 or not 0 <= ev.duration <= 0xFFFF:
        raise DtmfError(f"telephone-event field out of range: {ev}")
    return struct.pack("!BBH", ev.event, (0x80 if ev.end else 0) | ev.volume, ev.duration)


def decode_event(payload: bytes) -> TelephoneEvent:
    """Decode a telephone-event payload (its first event; later ones, RFC 4733 2.5.1.5, ignored)."""
    if len(payload) < 4 or len(payload) % 4:
        # RFC 4733 2.3: each event is 4 octets (2.5.1.5: several may share one packet).
        raise DtmfError(f"telephone-event payload of {len(payload)} octets is not 4 per event")
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One telephone-event RTP packet to send: payload, marker bit and event timestamp."""

    payload: bytes
    marker: bool
    timestamp: int


class SenderState(enum.Enum):
    IDLE = "idle"
    SENDING = "sending"
    ENDING = "ending"
    GAP = "gap"


class DtmfSender:
    """Produces one telephone-event packet per 20 ms tick for queued digits (RFC 4733 2.5.1).

    Start packet has the marker bit (2.5.1.1); updates every packet interval carry the growing
    duration with the same timestamp (2.5.1.2); the end is sent three times (2.5.1.4).
    """

    END_REPEATS = 3
    GAP_TICKS = 2  # 40 ms inter-digit pause before the next event

    def __init__(self, step: int = 160, volume: int = 10) -> None:
        self.step = step
        self.volume = volume
        self.state = SenderState.IDLE
        self._queue: deque[tuple[str, int]] = deque()
        self._event = 0
        self._ts = 0
        self._duration = 0
        self._total = 0
        self._ends = 0
        self._gap = 0

    def queue(self, digit: str, duration_ms: int = 100) -> None:
        """Queue a digit to send, lasting ``duration_ms`` (at least one packet)."""
        event_code(digit)
        if duration_ms <= 0:
            raise DtmfError("DTMF duration must be positive")
        ticks = max(1, round(duration_ms / 20))
        self._queue.append((digit, ticks * self.step))

    @property
    def busy(self) -> bool:
        """True while an event is being sent (audio for the leg is suppressed)."""
        return self.state in (SenderState.SENDING, SenderState.ENDING) or bool(self._queue)

    def tick(self, timestamp: int) -> EventPacket | None:
        """Packet for this tick (``timestamp`` = the audio timestamp of this tick), or None."""
        if self.state is SenderState.GAP:
            self._gap -= 1
            if self._gap > 0:
                return None
            self.state = SenderState.IDLE
        if self.state is SenderState.IDLE:
            if not self._queue:
                return None
            digit, self._total = self._queue.popleft()
            self._event = event_code(digit)
            self._ts = timestamp
            self._duration = self.step
            self.state = SenderState.SENDING if self._duration < self._total else SenderState.ENDING
            self._ends = 0
            if self.state is SenderState.ENDING:
                return self._end_packet(marker=True)
            return self._packet(False, marker=True)
        if self.state is SenderState.SENDING:
            self._duration += self.step
            if self._duration >= self._total:
                self.state = SenderState.ENDING
                return self._end_packet(marker=False)
            return self._packet(False, marker=False)
        return self._end_packet(marker=False)

    def _end_packet(self, marker: bool) -> EventPacket:
        self._ends += 1
        if self._ends >= self.END_REPEATS:
            self.state = SenderState.GAP
            self._gap = self.GAP_TICKS
        return self._packet(True, marker)

    def _packet(self, end: bool, marker: bool) -> EventPacket:
        ev = TelephoneEvent(self._event, end, self.volume, min(self._duration, 0xFFFF))
        return EventPacket(encode_event(ev), marker, self._ts)


class DtmfReceiver:
    """Turns received telephone-event packets into digits, each reported once.

    One event is identified by its RTP timestamp (RFC 4733 2.5.1.2: all packets of an event share
    the timestamp), so the first packet of a new timestamp reports the digit, whatever arrives
    later (updates, retransmitted ends).
    """

    def __init__(self) -> None:
        self._last_ts: int | None = None

    def receive(self, timestamp: int, payload: bytes) -> str | None:
        """Return the digit if this packet starts a new event, else None."""
        ev = decode_event(payload)
        if timestamp == self._last_ts or ev.digit is None:
            return None
        self._last_ts = timestamp
        return ev.digit


# ---------------------------------------------------------------- in-band DTMF (Q.23 / Q.24)

DTMF_LEVEL_DBM0 = -7.0  # per-tone level for sending (Q.23 allows roughly -4 to -13 dBm0)
_DBM0_PEAK = 32768 / (10 ** (3.17 / 20))


def dtmf_tone(digit: str, samples: int, rate: int = MIX_RATE, start: int = 0,
              level_dbm0: float = DTMF_LEVEL_DBM0, twist_db: float = 0.0) -> np.ndarray:
    """int16 samples of a DTMF digit; ``twist_db`` > 0 lowers the high-group tone by that much."""
    freqs = _DIGIT_FREQS.get(digit.upper())
    if freqs is None:
        raise DtmfError(f"not a DTMF digit: {digit!r}")
    low, high = freqs
    amp = _DBM0_PEAK * 10 ** (level_dbm0 / 20)
    n = np.arange(start, start + samples, dtype=np.float64)
    wave = amp * (np.sin(2 * np.pi * low * n / rate)
                  + 10 ** (-twist_db / 20) * np.sin(2 * np.pi * high * n / rate))
    return np.clip(np.rint(wave), -32768, 32767).astype(np.int16)


class DtmfToneSource:
    """Frames of in-band DTMF for queued digits: tone for the duration, then 60 ms silence."""

    def __init__(self, rate: int = MIX_RATE, samples: int = MIX_SAMPLES) -> None:
        self.rate = rate
        self.samples = samples
        self._frames: deque[np.ndarray] = deque()

    def queue(self, digit: str, duration_ms: int = 100) -> None:
        """Queue a digit."""
        ticks = max(2, round(duration_ms / 20))
        tone_ = dtmf_tone(digit, ticks * self.samples, self.rate)
        self._frames.extend(tone_.reshape(ticks, self.samples))
        self._frames.extend(np.zeros((3, self.samples), dtype=np.int16))

    @property
    def busy(self) -> bool:
        return bool(self._frames)

    def next_frame(self) -> np.ndarray | None:
        """The next frame, or None when nothing is queued."""
        return self._frames.popleft() if self._frames else None


def goertzel_power(frames: np.ndarray, freqs: np.ndarray, rate: int) -> np.ndarray:
    """|X(f)|^2 of each row of ``frames`` [legs, N] at each frequency: shape [legs, len(freqs)].

    This is exactly the quantity the Goertzel recursion yields, s(N)^2 + s(N-1)^2 -
    2cos(w)s(N)s(N-1) (= |sum x[n] e^{-jwn}|^2), computed as two matrix products so all legs and all
    eight Q.23 frequencies are done in one BLAS call instead of a per-sample recursion.
    """
    basis = _dft_basis(frames.shape[1], tuple(float(f) for f in np.asarray(freqs).ravel()), rate)
    xy = (frames.astype(np.float32) @ basis).astype(np.float64)  # [legs, 2F]: re then im
    f = basis.shape[1] // 2
    return xy[:, :f] ** 2 + xy[:, f:] ** 2


@functools.lru_cache(maxsize=8)
def _dft_basis(n: int, freqs: tuple[float, ...], rate: int) -> np.ndarray:
    """[n, 2F] float32: cos then sin columns of the DFT at ``freqs`` (one matrix product per
    tick instead of two, and no trigonometry per call)."""
    w = 2 * np.pi * np.array(freqs, dtype=np.float64)[None, :] / rate
    k = np.arange(n, dtype=np.float64)[:, None]
    basis = np.concatenate((np.cos(w * k), np.sin(w * k)), axis=1).astype(np.float32)
    basis.setflags(write=False)
    return basis


class InbandDtmfDetector:
    """Vectorised in-band DTMF detector over many legs, one 20 ms frame per leg per call.

    Per frame: Goertzel power at the 8 Q.23 frequencies; the strongest row and column must each
    exceed an absolute level, stand clear of the other tones of their group, carry most of the
    frame's energy (rejects speech and noise), and respect Q.24 twist limits (high group at most
    8 dB below the low group: "normal" twist; at most 4 dB above: "reverse" twist). A digit is
    reported once, after it is seen in ``min_frames`` consecutive frames (>= 40 ms, Q.24), and not
    again until a frame without it.
    """

    NORMAL_TWIST_DB = 8.0
    REVERSE_TWIST_DB = 4.0
    MIN_LEVEL_DBM0 = -30.0  # per tone
    GROUP_CLEARANCE_DB = 8.0  # best tone above the next of its group
    MIN_TONE_FRACTION = 0.75  # row+column energy / frame energy

    def __init__(self, capacity: int = 16, rate: int = MIX_RATE, min_frames: int = 2) -> None:
        self.rate = rate
        self.min_frames = min_frames
        self._freqs = np.array(ROW_FREQS + COL_FREQS)
        self._digit_grid = np.array([[DIGITS.index(c) for c in row] for row in _KEYPAD])
        self._candidate = np.full(capacity, -1, dtype=np.int64)
        self._count = np.zeros(capacity, dtype=np.int64)
        amp = _DBM0_PEAK * 10 ** (self.MIN_LEVEL_DBM0 / 20)
        self._min_amp2 = amp * amp

    def reset(self, slot: int) -> None:
        """Forget the state of one leg slot (new leg)."""
        self._ensure(slot + 1)
        self._candidate[slot] = -1
        self._count[slot] = 0

    def _ensure(self, n: int) -> None:
        if n > len(self._candidate):
            grow = max(n, 2 * len(self._candidate)) - len(self._candidate)
            self._candidate = np.concatenate((self._candidate, np.full(grow, -1, np.int64)))
            self._count = np.concatenate((self._count, np.zeros(grow, np.int64)))

    def classify(self, frames: np.ndarray, rate: int | None = None) -> np.ndarray:
        """Digit index (0..15) present in each frame of [legs, N] sampled at ``rate`` (default:
        the detector's), or -1 (stateless). The levels are amplitudes, so any rate that carries
        the Q.23 tones classifies alike."""
        n = frames.shape[1]
        power = goertzel_power(frames, self._freqs, rate or self.rate)
        # amplitude^2 of a sine from its DFT power: A = 2|X|/N
        amp2 = 4.0 * power / (n * n)
        rows, cols = amp2[:, :4], amp2[:, 4:]
        r_idx, c_idx = rows.argmax(axis=1), cols.argmax(axis=1)
        legs = np.arange(len(frames))
        r_best, c_best = rows[legs, r_idx], cols[legs, c_idx]
        # runner-up of each group (index 2 of the 4 after a partial sort)
        r_sorted, c_sorted = np.partition(rows, 2, axis=1), np.partition(cols, 2, axis=1)
        clear = 10 ** (self.GROUP_CLEARANCE_DB / 10)
        x = frames.astype(np.float64)
        energy = np.einsum("ij,ij->i", x, x)  # sum x^2 = N*A^2/2 per tone
        tone_energy = (r_best + c_best) * n / 2
        ok = (
            (r_best >= self._min_amp2) & (c_best >= self._min_amp2)
            & (r_best >= clear * r_sorted[:, 2]) & (c_best >= clear * c_sorted[:, 2])
            & (tone_energy >= self.MIN_TONE_FRACTION * energy)
            & (c_best * 10 ** (self.NORMAL_TWIST_DB / 10) >= r_best)
            & (r_best * 10 ** (self.REVERSE_TWIST_DB / 10) >= c_best)
        )
        return np.where(ok, self._digit_grid[r_idx, c_idx], -1)

    def process(self, slots: np.ndarray, frames: np.ndarray, rate: int | None = None
                ) -> list[tuple[int, str]]:
        """Feed one frame per listed leg slot (at ``rate``, default the detector's); return
        (slot, digit) for each newly detected digit."""
        if len(slots) == 0:
            return []
        self._ensure(int(slots.max()) + 1)
        found = self.classify(frames, rate)
        prev = self._candidate[slots]
        count = np.where((found == prev) & (found >= 0), self._count[slots] + 1,
                         np.where(found >= 0, 1, 0))
        self._candidate[slots] = found
        self._count[slots] = count
        fire = np.flatnonzero(count == self.min_frames)
        return [(int(slots[i]), DIGITS[int(found[i])]) for i in fire]
