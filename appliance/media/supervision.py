"""Supervision of a call: listen, whisper (and barge, which is plain bridging).

A supervisor's leg is never a bridge member while it monitors: it hears the sum of the inbound
audio (what the far ends send) of the legs it ``hears``, and its own inbound audio is added to
what each leg in ``whisper_to`` hears, on top of that leg's bridge audio. Listen is
``monitor(sup, [caller, agent], [])``, whisper ``monitor(sup, [caller, agent], [agent])``; barge
is ``bridge(call_bridge, [sup])``, which ends the monitor. A leg is either a bridge member or a
monitor, and whichever of ``bridge`` and ``monitor`` came last wins.

A player (or in-band DTMF being sent) on a leg replaces everything the leg hears, monitor audio
included, just as it replaces the bridge audio: a supervisor's whisper does not talk over a
prompt the agent is hearing, and a prompt played to the supervisor silences the call for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appliance.media.leg import Leg
from appliance.media.mixer import clip16
from appliance.media.protocol import MediaError


@dataclass
class Monitor:
    """One supervisor's monitor: leg ids and, cached, their engine slots (fixed while they live)."""

    leg_id: str
    slot: int
    hears: list[str]
    whisper_to: list[str]
    hear_slots: np.ndarray
    whisper_slots: np.ndarray


def _slots(ids: list[str], legs: dict[str, Leg]) -> np.ndarray:
    return np.array([legs[i].slot for i in ids], dtype=np.int64)


class MonitorSet:
    """The engine's monitors, keyed by supervisor leg id; ``apply`` runs once per tick."""

    def __init__(self) -> None:
        self.active: dict[str, Monitor] = {}

    def __contains__(self, leg_id: str) -> bool:
        return leg_id in self.active

    def __len__(self) -> int:
        return len(self.active)

    def start(self, leg_id: str, hears: list[str], whisper_to: list[str],
              legs: dict[str, Leg]) -> None:
        """Set (or replace) the monitor of supervisor ``leg_id``; every leg must exist."""
        for i in (leg_id, *hears, *whisper_to):
            if i not in legs:
                raise MediaError(f"no leg {i!r}")
        if leg_id in hears or leg_id in whisper_to:
            raise MediaError(f"monitor: leg {leg_id!r} cannot hear or whisper to itself")
        hears = list(dict.fromkeys(hears))
        whisper_to = list(dict.fromkeys(whisper_to))
        self.active[leg_id] = Monitor(leg_id, legs[leg_id].slot, hears, whisper_to,
                                      _slots(hears, legs), _slots(whisper_to, legs))

    def stop(self, leg_id: str) -> None:
        """End the monitor of ``leg_id``."""
        if self.active.pop(leg_id, None) is None:
            raise MediaError(f"leg {leg_id!r} is not monitoring")

    def leg_removed(self, leg_id: str, legs: dict[str, Leg]) -> None:
        """A leg is destroyed (``legs`` no longer holds it): drop it from every monitor."""
        self.active.pop(leg_id, None)
        for mon in self.active.values():
            if leg_id in mon.hears or leg_id in mon.whisper_to:
                mon.hears = [i for i in mon.hears if i != leg_id]
                mon.whisper_to = [i for i in mon.whisper_to if i != leg_id]
                mon.hear_slots = _slots(mon.hears, legs)
                mon.whisper_slots = _slots(mon.whisper_to, legs)

    def wide(self) -> set[str]:
        """Every leg of a monitor: their audio must exist at 16 kHz (see ``TickPlan``)."""
        out: set[str] = set()
        for mon in self.active.values():
            out.add(mon.leg_id)
            out.update(mon.hears)
            out.update(mon.whisper_to)
        return out

    def apply(self, frames: np.ndarray, out: np.ndarray) -> None:
        """Add monitor audio to ``out`` (what each slot hears, int16 [slots, samples]) in place.

        ``frames`` is what each slot received this tick. One short loop over monitors (they
        are few); each step is whole-frame numpy. Listening is computed before any whisper is
        added, so two supervisors of one call never hear each other's whisper through ``out``.
        """
        for mon in self.active.values():
            out[mon.slot] = listen_mix(frames, mon.hear_slots)
        for mon in self.active.values():
            if mon.whisper_slots.size:
                out[mon.whisper_slots] = whisper_mix(out[mon.whisper_slots], frames[mon.slot])


def listen_mix(frames: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """The clipped int16 sum of ``frames[slots]`` (silence if ``slots`` is empty)."""
    return clip16(frames[slots].sum(axis=0, dtype=np.int32))


def whisper_mix(heard: np.ndarray, whisper: np.ndarray) -> np.ndarray:
    """``heard`` (int16 rows) with ``whisper`` (one int16 frame) added to each row, clipped."""
    return clip16(heard.astype(np.int32) + whisper)
