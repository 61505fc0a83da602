"""The post-call survey on the real media engine, in process, on virtual time.

As in the voicemail session tests: the caller is an RTP leg of a real MediaEngine, prompts are
real espeak-ng renderings played by the engine (their ends come back as PlaybackEnded), and
what the caller hears is decoded from the packets the leg sends. Keys arrive either as RFC 4733
telephone-event packets fed to the engine (detected by it) or as DtmfReceived events.
"""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from appliance.ivr.tts import PromptCache
from appliance.media import g711, rtp
from appliance.media.dtmf import TelephoneEvent, encode_event, event_code
from appliance.media.engine import MediaEngine
from appliance.media.events import DtmfEvent, PlaybackFinished
from appliance.pbx.channel import NORMAL_CLEARING, Cause, Channel, DtmfReceived, Party, PlaybackEnded
from appliance.pbx.survey import (
    DEFAULT_QUESTIONS,
    SurveyAnswers,
    SurveyQuestion,
    SurveySession,
    SurveyState,
)

TICK = 0.02
PT_EVENT = 101


class TestChannel(Channel):
    """A channel whose technology is this test: the session only uses its leg."""

    technology = "test"
    __test__ = False

    def ring(self) -> None: ...
    def progress(self) -> None: ...
    def answer(self) -> None: ...
    def hangup(self, cause: Cause = NORMAL_CLEARING) -> None: ...
    def notify_transfer(self, status: int, reason: str, final: bool) -> None: ...
    def remote_description(self) -> str:
        return "rig"


class _Timer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Rig:
    """One caller on one engine leg, a virtual clock and a Scheduler on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.events: list[Any] = []
        self.engine = MediaEngine(self.events.append, clock=lambda: self.now, wallclock=lambda: self.now)
        self.chan = TestChannel("inbound", Party("1002", "Bob"), "1001")
        self.heard: list[bytes] = []
        self.engine.add_leg(self.chan.media_leg, 0, lambda d, a: self.heard.append(d), lambda d, a: None)
        self.engine.configure_leg(self.chan.media_leg, ("127.0.0.1", 4000), "PCMU", 0, PT_EVENT)
        self._timers: list[tuple[float, int, _Timer, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._rtp_seq = 0
        self._ts = 0
        self.session: Any = None
        self.detected: list[str] = []  # digits the engine detected (RFC 4733)

    def schedule(self, delay: float, fn: Callable[[], None]) -> _Timer:
        handle = _Timer()
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), handle, fn))
        return handle

    def _send(self, pt: int, ts: int, payload: bytes, marker: bool = False) -> None:
        self.engine.rtp_received(self.engine.legs[self.chan.media_leg],
                                 rtp.build(pt, self._rtp_seq, ts, 77, payload, marker), ("127.0.0.1", 4000),
                                 self.now)
        self._rtp_seq += 1

    def step(self) -> None:
        # The caller's phone sends silence every 20 ms, as a real one does.
        self._send(0, self._ts, g711.ulaw_encode(np.zeros(160, dtype=np.int16)).tobytes())
        self._ts += 160
        self.engine.tick(self.now)
        self.now += TICK
        self._deliver()
        while self._timers and self._timers[0][0] <= self.now:
            _, _, handle, fn = heapq.heappop(self._timers)
            if not handle.cancelled:
                fn()

    def _deliver(self) -> None:
        events, self.events[:] = list(self.events), []
        for ev in events:  # what Engine._media_event does
            if isinstance(ev, PlaybackFinished):
                self.session.handle(PlaybackEnded(self.chan, ev.play_id))
            elif isinstance(ev, DtmfEvent):
                self.detected.append(ev.digit)
                self.session.handle(DtmfReceived(self.chan, ev.digit, ev.source))

    def press(self, digit: str) -> None:
        """An RFC 4733 key press of 60 ms: three packets with the event's start timestamp (2.5.1.2)."""
        start = self._ts
        for i in range(3):
            payload = encode_event(TelephoneEvent(event_code(digit), end=i == 2, volume=10, duration=160 * (i + 1)))
            self._send(PT_EVENT, start, payload, marker=i == 0)
            self.step()

    def key(self, digit: str) -> None:
        self.session.handle(DtmfReceived(self.chan, digit, "rfc4733"))

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / TICK)):
            self.step()

    def run_until(self, cond: Callable[[], bool], limit: float = 30.0) -> float:
        """Advance until `cond()`; returns the virtual seconds it took."""
        start = self.now
        while not cond():
            if self.now - start > limit:
                raise AssertionError(f"condition not met within {limit} s (state {self.session.state})")
            self.step()
        return self.now - start

    def waiting_for(self, field: str, tries: int = 1) -> Callable[[], bool]:
        """The question for `field` (asked for the `tries`-th time) has been spoken in full."""
        s = self.session
        return lambda: (s.state == SurveyState.QUESTION and s.questions[s.index].field == field
                        and s.tries == tries and s.prompter.play_id is None)

    def heard_pcm(self, since: int = 0) -> np.ndarray:
        return g711.ulaw_decode(b"".join(rtp.parse(d).payload for d in self.heard[since:])).astype(np.float64)


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> PromptCache:
    # One cache for the module: each text is rendered by espeak-ng once.
    return PromptCache(tmp_path_factory.mktemp("tts"))


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    try:
        yield r
    finally:
        r.engine.close()


