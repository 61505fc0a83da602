"""Tone cadences and frequencies."""

import numpy as np
import pytest

from appliance.media.tones import TONES, ToneGenerator, ToneSpec, tone


def _render(spec: ToneSpec, seconds: float) -> np.ndarray:
    g = ToneGenerator(spec)
    return np.concatenate([g.next_frame() for _ in range(int(seconds * 50))])


def _on_off_runs(x: np.ndarray, rate: int = 16000) -> list[tuple[bool, float]]:
    """(on?, seconds) runs measured by 5 ms blocks of energy."""
    blocks = x.reshape(-1, rate // 200).astype(float)
    on = (blocks ** 2).mean(axis=1) > 1e4
    runs: list[tuple[bool, float]] = []
    for v in on:
        if runs and runs[-1][0] == v:
            runs[-1] = (v, runs[-1][1] + 0.005)
        else:
            runs.append((bool(v), 0.005))
    return runs


@pytest.mark.parametrize("key,expected", [
    (("US", "ringback"), [2.0, 4.0]), (("US", "busy"), [0.5, 0.5]),
    (("US", "congestion"), [0.25, 0.25]), (("UK", "ringback"), [0.4, 0.2, 0.4, 2.0]),
    (("UK", "busy"), [0.375, 0.375]), (("UK", "congestion"), [0.4, 0.35, 0.225, 0.525]),
    (("FR", "ringback"), [1.5, 3.5]), (("FR", "busy"), [0.5, 0.5]),
    (("FR", "congestion"), [0.25, 0.25]),
])
def test_cadence(key, expected):
    spec = TONES[key]
    period = sum(expected)
    runs = _on_off_runs(_render(spec, 2 * period))
    got = [round(d, 3) for _, d in runs[:len(expected)]]
    assert runs[0][0]
    assert got == pytest.approx(expected, abs=0.006)


@pytest.mark.parametrize("country,freqs", [("US", (440, 480)), ("UK", (400, 450)), ("FR", (440,))])
def test_ringback_frequencies(country, freqs):
    x = _render(tone(country, "ringback"), 0.4)  # inside the first 'on' period
    spectrum = np.abs(np.fft.rfft(x.astype(float)))  # 0.4 s -> 2.5 Hz bins
    peaks = sorted(np.argsort(spectrum)[-len(freqs):] * 2.5)
    assert peaks == pytest.approx(list(freqs), abs=2.5)


def test_dial_tone_is_continuous_and_phase_continuous():
    x = _render(tone("US", "dial"), 1.0).astype(float)
    ref = ToneGenerator(tone("US", "dial"), samples=16000).next_frame().astype(float)
    assert np.max(np.abs(x - ref)) <= 1.0  # frames join exactly like one long render


def test_bad_specs_rejected():
    with pytest.raises(ValueError):
        ToneSpec("x", (440,), (1.0,))
    with pytest.raises(ValueError):
        ToneSpec("x", (9000,))
    with pytest.raises(KeyError):
        tone("DE", "busy")
