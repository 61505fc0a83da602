"""Text-to-speech prompts: espeak-ng renders the text once, the WAV is cached by content.

espeak-ng is a Debian package that runs offline (the appliance has no cloud to call); it
writes 22.05 kHz WAV, which we resample to the media engine's 16 kHz mono 16-bit.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

TTS_RATE = 16000


class TtsError(RuntimeError):
    """The text could not be rendered (espeak-ng missing or failing)."""


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Linear-interpolation resampling: enough for speech prompts, pure numpy."""
    if rate_in == rate_out or samples.size == 0:
        return samples.astype(np.int16)
    n_out = int(round(samples.size * rate_out / rate_in))
    x_out = np.arange(n_out) * (rate_in / rate_out)
    return np.interp(x_out, np.arange(samples.size), samples.astype(np.float64)).astype(np.int16)


class PromptCache:
    """Renders `say:` prompts to WAV files under `directory`, once per distinct text and voice."""

    def __init__(self, directory: Path, voice: str = "en", speed: int = 160) -> None:
        self.directory = directory
        self.voice = voice
        self.speed = speed

    def path_for(self, text: str) -> Path:
        """The cached WAV of `text`, rendering it if needed."""
        key = hashlib.sha256(f"{self.voice}|{self.speed}|{text}".encode()).hexdigest()[:24]
        path = self.directory / f"{key}.wav"
        if path.exists():
            return path
        engine = shutil.which("espeak-ng")
        if engine is None:
            raise TtsError("espeak-ng is not installed (Debian package espeak-ng)")
        self.directory.mkdir(parents=True, exist_ok=True)
        raw = self.directory / f"{key}.raw.wav"
        # "--" ends the options (getopt): a prompt text such as "-f/etc/shadow" is spoken, never read
        # as espeak-ng's -f (speak a file), which would let a flow author read any file.
        done = subprocess.run([engine, "-v", self.voice, "-s", str(self.speed), "-w", str(raw), "--", text],
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0 or not raw.exists():
            raise TtsError(f"espeak-ng failed: {done.stderr.strip() or done.returncode}")
        with wave.open(str(raw), "rb") as w:
            rate, data = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        raw.unlink()
        tmp = path.with_suffix(".tmp")
        with wave.open(str(tmp), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(TTS_RATE)
            out.writeframes(resample(data, rate, TTS_RATE).tobytes())
        tmp.replace(path)  # atomic: a half-rendered prompt is never played
        return path
