"""Call recordings: what a bridge carries, what one leg says and hears, or what parties send.

Three kinds share one id space, ``stop``, ``pause`` and ``resume``:

- a *bridge* recording: the sum of the bridge's members (mono);
- a *leg* recording: what the leg sends plus what it hears (mono);
- a *party* recording (queues, extensions, voicemail): the decoded inbound audio of each listed
  leg, taken after the jitter buffer, i.e. what that leg's far end sends us, never what it hears.
  Stereo (exactly two legs): channel 0 is ``legs[0]`` (the caller), channel 1 ``legs[1]`` (the
  agent); mono: the clipped sum of the legs. It follows the leg, not a bridge: a leg that moves
  between bridges, or sits in no bridge (an IVR node), is recorded all the same. A listed leg
  that is destroyed contributes silence from then on; the recording runs until ``stop``, so its
  timeline stays that of the call (the PBX stops it on hang-up, as it does for voicemail).

All recordings are 16-bit WAV at the mix rate, 16 kHz. A paused recording writes digital silence
(zeros), so the timeline stays true while card numbers are being spoken (PCI DSS 3.2: no
sensitive authentication data stored after authorisation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from appliance.media.codecs import MIX_RATE, MIX_SAMPLES
from appliance.media.events import RecordingFailed
from appliance.media.leg import Leg
from appliance.media.mixer import clip16
from appliance.media.protocol import MediaError
from appliance.media.wavfile import WavError, WavRecorder

_SILENCE = np.zeros(MIX_SAMPLES, dtype=np.int16)
_SILENCE2 = np.zeros((MIX_SAMPLES, 2), dtype=np.int16)


@dataclass
class Recording:
    """One running recording: a bridge or leg ``target``, or the ``parties`` it records."""

    rec_id: str
    writer: WavRecorder
    target: str | None = None
    parties: list[str | None] = field(default_factory=list)  # None: that leg was destroyed
    stereo: bool = False
    paused: bool = False


class RecordingSet:
    """The engine's running recordings; ``write`` appends one 20 ms frame to each of them."""

    def __init__(self, on_failed: Callable[[RecordingFailed], None] | None = None) -> None:
        self.active: dict[str, Recording] = {}
        self.on_failed = on_failed  # the engine's event sink: the PBX marks the recording

    def __len__(self) -> int:
        return len(self.active)

    @staticmethod
    def _open(path: str, channels: int) -> WavRecorder:
        if not Path(path).parent.is_dir():
            raise MediaError(f"cannot record to {path!r}: no such directory")
        try:
            return WavRecorder(path, MIX_RATE, channels)
        except OSError as exc:
            raise MediaError(f"cannot record to {path!r}: {exc}") from exc

    def start_target(self, rec_id: str, target: str, path: str) -> None:
        """Record a bridge (sum of members) or a leg (what it says plus what it hears)."""
        self.active[rec_id] = Recording(rec_id, self._open(path, 1), target=target)

    def start_parties(self, rec_id: str, path: str, legs: list[str], stereo: bool) -> None:
        """Record what each of ``legs`` sends (module docstring); the caller checks they exist."""
        if not legs:
            raise MediaError("record_parties: no legs")
        named = [leg for leg in legs if leg]
        if len(set(named)) != len(named):
            raise MediaError("record_parties: a leg is listed twice")
        if stereo and len(legs) != 2:
            raise MediaError(f"record_parties: stereo needs exactly 2 legs, got {len(legs)}")
        writer = self._open(path, 2 if stereo else 1)
        self.active[rec_id] = Recording(rec_id, writer, parties=[leg or None for leg in legs], stereo=stereo)

    def set_party(self, rec_id: str, index: int, leg_id: str) -> None:
        """Fill (or replace) party slot ``index`` with ``leg_id`` from the next frame on."""
        rec = self.get(rec_id)
        if not rec.parties or not 0 <= index < len(rec.parties):
            raise MediaError(f"recording {rec_id!r} has no party slot {index}")
        if leg_id in rec.parties and rec.parties[index] != leg_id:
            raise MediaError(f"recording {rec_id!r} already records {leg_id!r}")
        rec.parties[index] = leg_id

    def get(self, rec_id: str) -> Recording:
        rec = self.active.get(rec_id)
        if rec is None:
            raise MediaError(f"no recording {rec_id!r}")
        return rec

    def stop(self, rec_id: str) -> None:
        """Finish a recording (true sizes written into the WAV header)."""
        rec = self.get(rec_id)
        try:
            rec.writer.close()
        except OSError as exc:  # the buffered tail met a full disk
            self._abort(rec, exc)
            return
        self.active.pop(rec_id)

    def pause(self, rec_id: str, paused: bool) -> None:
        """Write silence from the next frame on (``paused``), or audio again; idempotent."""
        self.get(rec_id).paused = paused

    def stop_target(self, target: str) -> None:
        """Stop every recording of the bridge or leg ``target`` (it is going away)."""
        for rec in list(self.active.values()):
            if rec.target == target:
                self.stop(rec.rec_id)

    def leg_removed(self, leg_id: str) -> None:
        """A leg is destroyed: its leg recordings stop, party recordings get silence for it."""
        self.stop_target(leg_id)
        for rec in self.active.values():
            rec.parties = [None if p == leg_id else p for p in rec.parties]

    def wide(self) -> set[str]:
        """Bridges and legs whose audio must be decoded at 16 kHz for these recordings."""
        out: set[str] = set()
        for rec in self.active.values():
            if rec.target is not None:
                out.add(rec.target)
            out.update(p for p in rec.parties if p is not None)
        return out

    def write(self, frames: np.ndarray, out: np.ndarray, sums: np.ndarray,
              legs: dict[str, Leg], bridge_index: dict[str, int]) -> None:
        """Append this tick's frame to every recording.

        ``frames``: what each slot received (16 kHz rows), ``out``: what it hears, ``sums``:
        each bridge's sum of members. A recording whose write fails (ENOSPC on a full data
        directory) is stopped with a valid WAV of what was written; the calls go on.
        """
        for rec in list(self.active.values()):
            try:
                self._write_one(rec, frames, out, sums, legs, bridge_index)
            except OSError as exc:
                self._abort(rec, exc)

    def _abort(self, rec: Recording, exc: OSError) -> None:
        """The disk refused this recording: stop it, keep what was written, report it."""
        self.active.pop(rec.rec_id, None)
        error = exc.strerror or str(exc)
        try:
            seconds = rec.writer.abort()
        except (OSError, WavError) as repair:  # e.g. not even the header reached the disk
            seconds, error = 0.0, f"{error}; the file is unplayable: {repair}"
        if self.on_failed is not None:
            self.on_failed(RecordingFailed(rec.rec_id, str(rec.writer.path), error, seconds))

    @staticmethod
    def _write_one(rec: Recording, frames: np.ndarray, out: np.ndarray, sums: np.ndarray,
                   legs: dict[str, Leg], bridge_index: dict[str, int]) -> None:
        if rec.parties:
            slots = [legs[p].slot if p is not None else -1 for p in rec.parties]
            if rec.paused:
                rec.writer.write(_SILENCE2 if rec.stereo else _SILENCE)
                return
            rows = frames[slots]
            if -1 in slots:
                rows[[i for i, s in enumerate(slots) if s < 0]] = 0
            if rec.stereo:
                rec.writer.write(rows.T)  # [samples, 2]: interleaved on write
            else:
                rec.writer.write(clip16(rows.sum(axis=0, dtype=np.int32)))
            return
        target = rec.target
        leg = legs.get(target) if target is not None else None
        if rec.paused:
            rec.writer.write(_SILENCE)
        elif leg is not None:
            rec.writer.write(clip16(frames[leg.slot].astype(np.int32) + out[leg.slot]))
        elif target in bridge_index:
            rec.writer.write(clip16(sums[bridge_index[target]]))

    def close(self) -> None:
        """Finish every recording."""
        for rec_id in list(self.active):
            self.stop(rec_id)
