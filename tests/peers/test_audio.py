"""Unit tests for tests/audio.py (Goertzel detection, tone WAVs, silence skipping)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tests.audio import (
    goertzel_power,
    read_wav,
    sine,
    skip_leading_silence,
    tone_present,
    tone_ratio,
    write_tone_wav,
)


@pytest.mark.parametrize("n", [800, 8000])  # both the recurrence and the long-input path
def test_goertzel_power_of_a_sine_is_half_amplitude_squared(n: int) -> None:
    x = sine(1000, n / 8000, rate=8000, amplitude=10000).astype(np.float64)
    assert goertzel_power(x, 8000, 1000) == pytest.approx(10000**2 / 2, rel=0.01)
    assert goertzel_power(x, 8000, 1500) < 10000**2 / 2 * 1e-3


def test_goertzel_recurrence_matches_dft() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=1000)
    k = np.exp(-2j * np.pi * 697 / 8000 * np.arange(1000))
    assert goertzel_power(x, 8000, 697) == pytest.approx(2 * abs(np.dot(x, k)) ** 2 / 1000**2)
    assert goertzel_power(np.array([]), 8000, 697) == 0.0


def test_write_and_read_tone_wav(tmp_path: Path) -> None:
    p = write_tone_wav(tmp_path / "t.wav", 2000, 0.5, rate=16000, amplitude=4000)
    rate, data = read_wav(p)
    assert rate == 16000 and data.dtype == np.int16 and data.size == 8000
    assert int(np.abs(data).max()) == 4000
    with pytest.raises(ValueError):
        write_tone_wav(tmp_path / "bad.wav", 1000, 1.0, rate=44100)


def test_read_wav_downmixes_stereo_and_rejects_8bit(tmp_path: Path) -> None:
    stereo = tmp_path / "s.wav"
    with wave.open(str(stereo), "wb") as wf:
        wf.setnchannels(2)
        wf.setsampwidth(2)
        wf.setframerate(8000)
        wf.writeframes(np.array([100, 300, -100, -300], dtype="<i2").tobytes())
    assert read_wav(stereo)[1].tolist() == [200, -200]
    u8 = tmp_path / "u8.wav"
    with wave.open(str(u8), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(1)
        wf.setframerate(8000)
        wf.writeframes(bytes(80))
    with pytest.raises(ValueError):
        read_wav(u8)


def test_tone_present_skips_leading_silence(tmp_path: Path) -> None:
    tone = sine(1000, 1.0)
    padded = np.concatenate([np.zeros(16000, dtype=np.int16), tone])  # 2 s silence, 1 s tone
    p = tmp_path / "p.wav"
    with wave.open(str(p), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(8000)
        wf.writeframes(padded.astype("<i2").tobytes())
    assert skip_leading_silence(padded, 8000).size == tone.size
    assert tone_present(p, 1000)
    assert not tone_present(p, 2000)
    assert tone_ratio(padded, 8000, 1000) > 0.95


def test_tone_absent_in_noise_and_silence(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    noise = (rng.normal(size=8000) * 3000).astype(np.int16)
    assert tone_ratio(noise, 8000, 1000) < 0.05
    assert tone_ratio(np.zeros(8000, dtype=np.int16), 8000, 1000) == 0.0
    mix = (
        sine(1000, 1.0, amplitude=3000).astype(np.int32) + sine(2000, 1.0, amplitude=3000)
    ).astype(np.int16)
    assert 0.4 < tone_ratio(mix, 8000, 1000) < 0.6  # half the power each
