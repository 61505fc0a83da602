"""Default sounds the PBX needs before an admin uploads their own: music on hold.

Generated rather than shipped so the repository holds no audio binaries; an admin
replaces `sounds/moh.wav` in the data directory with the site's own music.
"""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

MOH_RATE = 8000
# A slow I-vi-IV-V arpeggio (C major), each note 250 ms: recognisably music, never a tone.
_NOTES_HZ = (261.63, 329.63, 392.00, 523.25, 220.00, 261.63, 329.63, 440.00,
             174.61, 220.00, 261.63, 349.23, 196.00, 246.94, 293.66, 392.00)


def moh_samples(rate: int = MOH_RATE, note_seconds: float = 0.25, amplitude: float = 6000.0) -> np.ndarray:
    """The default hold music as int16 samples: soft-attack notes with two harmonics."""
    n = int(rate * note_seconds)
    t = np.arange(n) / rate
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-3.0 * t)
    notes = []
    for f in _NOTES_HZ:
        wave_ = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t) + 0.1 * np.sin(6 * np.pi * f * t)
        notes.append(envelope * wave_)
    music = np.concatenate(notes) * (amplitude / 1.4)
    return music.astype(np.int16)


def ensure_default_moh(path: Path) -> Path:
    """Write the default hold music to `path` unless a file is already there."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(MOH_RATE)
        w.writeframes(moh_samples().tobytes())
    tmp.replace(path)  # atomic: a crash never leaves a half-written prompt
    return path
