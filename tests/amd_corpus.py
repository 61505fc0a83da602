"""A labelled, seeded set of answered-call audio for answering-machine detection (AMD).

Speech is rendered with espeak-ng (several voices, speeds and pitches) and shaped into what the
dialer hears after an answer, at 8 kHz through G.711 mu-law:

- human: a short greeting ("Hello?", "Yes, hello", "Hi, this is Anna") after 0.2-1.5 s of
  silence, then silence while they wait for the caller (sometimes a second "Hello?" ~2 s later);
- machine: a 3-10 s voicemail greeting after 0.1-1.0 s, sometimes ending in a 1 kHz beep.

Both may start with a handset click, and get light line noise (-70 to -52 dBov RMS) and a random
level (peaks -16 to -3 dBov).
``edge_cases`` adds the cases an energy/word-count detector gets "wrong" by design or must
survive, each with the verdict we expect and why (see ``EDGE_EXPECTATIONS``).

Everything is deterministic for a seed; espeak-ng renders each distinct phrase/voice once into
a cache directory (a few ms per phrase), the rest is numpy.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.dialer.amd import Verdict
from appliance.media.g711 import ulaw_decode, ulaw_encode

RATE = 8000
# What we state for the default parameters on ``main_set`` (the bench and the unit test check both):
# overall accuracy, and the recall of each class (NOTSURE counts as wrong).
STATED_ACCURACY = 0.90
STATED_RECALL = 0.85
ESPEAK = "espeak-ng"

HUMAN_TEXTS = (
    "Hello?", "Hello.", "Yes, hello?", "Hi, this is Anna.", "Yeah?", "Hello, yes?", "Hi there.",
    "Speaking.", "Good morning.", "Yes?", "Hello, Mark here.", "Hiya.",
)
MACHINE_TEXTS = (
    "Hello, you have reached the voicemail of John Miller. Please leave a message after the tone.",
    "Hi, you've reached Sarah. I can't take your call right now, leave your name and number and I'll "
    "call you back.",
    "The person you are calling is not available. Please leave a message after the tone.",
    "Thank you for calling Smith and Sons plumbing. Our office is closed. Please leave a message.",
    "Hey, it's Dave. Leave a message.",
    "You have reached five five five, one two three four. Nobody is available to take your call. "
    "Please leave a message after the beep.",
    "Hello, this is Maria. Sorry I missed your call, please leave a message and I will get back to "
    "you as soon as I can.",
    "The mailbox of extension two one four is full. Please try again later.",
    "Hi, we're not home right now. Leave a message at the beep.",
    "Welcome to the voice mail service. The subscriber cannot take your call. Please record your "
    "message after the tone. When you have finished, hang up.",
)
LONG_HUMAN_TEXTS = (
    "Hello, yes, this is Anna speaking, who is calling please?",
    "Hi, sorry, I was just in the garden, who is this?",
    "Good afternoon, Miller residence, how can I help you?",
)
SHORT_MACHINE_TEXTS = ("Leave a message.", "Please leave a message.")
VOICES = ("en-us", "en-gb", "en+f3", "en-us+m3", "en+f2", "en-gb-scotland", "en-029", "en-us+f4")
SPEEDS = (140, 160, 175, 190)
PITCHES = (35, 50, 65)

# Edge-case group -> (verdict expected, why).
EDGE_EXPECTATIONS: dict[str, tuple[Verdict, str]] = {
    "long_human": (Verdict.MACHINE, "a person answering with a sentence is a long greeting (by design)"),
    "short_machine": (Verdict.HUMAN, "a machine saying only one short phrase looks like hello (by design)"),
    "silence": (Verdict.MACHINE, "nothing said within initial_silence: MACHINE, as Asterisk"),
    "line_noise_only": (Verdict.MACHINE, "loud steady noise is not speech (noise floor): initial silence"),
    "noisy_human": (Verdict.HUMAN, "a hello on a noisy line (-40 dBov noise)"),
    "late_rtp_human": (Verdict.HUMAN, "digital silence before the first packet, then a hello"),
}


@dataclass(frozen=True)
class Sample:
    """One answered call's received audio and what AMD should say."""

    name: str
    group: str  # "human", "machine" or an EDGE_EXPECTATIONS key
    expected: Verdict
    audio: np.ndarray  # int16, 8 kHz
    speech_ms: int  # where the first speech starts (-1: none)
    text: str


