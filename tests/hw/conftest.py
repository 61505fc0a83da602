"""Fixtures shared by the hardware engine tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.audio import write_tone_wav


@pytest.fixture
def tones(tmp_path: Path) -> dict[int, Path]:
    """4 s tone WAVs at 1000 and 2000 Hz (8 kHz): one per side of a call."""
    return {f: write_tone_wav(tmp_path / f"tone{f}.wav", f, 4.0, rate=8000, amplitude=8000) for f in (1000, 2000)}
