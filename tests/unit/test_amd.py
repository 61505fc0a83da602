"""Answering-machine detection: parameters, the per-frame DSP, the state machine on hand-built
signals (tones as words), and accuracy on the generated espeak-ng set (tests/amd_corpus.py)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from appliance.dialer.amd import (
    FRAME_SAMPLES,
    AmdDetector,
    AmdParams,
    AmdState,
    Verdict,
    classify,
    frame_level,
    is_voice,
    level_dbov,
    update_noise_floor,
)
from appliance.store.errors import ConfigError
from tests import amd_corpus

RATE = 8000


def silence(ms: int) -> np.ndarray:
    return np.zeros(ms * RATE // 1000, dtype=np.int16)


def word(ms: int, amplitude: int = 6000, freq: float = 440.0) -> np.ndarray:
    """A tone standing in for a spoken word (mean absolute value about 0.64 x amplitude)."""
    t = np.arange(ms * RATE // 1000) / RATE
    return np.round(amplitude * np.sin(2 * math.pi * freq * t)).astype(np.int16)


def noise(ms: int, rms: float, seed: int = 7) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0.0, rms, ms * RATE // 1000)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def signal(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts)


# -- parameters ---------------------------------------------------------------------------------

def test_defaults_are_asterisks() -> None:
    p = AmdParams()
    assert (p.initial_silence, p.greeting, p.after_greeting_silence, p.total_analysis_time) == (2500, 1500, 800, 5000)
    assert (p.min_word_length, p.between_words_silence, p.maximum_number_of_words) == (100, 50, 3)
    assert (p.silence_threshold, p.maximum_word_length, p.initial_silence_verdict) == (256, 5000, Verdict.MACHINE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"greeting": -5}, "amd.greeting: must be positive, got -5"),
        ({"initial_silence": 0}, "amd.initial_silence: must be positive"),
        ({"min_word_length": True}, "amd.min_word_length: expected an integer, got True"),
        ({"maximum_number_of_words": "3"}, "amd.maximum_number_of_words: expected an integer, got '3'"),
        ({"greeting": 1500.0}, "amd.greeting: expected an integer"),
        ({"silence_threshold": 40000}, "amd.silence_threshold: at most 32767"),
        ({"noise_margin_db": float("nan")}, "amd.noise_margin_db: expected a number"),
        ({"noise_margin_db": -3.0}, "amd.noise_margin_db: must not be negative"),
        ({"noise_floor": 1}, "amd.noise_floor: expected true or false"),
        ({"initial_silence_verdict": "maybe"}, "amd.initial_silence_verdict: 'maybe' is not one of"),
        ({"between_words_silence": 800}, "amd.between_words_silence (800 ms) must be shorter than after_greeting"),
        ({"min_word_length": 600, "maximum_word_length": 500}, "amd.min_word_length (600 ms) must not exceed"),
        ({"initial_silence": 6000}, "amd.initial_silence (6000 ms) must be shorter than total_analysis_time"),
        ({"greeting": 5000}, "amd.greeting (5000 ms) must be shorter than total_analysis_time (5000 ms)"),
    ],
)
def test_bad_params_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        AmdParams(**kwargs)  # type: ignore[arg-type]
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)  # the media tap reports ValueError as a bad request


def test_unknown_param_is_an_error() -> None:
    with pytest.raises(TypeError, match="silence_treshold"):
        AmdParams(**{"silence_treshold": 300})  # type: ignore[arg-type]


def test_verdict_policy_accepts_any_case() -> None:
    assert AmdParams(initial_silence_verdict="notsure").initial_silence_verdict is Verdict.NOTSURE  # type: ignore[arg-type]


# -- per-frame DSP ------------------------------------------------------------------------------

def test_frame_level_is_mean_absolute_value() -> None:
    frame = np.array([100, -100] * 80, dtype=np.int16)
    assert frame_level(frame) == 100.0
    assert frame_level(np.array([-32768] * 160, dtype=np.int16)) == 32768.0  # no int16 overflow
    assert frame_level(np.zeros(0, dtype=np.int16)) == 0.0
    assert level_dbov(32768.0) == 0.0
    assert level_dbov(256.0) == pytest.approx(-42.1, abs=0.1)
    assert level_dbov(0.0) == float("-inf")


def test_noise_floor_falls_at_once_and_climbs_slowly() -> None:
    rise, cap = 1.05, 256.0
    assert update_noise_floor(None, 0.0, rise, cap) is None  # digital silence does not seed it
    assert update_noise_floor(None, 40.0, rise, cap) == 40.0
    assert update_noise_floor(None, 3000.0, rise, cap) == 256.0  # a first frame of speech is capped
    assert update_noise_floor(100.0, 20.0, rise, cap) == 20.0
    assert update_noise_floor(100.0, 1000.0, rise, cap) == pytest.approx(105.0)
    assert update_noise_floor(100.0, 102.0, rise, cap) == 102.0
    assert update_noise_floor(10.0, 0.0, rise, cap) == 1.0  # never zero: it must be able to climb again


def test_is_voice_uses_the_higher_of_threshold_and_floor() -> None:
    assert is_voice(300.0, None, 256, 2.0)
    assert not is_voice(200.0, None, 256, 2.0)
    assert is_voice(300.0, 100.0, 256, 2.0)
    assert not is_voice(300.0, 200.0, 256, 2.0)  # 2 x the floor is 400


# -- the state machine on hand-built signals ----------------------------------------------------

def test_silence_only_is_initial_silence_machine() -> None:
    r = classify(signal(silence(3000)))
    assert (r.verdict, r.cause, r.decided_at_ms, r.words) == (Verdict.MACHINE, "INITIALSILENCE-2500-2500", 2500, 0)
    assert r.kind == "INITIALSILENCE"


def test_initial_silence_verdict_is_configurable() -> None:
    r = classify(silence(2000), AmdParams(initial_silence=2000, initial_silence_verdict=Verdict.NOTSURE))
    assert (r.verdict, r.cause, r.decided_at_ms) == (Verdict.NOTSURE, "INITIALSILENCE-2000-2000", 2000)


def test_one_word_then_silence_is_human() -> None:
    r = classify(signal(silence(500), word(600), silence(1000)))
    assert (r.verdict, r.cause, r.words, r.greeting_ms) == (Verdict.HUMAN, "HUMAN-800-800", 1, 600)
    assert r.decided_at_ms == 500 + 600 + 800


def test_four_words_with_short_gaps_is_maxwords_machine() -> None:
    parts = [silence(300)]
    for _ in range(4):
        parts += [word(300), silence(200)]
    r = classify(signal(*parts))
    assert (r.verdict, r.cause, r.words) == (Verdict.MACHINE, "MAXWORDS-3-3", 3)
    # The third word counts once it has lasted min_word_length.
    assert r.decided_at_ms == 300 + 2 * 500 + 100


def test_continuous_voice_is_long_greeting() -> None:
    r = classify(signal(silence(200), word(3000), silence(1000)))
    assert (r.verdict, r.cause, r.words, r.greeting_ms) == (Verdict.MACHINE, "LONGGREETING-1500-1500", 1, 1500)
    assert r.decided_at_ms == 200 + 1500


def test_one_endless_word_is_maxwordlength() -> None:
    r = classify(signal(word(2000), silence(1000)), AmdParams(maximum_word_length=1000, greeting=1500))
    assert (r.verdict, r.cause) == (Verdict.MACHINE, "MAXWORDLENGTH-1000")


def test_undecided_until_total_analysis_time_is_toolong() -> None:
    # Short words, each followed by less silence than after_greeting_silence: never decided.
    params = AmdParams(maximum_number_of_words=100, greeting=4000)
    r = classify(signal(*([word(120), silence(700)] * 8)), params)
    assert (r.verdict, r.cause, r.decided_at_ms) == (Verdict.NOTSURE, "TOOLONG-5000", 5000)
    assert r.words == 6


def test_a_stop_consonant_gap_does_not_split_a_word() -> None:
    r = classify(signal(silence(300), word(300), silence(40), word(300), silence(1000)))
    assert (r.verdict, r.words, r.greeting_ms) == (Verdict.HUMAN, 1, 600)


def test_clicks_shorter_than_a_word_restart_initial_silence_only() -> None:
    r = classify(signal(silence(2000), word(60, 12000), silence(3000)))
    assert (r.verdict, r.cause, r.words) == (Verdict.MACHINE, "INITIALSILENCE-2500-2500", 0)
    assert r.decided_at_ms == 2060 + 2500


def test_quiet_speech_under_the_threshold_is_silence() -> None:
    r = classify(signal(word(1000, amplitude=300), silence(2000)))  # mean |x| about 190 < 256
    assert r.cause == "INITIALSILENCE-2500-2500"


def test_steady_line_noise_is_not_a_greeting() -> None:
    hiss = noise(4000, rms=800.0)  # mean |x| about 640 (-34 dBov): 2.5 x Asterisk's fixed 256
    assert frame_level(hiss) > 2 * 256
    fixed = classify(hiss, AmdParams(noise_floor=False))
    assert fixed.cause == "LONGGREETING-1500-1500"  # Asterisk's fixed threshold hears a greeting
    assert classify(hiss).cause == "INITIALSILENCE-2500-2500"
    # A hello over the same noise is still heard, and the noise after it is silence.
    hello = noise(3000, rms=800.0, seed=8)
    hello[4000:8800] += word(600, amplitude=8000)
    r = classify(hello)
    assert (r.verdict, r.words) == (Verdict.HUMAN, 1)
    assert r.decided_at_ms == pytest.approx(500 + 600 + 800, abs=60)


def test_digital_silence_before_rtp_does_not_pin_the_floor() -> None:
    r = classify(signal(silence(400), noise(300, 30.0), word(500), noise(1500, 30.0)))
    assert (r.verdict, r.cause) == (Verdict.HUMAN, "HUMAN-800-800")


def test_frames_of_any_size_give_the_same_verdict() -> None:
    audio = signal(silence(500), word(400), silence(100), word(300), silence(1200))
    whole = classify(audio)
    for size in (FRAME_SAMPLES, 3 * FRAME_SAMPLES, 100, 1):
        det = AmdDetector()
        results = [det.feed(audio[i:i + size]) for i in range(0, audio.size, size)]
        decided = [r for r in results if r is not None]
        assert decided and decided[0] == whole, size
        assert all(r == whole for r in decided)  # feed after the verdict returns the same verdict
    assert whole.verdict is Verdict.HUMAN


def test_states_and_finish() -> None:
    det = AmdDetector()
    assert det.state is AmdState.WAITING
    assert det.feed(silence(300)) is None
    assert det.feed(word(200)) is None
    assert det.state is AmdState.WORD
    assert det.feed(silence(100)) is None
    assert det.state is AmdState.GAP
    r = det.finish()  # the far end hung up mid-analysis
    assert (r.verdict, r.cause, r.decided_at_ms, r.words) == (Verdict.NOTSURE, "HANGUP-600", 600, 1)
    assert det.state is AmdState.DECIDED
    assert det.feed(word(2000)) is r and det.finish() is r
    assert r.ms == 600


def test_bad_frame_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match="1-D"):
        AmdDetector().feed(np.zeros((2, 160), dtype=np.int16))


def test_media_tap_reports_the_detectors_verdict() -> None:
    """The media engine's tap (16 kHz legs) builds the detector from the PBX's JSON parameters."""
    from appliance.media.amd_tap import AmdTap
    from appliance.media.protocol import MediaError

    with pytest.raises(MediaError, match="between_words_silence"):
        AmdTap("leg-1", {"between_words_silence": 900})
    tap = AmdTap("leg-1", {"after_greeting_silence": 600, "initial_silence_verdict": "NOTSURE"})
    audio8 = signal(silence(400), word(500), silence(1000))
    audio16 = np.repeat(audio8, 2)
    events = [tap.feed(audio16[i:i + 320], 16000) for i in range(0, audio16.size, 320)]
    got = [e for e in events if e is not None]
    assert len(got) == 1
    assert (got[0].leg_id, got[0].verdict, got[0].cause, got[0].ms) == ("leg-1", "HUMAN", "HUMAN-600-600", 1500)


# -- accuracy on generated speech ---------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which(amd_corpus.ESPEAK) is None:
        pytest.fail("espeak-ng is needed to render the AMD test set (apt-get install espeak-ng)")
    return tmp_path_factory.mktemp("amd-corpus")


def test_accuracy_on_generated_set_meets_the_stated_figure(corpus_dir: Path) -> None:
    samples = amd_corpus.main_set(corpus_dir, per_class=60)
    verdicts = [classify(s.audio).verdict for s in samples]
    right = [v == s.expected for s, v in zip(samples, verdicts)]
    accuracy = sum(right) / len(samples)
    assert accuracy >= amd_corpus.STATED_ACCURACY, accuracy
    for label in ("human", "machine"):
        cls = [ok for s, ok in zip(samples, right) if s.group == label]
        assert sum(cls) / len(cls) >= amd_corpus.STATED_RECALL, label


def test_corpus_is_deterministic(corpus_dir: Path) -> None:
    a = amd_corpus.main_set(corpus_dir, per_class=3, seed=5)
    b = amd_corpus.main_set(corpus_dir, per_class=3, seed=5)
    assert all(np.array_equal(x.audio, y.audio) and x.text == y.text for x, y in zip(a, b))
    assert not np.array_equal(a[0].audio, amd_corpus.main_set(corpus_dir, per_class=1, seed=6)[0].audio)


def test_edge_cases_get_their_documented_verdicts(corpus_dir: Path) -> None:
    edges = amd_corpus.edge_cases(corpus_dir, per_group=5)
    by_group: dict[str, list[bool]] = {}
    for s in edges:
        by_group.setdefault(s.group, []).append(classify(s.audio).verdict == s.expected)
    assert set(by_group) == set(amd_corpus.EDGE_EXPECTATIONS)
    # Silence and steady noise are decided by rule; the speech groups by the greeting's shape.
    assert all(by_group["silence"]) and all(by_group["line_noise_only"])
    for group in ("long_human", "noisy_human", "late_rtp_human"):
        assert sum(by_group[group]) >= 4, (group, by_group[group])
