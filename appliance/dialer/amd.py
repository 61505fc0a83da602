"""Answering-machine detection (AMD) on the first seconds of an answered outbound call.

The method is the one Asterisk's ``AMD()`` application made the de-facto standard (the same
``amd.conf`` parameter names and defaults, so an administrator's tuning carries over): each 20 ms
frame is voice or silence by its energy; runs of voice long enough to be words are counted, and
the shape of the greeting decides:

- a person answers with a short word or two ("Hello?") and then waits for the caller: a short
  greeting followed by ``after_greeting_silence`` of silence is HUMAN;
- a machine plays a long greeting: reaching ``maximum_number_of_words`` words (Asterisk's code
  decides on the word that reaches the count, whatever its docs say of "exceeded"), ``greeting``
  ms of voice, or one word of ``maximum_word_length`` is MACHINE;
- nothing said for ``initial_silence`` ms is MACHINE in Asterisk (some machines start late); here
  the verdict for that case is ``initial_silence_verdict`` (default MACHINE, as Asterisk);
- undecided after ``total_analysis_time`` ms is NOTSURE (the dialer hands NOTSURE to an agent).

Our differences from Asterisk, each because of a failure it caused on test audio:

- the silence threshold is raised above an adaptive noise floor (a minimum tracker on the frame
  level), so steady line noise louder than ``silence_threshold`` is not taken for a greeting that
  never ends (``noise_floor=False`` gives Asterisk's fixed threshold);
- greeting length counts voice from the first word, not stray clicks heard before it.

The floor starts at the first non-zero frame's level but no higher than ``silence_threshold`` (that
frame may already be a hello after digital silence), so noise far above the threshold from the
very answer (louder than about -33 dBov mean) is taken for voice until the floor has climbed to it.

Known blind spots, by design of any energy/word-count AMD: a person who answers with a long
sentence ("Hello, this is Anna speaking, who's calling please?") is MACHINE, and a machine whose
whole greeting is one short phrase ("Leave a message.") is HUMAN.

Everything here is pure: the per-frame decision is a function of numpy arrays and numbers, and
``AmdDetector`` is an explicit state machine fed 8 kHz int16 frames, no I/O and no clock.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass

import numpy as np

from appliance.store.errors import ConfigError

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000  # 160
FULL_SCALE = 32768.0
# All-zero frames come before the far end's first RTP packet (the jitter buffer plays silence);
# they must not seed the noise floor at zero.
DIGITAL_SILENCE = 1.0


class Verdict(enum.StrEnum):
    """What the detector concluded (Asterisk's ``AMDSTATUS`` values, HANGUP aside)."""

    HUMAN = "HUMAN"
    MACHINE = "MACHINE"
    NOTSURE = "NOTSURE"


class AmdState(enum.Enum):
    """Where the detector is in the greeting."""

    WAITING = "waiting"  # nothing word-long heard yet (Asterisk's "initial silence")
    WORD = "word"  # inside a word of the greeting
    GAP = "gap"  # silence after a word: the greeting may be over, or between two words
    DECIDED = "decided"


@dataclass(frozen=True)
class AmdParams:
    """Detector thresholds; times in ms. Names and defaults are Asterisk's ``amd.conf``.

    ``silence_threshold`` is a frame's mean absolute sample value (int16 units, as Asterisk's
    DSP measures it; 256 is about -42 dBov) below which the frame is silence.
    ``noise_floor`` raises that threshold to ``noise_margin_db`` above the tracked line-noise
    level; ``noise_floor_rise_db_per_s`` is how fast the tracker follows a level that went up.
    """

    initial_silence: int = 2500
    greeting: int = 1500
    after_greeting_silence: int = 800
    total_analysis_time: int = 5000
    min_word_length: int = 100
    between_words_silence: int = 50
    maximum_number_of_words: int = 3
    silence_threshold: int = 256
    maximum_word_length: int = 5000
    initial_silence_verdict: Verdict = Verdict.MACHINE
    noise_floor: bool = True
    noise_margin_db: float = 9.0
    noise_floor_rise_db_per_s: float = 6.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "initial_silence_verdict":
                try:
                    object.__setattr__(self, f.name, Verdict(str(value).upper()))
                except ValueError:
                    raise ConfigError(
                        f"amd.{f.name}: {value!r} is not one of HUMAN, MACHINE, NOTSURE") from None
            elif f.name == "noise_floor":
                if not isinstance(value, bool):
                    raise ConfigError(f"amd.{f.name}: expected true or false, got {value!r}")
            elif f.type in ("float", float):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ConfigError(f"amd.{f.name}: expected a number, got {value!r}")
                if value < 0:
                    raise ConfigError(f"amd.{f.name}: must not be negative, got {value}")
            else:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"amd.{f.name}: expected an integer, got {value!r}")
                if value <= 0:
                    raise ConfigError(f"amd.{f.name}: must be positive, got {value}")
        if self.silence_threshold > 32767:
            raise ConfigError(f"amd.silence_threshold: at most 32767 (int16 full scale), got {self.silence_threshold}")
        if self.maximum_number_of_words > 100:
            raise ConfigError(f"amd.maximum_number_of_words: at most 100, got {self.maximum_number_of_words}")
        # Orderings without which some verdict can never be reached.
        if self.between_words_silence >= self.after_greeting_silence:
            raise ConfigError(
                f"amd.between_words_silence ({self.between_words_silence} ms) must be shorter than "
                f"after_greeting_silence ({self.after_greeting_silence} ms)")
        if self.min_word_length > self.maximum_word_length:
            raise ConfigError(
                f"amd.min_word_length ({self.min_word_length} ms) must not exceed "
                f"maximum_word_length ({self.maximum_word_length} ms)")
        for name in ("initial_silence", "greeting", "after_greeting_silence", "min_word_length"):
            if getattr(self, name) >= self.total_analysis_time:
                raise ConfigError(
                    f"amd.{name} ({getattr(self, name)} ms) must be shorter than "
                    f"total_analysis_time ({self.total_analysis_time} ms)")