# -- rendering --------------------------------------------------------------------------------

def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling of a whole clip by truncating (or padding) its spectrum."""
    n_out = round(x.size * rate_out / rate_in)
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64))
    keep = n_out // 2 + 1
    out_spec = np.zeros(keep, dtype=complex)
    m = min(keep, spec.size)
    out_spec[:m] = spec[:m]
    return np.fft.irfft(out_spec, n_out) * (n_out / x.size)


def render(text: str, voice: str, speed: int, pitch: int, cache_dir: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng at 8 kHz (float samples), leading/trailing silence trimmed; cached."""
    key = hashlib.sha1(f"{text}|{voice}|{speed}|{pitch}".encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"amd-{key}.wav"
    if not path.exists():
        raw = Path(cache_dir) / f"amd-{key}.raw.wav"
        subprocess.run([ESPEAK, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
                       check=True, capture_output=True, timeout=30)
        with wave.open(str(raw), "rb") as wf:
            rate = wf.getframerate()
            data = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2")
        raw.unlink()
        y = resample(data, rate, RATE)
        y = np.clip(np.round(y), -32768, 32767).astype(np.int16)
        _write_wav(path, _trim(y))
    with wave.open(str(path), "rb") as wf:
        return np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2").astype(np.float64)


def _trim(x: np.ndarray, threshold: int = 100) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > threshold)
    return x[loud[0]:loud[-1] + 1] if loud.size else x[:0]


def _write_wav(path: Path, x: np.ndarray) -> None:
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(RATE)
        wf.writeframes(x.astype("<i2").tobytes())
    tmp.replace(path)


# -- shaping a call -----------------------------------------------------------------------------

def _at_peak(x: np.ndarray, peak_dbov: float) -> np.ndarray:
    peak = np.abs(x).max() if x.size else 0.0
    return x * (32767.0 * 10 ** (peak_dbov / 20) / peak) if peak > 0 else x


def _line(parts: Sequence[np.ndarray], total_s: float, noise_dbov: float, rng: np.random.Generator,
          zeros_s: float = 0.0) -> np.ndarray:
    """Concatenate, pad with silence to ``total_s``, add line noise, pass through mu-law."""
    x = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    n = max(round(total_s * RATE), x.size)
    x = np.concatenate([x, np.zeros(n - x.size)])
    x = x + rng.normal(0.0, 32768.0 * 10 ** (noise_dbov / 20), n)
    lin = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    out = ulaw_decode(ulaw_encode(lin))
    z = round(zeros_s * RATE)
    if z:
        out = np.concatenate([np.zeros(z, dtype=np.int16), out[:-z]])
    return out


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE))