def survey(rig: Rig, prompts: PromptCache, **kwargs: Any) -> list[SurveyAnswers]:
    done: list[SurveyAnswers] = []
    rig.session = SurveySession(rig.chan, rig.engine, rig.schedule, prompts, done.append, **kwargs)
    rig.session.start()
    return done


def test_question_parsing() -> None:
    csat, nps, ces = DEFAULT_QUESTIONS
    assert [csat.max_digits, nps.max_digits, ces.max_digits] == [1, 2, 1]
    assert [nps.parse(d) for d in ("0", "7", "10", "05", "11", "", "*", "1*")] == [0, 7, 10, 5, None, None, None, None]
    assert [csat.parse(d) for d in ("1", "5", "0", "6", "9")] == [1, 5, None, None, None]
    assert [ces.parse(d) for d in ("1", "7", "8")] == [1, 7, None]


def test_full_survey_with_rfc4733_keys_and_ten_for_nps(rig: Rig, prompts: PromptCache) -> None:
    done = survey(rig, prompts)
    assert rig.session.state == SurveyState.INTRO
    intro = rig.run_until(lambda: rig.session.state == SurveyState.QUESTION)
    assert intro > 1.5  # the introduction was played to its end first
    assert np.sqrt(np.mean(rig.heard_pcm() ** 2)) > 300  # and it was audible speech, not silence
    rig.run_until(rig.waiting_for("csat"))
    rig.press("4")
    rig.run_until(rig.waiting_for("nps"))
    rig.press("1")
    rig.press("0")  # the second key completes '10' at once: no '#' needed
    assert rig.session.answers.nps == 10 and rig.session.questions[rig.session.index].field == "ces"
    rig.run_until(rig.waiting_for("ces"))
    rig.press("6")
    assert rig.session.state == SurveyState.GOODBYE and not done
    goodbye = rig.run_until(lambda: bool(done))
    assert goodbye > 0.8  # "Thank you. Goodbye." was played before the end
    assert done == [SurveyAnswers(csat=4, nps=10, ces=6)]
    assert rig.detected == ["4", "1", "0", "6"]  # each press detected once by the engine
    rig.session.stop()  # the owner's hang-up after on_done: not a second report
    assert len(done) == 1 and rig.session.state == SurveyState.DONE


def test_nps_single_digit_ends_with_hash_or_timeout(rig: Rig, prompts: PromptCache) -> None:
    done = survey(rig, prompts)
    rig.run_until(rig.waiting_for("csat"))
    rig.key("5")
    rig.run_until(rig.waiting_for("nps"))
    rig.key("7")
    rig.key("#")
    assert rig.session.answers.nps == 7
    rig.session.stop()
    assert done == [SurveyAnswers(csat=5, nps=7, ces=None)]

    done = survey(rig, prompts)
    rig.run_until(rig.waiting_for("csat"))
    rig.key("5")
    rig.run_until(rig.waiting_for("nps"))
    rig.key("8")
    took = rig.run_until(lambda: rig.session.answers.nps is not None, limit=10.0)
    assert took == pytest.approx(6.0, abs=0.1)  # the inter-key timeout submits '8'
    assert rig.session.answers.nps == 8