@dataclass(frozen=True)
class AmdResult:
    """The detector's one verdict.

    ``cause`` is Asterisk's ``AMDCAUSE`` form: ``INITIALSILENCE-<silence>-<limit>``,
    ``HUMAN-<silence>-<limit>``, ``LONGGREETING-<voice>-<limit>``, ``MAXWORDS-<words>-<limit>``,
    ``MAXWORDLENGTH-<ms>``, ``TOOLONG-<ms>``, or ``HANGUP-<ms>`` when the audio ended first.
    ``decided_at_ms`` counts from the first frame; ``greeting_ms`` is voice heard since the first word.
    """

    verdict: Verdict
    cause: str
    decided_at_ms: int
    words: int
    greeting_ms: int

    @property
    def kind(self) -> str:
        """The cause without its figures (``"HUMAN"``, ``"MAXWORDS"``...)."""
        return self.cause.split("-", 1)[0]

    @property
    def ms(self) -> int:
        """Audio it took to decide (the media tap's ``MachineDetected.ms``)."""
        return self.decided_at_ms


# -- per-frame DSP (pure) ---------------------------------------------------------------------

def frame_level(frame: np.ndarray) -> float:
    """Mean absolute sample value of one frame (int16 units): Asterisk's silence measure."""
    x = np.asarray(frame)
    if x.size == 0:
        return 0.0
    return float(np.abs(x.astype(np.int32)).mean())


def level_dbov(level: float) -> float:
    """A mean-absolute level in dB relative to int16 full scale (-inf for zero)."""
    return 20.0 * math.log10(level / FULL_SCALE) if level > 0 else float("-inf")


def update_noise_floor(floor: float | None, level: float, rise_per_frame: float, seed_cap: float) -> float | None:
    """Track the line-noise level: follow any drop at once, climb at most ``rise_per_frame`` (a ratio).

    A minimum tracker: between words and syllables the level falls to the noise, so the floor
    stays there during speech, yet steady noise louder than before is absorbed within seconds.
    Digital silence (no RTP yet) leaves an unset floor unset; the first real frame sets it, but
    no higher than ``seed_cap`` in case that frame is already speech (a hello straight after
    digital silence would otherwise raise the bar above itself).
    """
    if floor is None:
        return min(level, seed_cap) if level >= DIGITAL_SILENCE else None
    if level <= floor:
        return max(level, DIGITAL_SILENCE)
    return min(level, floor * rise_per_frame)


def is_voice(level: float, floor: float | None, threshold: float, margin: float) -> bool:
    """Whether a frame of ``level`` is voice: above the fixed threshold and ``margin`` x the noise floor."""
    limit = threshold if floor is None else max(threshold, floor * margin)
    return level >= limit


# -- the state machine ---------------------------------------------------------------------------