def _answer(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """The silence between the answer and the first word; half the time a handset click (20-40 ms) in it."""
    x = _silence(seconds)
    if rng.random() < 0.5:
        n = round(rng.uniform(0.02, 0.04) * RATE)
        at = round(rng.uniform(0.0, 0.1) * RATE)
        x[at:at + n] = rng.normal(0.0, 32768.0 * 10 ** (rng.uniform(-25.0, -15.0) / 20), n)[:x.size - at]
    return x


def _beep(seconds: float = 0.4, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return 0.3 * 32767 * np.sin(2 * math.pi * freq * t)


def _voice(rng: np.random.Generator, texts: Sequence[str], cache_dir: Path) -> tuple[str, np.ndarray]:
    text = texts[int(rng.integers(len(texts)))]
    voice = VOICES[int(rng.integers(len(VOICES)))]
    speed = SPEEDS[int(rng.integers(len(SPEEDS)))]
    pitch = PITCHES[int(rng.integers(len(PITCHES)))]
    speech = render(text, voice, speed, pitch, cache_dir)
    return f"{text} [{voice} {speed}wpm p{pitch}]", _at_peak(speech, rng.uniform(-16.0, -3.0))


def human(rng: np.random.Generator, cache_dir: Path, texts: Sequence[str] = HUMAN_TEXTS,
          noise_dbov: float | None = None, zeros_s: float = 0.0) -> tuple[np.ndarray, int, str]:
    """A person answering: pre-silence, a short greeting, silence (maybe a second hello)."""
    pre = rng.uniform(0.2, 1.5)
    text, speech = _voice(rng, texts, cache_dir)
    parts = [_answer(rng, pre), speech]
    if rng.random() < 0.3:  # nobody answered their hello: they say it again
        _, again = _voice(rng, ("Hello?",), cache_dir)
        parts += [_silence(rng.uniform(1.6, 2.5)), again]
    noise = rng.uniform(-70.0, -52.0) if noise_dbov is None else noise_dbov
    return _line(parts, 6.0, noise, rng, zeros_s), round((pre + zeros_s) * 1000), text


def machine(rng: np.random.Generator, cache_dir: Path,
            texts: Sequence[str] = MACHINE_TEXTS) -> tuple[np.ndarray, int, str]:
    """An answering machine: a quick start, a long greeting, maybe a beep, then silence."""
    pre = rng.uniform(0.1, 1.0)
    text, speech = _voice(rng, texts, cache_dir)
    parts = [_answer(rng, pre), speech]
    if rng.random() < 0.5:
        parts += [_silence(rng.uniform(0.2, 0.6)), _beep()]
    noise = rng.uniform(-70.0, -52.0)
    return _line(parts, 6.0, noise, rng), round(pre * 1000), text


def main_set(cache_dir: Path, per_class: int = 60, seed: int = 1) -> list[Sample]:
    """``per_class`` humans and as many machines; sample i is the same for any ``per_class`` > i."""
    out: list[Sample] = []
    for i in range(per_class):
        rng = np.random.default_rng([seed, 1, i])
        audio, at, text = human(rng, cache_dir)
        out.append(Sample(f"human-{i:03d}", "human", Verdict.HUMAN, audio, at, text))
        rng = np.random.default_rng([seed, 2, i])
        audio, at, text = machine(rng, cache_dir)
        out.append(Sample(f"machine-{i:03d}", "machine", Verdict.MACHINE, audio, at, text))
    return out


def edge_cases(cache_dir: Path, per_group: int = 5, seed: int = 1) -> list[Sample]:
    """``per_group`` samples of each EDGE_EXPECTATIONS group, labelled with the verdict we expect."""
    out: list[Sample] = []
    for i in range(per_group):
        def rng(k: int, i: int = i) -> np.random.Generator:
            return np.random.default_rng([seed, 100 + k, i])

        cases: list[tuple[str, tuple[np.ndarray, int, str]]] = [
            ("long_human", human(rng(0), cache_dir, LONG_HUMAN_TEXTS)),
            ("short_machine", machine(rng(1), cache_dir, SHORT_MACHINE_TEXTS)),
            ("noisy_human", human(rng(4), cache_dir, noise_dbov=-40.0)),
            ("late_rtp_human", human(rng(5), cache_dir, zeros_s=0.3)),
        ]
        r = rng(2)
        cases.append(("silence", (_line([_silence(0.1)], 6.0, r.uniform(-70.0, -52.0), r), -1, "")))
        r = rng(3)
        cases.append(("line_noise_only", (_line([_silence(0.1)], 6.0, r.uniform(-40.0, -34.0), r), -1, "")))
        for group, (audio, at, text) in cases:
            out.append(Sample(f"{group}-{i:03d}", group, EDGE_EXPECTATIONS[group][0], audio, at, text))
    return out