def test_invalid_csat_is_asked_once_more(rig: Rig, prompts: PromptCache) -> None:
    done = survey(rig, prompts)
    rig.run_until(rig.waiting_for("csat"))
    mark = len(rig.heard)
    rig.press("9")  # out of 1-5
    assert rig.session.state == SurveyState.QUESTION and rig.session.tries == 2
    assert rig.session.answers.csat is None
    rig.run_until(rig.waiting_for("csat", tries=2))
    assert rig.heard_pcm(mark).size > 8000 * 3  # "Sorry... How satisfied..." was spoken again
    rig.press("2")
    rig.run_until(rig.waiting_for("nps"))
    rig.session.stop()
    assert done == [SurveyAnswers(csat=2, nps=None, ces=None)]


def test_typed_ahead_answer_interrupts_the_question(rig: Rig, prompts: PromptCache) -> None:
    survey(rig, prompts)
    rig.run_until(lambda: rig.session.state == SurveyState.QUESTION)
    rig.run(0.5)  # the CSAT question is still playing
    assert rig.session.prompter.play_id is not None
    rig.press("3")
    assert rig.session.answers.csat == 3 and rig.session.questions[rig.session.index].field == "nps"


def test_a_key_during_the_introduction_skips_it_and_answers_the_first_question(
        rig: Rig, prompts: PromptCache) -> None:
    survey(rig, prompts)
    rig.run(0.5)
    assert rig.session.state == SurveyState.INTRO
    rig.press("4")
    assert rig.session.answers.csat == 4 and rig.session.questions[rig.session.index].field == "nps"


def test_unanswered_and_twice_invalid_questions_are_skipped(rig: Rig, prompts: PromptCache) -> None:
    done = survey(rig, prompts)
    rig.run_until(rig.waiting_for("csat"))
    took = rig.run_until(rig.waiting_for("csat", tries=2), limit=30.0)  # silence: asked again
    assert took > 6.0 + 3.0  # the answer timeout, then the question again
    took = rig.run_until(rig.waiting_for("nps"), limit=30.0)  # silence again: skipped
    assert took > 6.0
    assert rig.session.answers.csat is None
    rig.key("1")
    rig.key("2")  # 12: out of range
    rig.run_until(rig.waiting_for("nps", tries=2))
    rig.key("#")  # nothing: skipped
    rig.run_until(rig.waiting_for("ces"))
    rig.key("7")
    rig.run_until(lambda: bool(done))
    assert done == [SurveyAnswers(csat=None, nps=None, ces=7)]


def test_hang_up_mid_survey_keeps_the_answers_given(rig: Rig, prompts: PromptCache) -> None:
    done = survey(rig, prompts)
    rig.run_until(rig.waiting_for("csat"))
    rig.press("5")
    rig.run(1.0)  # the NPS question is playing
    assert rig.session.prompter.play_id is not None
    rig.session.stop()  # the BYE
    rig.session.stop()  # and the call's own teardown: on_done still once
    assert done == [SurveyAnswers(csat=5, nps=None, ces=None)]
    assert rig.engine.legs[rig.chan.media_leg].player is None  # the prompt was stopped
    rig.run(8.0)  # no timer or late prompt end brings the survey back
    rig.key("9")
    assert done == [SurveyAnswers(csat=5, nps=None, ces=None)] and rig.session.state == SurveyState.DONE


def test_hang_up_during_the_intro_reports_nothing_answered(rig: Rig, prompts: PromptCache) -> None:
    done = survey(rig, prompts)
    rig.run(0.5)
    rig.session.stop()
    assert done == [SurveyAnswers()]
    with pytest.raises(RuntimeError, match="already started"):
        rig.session.start()


def test_custom_questions(rig: Rig, prompts: PromptCache) -> None:
    done = survey(rig, prompts, questions=(SurveyQuestion("nps", "From 0 to 10?", 0, 10),))
    rig.run_until(rig.waiting_for("nps"))
    rig.press("0")
    rig.press("#")
    rig.run_until(lambda: bool(done))
    assert done == [SurveyAnswers(nps=0)]
    with pytest.raises(ValueError, match="not csat, nps or ces"):
        SurveySession(rig.chan, rig.engine, rig.schedule, prompts, done.append,
                      questions=(SurveyQuestion("mood", "?", 1, 3),))