class AmdDetector:
    """Feed the far end's audio from the answer on; ``feed`` returns None until the one verdict.

    Frames are int16 at 8 kHz, any length (20 ms = 160 samples is usual); they are judged in
    20 ms steps, a partial step is kept for the next call. After the verdict, ``feed`` returns
    the same result again and ignores the audio.
    """

    def __init__(self, params: AmdParams | None = None) -> None:
        self.params = params if params is not None else AmdParams()
        p = self.params
        self._margin = 10.0 ** (p.noise_margin_db / 20.0)
        self._rise = 10.0 ** (p.noise_floor_rise_db_per_s * FRAME_MS / 1000.0 / 20.0)
        self.state = AmdState.WAITING
        self.result: AmdResult | None = None
        self.floor: float | None = None
        self.elapsed_ms = 0
        self.words = 0
        self.greeting_ms = 0  # voice since the first word
        self.voice_run_ms = 0  # current word: voice, with gaps shorter than between_words_silence
        self.silence_run_ms = 0  # consecutive silence
        self._carry = np.zeros(0, dtype=np.int16)

    def feed(self, frame: np.ndarray) -> AmdResult | None:
        """Judge more audio; the verdict once reached, else None."""
        if self.result is not None:
            return self.result
        x = np.asarray(frame)
        if x.ndim != 1:
            raise ValueError(f"AMD frames are 1-D sample arrays, got shape {x.shape}")
        if self._carry.size:
            x = np.concatenate([self._carry, x.astype(np.int16, copy=False)])
        whole = x.size - x.size % FRAME_SAMPLES
        self._carry = x[whole:].astype(np.int16, copy=True)
        for start in range(0, whole, FRAME_SAMPLES):
            level = frame_level(x[start:start + FRAME_SAMPLES])
            result = self.step(level)
            if result is not None:
                return result
        return None

    def finish(self) -> AmdResult:
        """The verdict when the audio ends (the far end hung up): NOTSURE ``HANGUP`` if undecided."""
        if self.result is not None:
            return self.result
        self.state = AmdState.DECIDED
        return self._decide(Verdict.NOTSURE, f"HANGUP-{self.elapsed_ms}")

    def step(self, level: float) -> AmdResult | None:
        """One 20 ms frame of mean-absolute ``level``: the one place where the state changes."""
        if self.result is not None:
            return self.result
        p = self.params
        voiced = is_voice(level, self.floor if p.noise_floor else None, p.silence_threshold, self._margin)
        if p.noise_floor:
            self.floor = update_noise_floor(self.floor, level, self._rise, float(p.silence_threshold))
        self.elapsed_ms += FRAME_MS
        if self.elapsed_ms >= p.total_analysis_time:
            self.state = AmdState.DECIDED
            return self._decide(Verdict.NOTSURE, f"TOOLONG-{self.elapsed_ms}")
        if voiced:
            self.silence_run_ms = 0
            self.voice_run_ms += FRAME_MS
        else:
            self.silence_run_ms += FRAME_MS
            if self.silence_run_ms >= p.between_words_silence:
                self.voice_run_ms = 0
        handler = {AmdState.WAITING: self._waiting, AmdState.WORD: self._word, AmdState.GAP: self._gap}[self.state]
        self.state = handler(voiced)
        return self.result

    # Each handler returns the next state; a verdict is recorded by _decide and means DECIDED.
    def _waiting(self, voiced: bool) -> AmdState:
        p = self.params
        if not voiced:
            if self.silence_run_ms >= p.initial_silence:
                return self._decided(p.initial_silence_verdict,
                                     f"INITIALSILENCE-{self.silence_run_ms}-{p.initial_silence}")
            return AmdState.WAITING
        if self.voice_run_ms < p.min_word_length:
            return AmdState.WAITING  # a click or a breath, not yet a word
        self.greeting_ms = self.voice_run_ms  # the first word starts the greeting
        return self._word_begins()

    def _word(self, voiced: bool) -> AmdState:
        p = self.params
        if voiced:
            self.greeting_ms += FRAME_MS
            return self._check_voice(AmdState.WORD)
        if self.silence_run_ms >= p.between_words_silence:
            return AmdState.GAP
        return AmdState.WORD  # a stop consonant inside the word

    def _gap(self, voiced: bool) -> AmdState:
        p = self.params
        if not voiced:
            if self.silence_run_ms >= p.after_greeting_silence:
                # A short greeting, then the caller's turn: a person waiting for an answer.
                return self._decided(Verdict.HUMAN, f"HUMAN-{self.silence_run_ms}-{p.after_greeting_silence}")
            return AmdState.GAP
        self.greeting_ms += FRAME_MS
        if self.voice_run_ms >= p.min_word_length:
            return self._word_begins()
        return self._check_voice(AmdState.GAP)

    def _word_begins(self) -> AmdState:
        self.words += 1
        if self.words >= self.params.maximum_number_of_words:
            return self._decided(Verdict.MACHINE, f"MAXWORDS-{self.words}-{self.params.maximum_number_of_words}")
        return self._check_voice(AmdState.WORD)

    def _check_voice(self, state: AmdState) -> AmdState:
        """The verdicts voice can reach: one endless word, or a greeting too long for a person."""
        p = self.params
        if self.voice_run_ms >= p.maximum_word_length:
            return self._decided(Verdict.MACHINE, f"MAXWORDLENGTH-{self.voice_run_ms}")
        if self.greeting_ms >= p.greeting:
            return self._decided(Verdict.MACHINE, f"LONGGREETING-{self.greeting_ms}-{p.greeting}")
        return state

    def _decided(self, verdict: Verdict, cause: str) -> AmdState:
        self._decide(verdict, cause)
        return AmdState.DECIDED

    def _decide(self, verdict: Verdict, cause: str) -> AmdResult:
        self.result = AmdResult(verdict, cause, self.elapsed_ms, self.words, self.greeting_ms)
        return self.result


def classify(samples: np.ndarray, params: AmdParams | None = None) -> AmdResult:
    """The verdict on a whole buffer of 8 kHz int16 audio from the answer on.

    A buffer that ends before a verdict is treated as the far end hanging up (NOTSURE ``HANGUP``).
    """
    detector = AmdDetector(params)
    result = detector.feed(np.asarray(samples))
    return result if result is not None else detector.finish()
