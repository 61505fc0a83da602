"""Answering-machine detection on a leg's received audio, one 20 ms frame per media tick.

The detector itself is pure DSP (`appliance.dialer.amd`); this tap feeds it what the far end of
one leg sends, the way in-band DTMF detection is fed, and turns its single verdict into a
`MachineDetected` event. The engine decodes such a leg at 16 kHz (it is "wide", like a recorded
leg); the detector works on 8 kHz telephone audio, so each frame is halved by averaging pairs of
samples (a two-tap low-pass: the speech band AMD looks at is far below 4 kHz).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from appliance.dialer.amd import AmdDetector, AmdParams
from appliance.media.events import MachineDetected
from appliance.media.protocol import MediaError

AMD_RATE = 8000


class AmdTap:
    """One running detection: feed frames until it returns its event, then it is done."""

    def __init__(self, leg_id: str, params: dict[str, Any] | None) -> None:
        self.leg_id = leg_id
        try:
            # Unknown names are a TypeError, bad values the params' own ValueError (ConfigError).
            self.detector = AmdDetector(AmdParams(**(params or {})))
        except (TypeError, ValueError) as exc:
            raise MediaError(f"detect_machine: bad parameters: {exc}") from exc
        self.done = False

    def feed(self, frame: np.ndarray, rate: int) -> MachineDetected | None:
        """One 20 ms frame of int16 audio at `rate` (8 or 16 kHz); the event when decided."""
        if self.done:
            return None
        if rate == 2 * AMD_RATE:
            pairs = frame.astype(np.int32).reshape(-1, 2)
            frame = (pairs.sum(axis=1) // 2).astype(np.int16)
        result = self.detector.feed(frame)
        if result is None:
            return None
        self.done = True
        return MachineDetected(self.leg_id, result.verdict.value, result.cause, result.ms)
