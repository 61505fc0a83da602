"""The post-call survey on the real media engine, in process, on virtual time.

As in the voicemail session tests: the caller is an RTP leg of a real MediaEngine, prompts are
real espeak-ng renderings played by the engine (their ends come back as PlaybackEnded), and
what the caller hears is decoded from the packets the leg sends. Keys arrive either as RFC 4733
telephone-event packets fed to the engine (detected by it) or as DtmfReceived events.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from appliance.ivr.tts import PromptCache
from appliance.pbx.survey import (
    DEFAULT_QUESTIONS,
    SurveyAnswers,
    SurveyQuestion,
    SurveySession,
    SurveyState,
)
from tests.session_rig import Rig, rms


def waiting_for(rig: Rig, field: str, tries: int = 1) -> Callable[[], bool]:
    """The question for `field` (asked for the `tries`-th time) has been spoken in full."""
    s = rig.session
    return lambda: (s.state == SurveyState.QUESTION and s.questions[s.index].field == field
                    and s.tries == tries and s.prompter.play_id is None)



@pytest.fixture
def rig() -> Iterator[Rig]:
    with Rig() as r:
        yield r


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
    assert rms(rig.heard_pcm()) > 300  # and it was audible speech, not silence
    rig.run_until(waiting_for(rig, "csat"))
    rig.press("4")
    rig.run_until(waiting_for(rig, "nps"))
    rig.press("1")
    rig.press("0")  # the second key completes '10' at once: no '#' needed
    assert rig.session.answers.nps == 10 and rig.session.questions[rig.session.index].field == "ces"
    rig.run_until(waiting_for(rig, "ces"))
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
    rig.run_until(waiting_for(rig, "csat"))
    rig.key("5")
    rig.run_until(waiting_for(rig, "nps"))
    rig.key("7")
    rig.key("#")
    assert rig.session.answers.nps == 7
    rig.session.stop()
    assert done == [SurveyAnswers(csat=5, nps=7, ces=None)]

    done = survey(rig, prompts)
    rig.run_until(waiting_for(rig, "csat"))
    rig.key("5")
    rig.run_until(waiting_for(rig, "nps"))
    rig.key("8")
    took = rig.run_until(lambda: rig.session.answers.nps is not None, limit=10.0)
    assert took == pytest.approx(6.0, abs=0.1)  # the inter-key timeout submits '8'
    assert rig.session.answers.nps == 8


def test_invalid_csat_is_asked_once_more(rig: Rig, prompts: PromptCache) -> None:
    done = survey(rig, prompts)
    rig.run_until(waiting_for(rig, "csat"))
    mark = len(rig.heard)
    rig.press("9")  # out of 1-5
    assert rig.session.state == SurveyState.QUESTION and rig.session.tries == 2
    assert rig.session.answers.csat is None
    rig.run_until(waiting_for(rig, "csat", tries=2))
    assert rig.heard_pcm(mark).size > 8000 * 3  # "Sorry... How satisfied..." was spoken again
    rig.press("2")
    rig.run_until(waiting_for(rig, "nps"))
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
    rig.run_until(waiting_for(rig, "csat"))
    took = rig.run_until(waiting_for(rig, "csat", tries=2), limit=30.0)  # silence: asked again
    assert took > 6.0 + 3.0  # the answer timeout, then the question again
    took = rig.run_until(waiting_for(rig, "nps"), limit=30.0)  # silence again: skipped
    assert took > 6.0
    assert rig.session.answers.csat is None
    rig.key("1")
    rig.key("2")  # 12: out of range
    rig.run_until(waiting_for(rig, "nps", tries=2))
    rig.key("#")  # nothing: skipped
    rig.run_until(waiting_for(rig, "ces"))
    rig.key("7")
    rig.run_until(lambda: bool(done))
    assert done == [SurveyAnswers(csat=None, nps=None, ces=7)]


def test_hang_up_mid_survey_keeps_the_answers_given(rig: Rig, prompts: PromptCache) -> None:
    done = survey(rig, prompts)
    rig.run_until(waiting_for(rig, "csat"))
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
    rig.run_until(waiting_for(rig, "nps"))
    rig.press("0")
    rig.press("#")
    rig.run_until(lambda: bool(done))
    assert done == [SurveyAnswers(nps=0)]
    with pytest.raises(ValueError, match="not csat, nps or ces"):
        SurveySession(rig.chan, rig.engine, rig.schedule, prompts, done.append,
                      questions=(SurveyQuestion("mood", "?", 1, 3),))
