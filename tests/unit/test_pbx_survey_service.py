"""PostCallSurvey, the service: its sessions' answers are stored with the call, then the call ends.

On the session rig (tests/session_rig.py): a real MediaEngine leg, real espeak-ng prompts,
virtual time; the store is a real SQLite file. Only ports are stand-ins: the scheduler is the
rig's, `hang_up` is the call's operation as the service sees it.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from appliance.ivr.tts import PromptCache
from appliance.pbx.channel import ChannelState
from appliance.pbx.survey import PostCallSurvey, SurveyState, SurveySubject
from appliance.store import interactions
from appliance.store.db import Store
from tests.session_rig import Rig

SUBJECT = SurveySubject(call_id="call-7", call_key="abc@host", queue="support", agent_id="agent-1")




@pytest.fixture
def rig() -> Iterator[Rig]:
    with Rig() as r:
        yield r


def _answered(rig: Rig) -> None:
    rig.chan.set_state(ChannelState.UP)


def test_answers_are_stored_with_the_call_and_the_caller_is_hung_up_once(
        rig: Rig, store: Store, prompts: PromptCache) -> None:
    _answered(rig)
    hung: list[str] = []
    service = PostCallSurvey(rig.engine, rig.schedule, prompts, store, clock=lambda: 500.0)
    rig.session = service.session(rig.chan, SUBJECT, lambda: hung.append("bye"))
    rig.session.start()
    rig.run(0.3)
    rig.key("4")  # during the introduction: the first answer
    rig.run_until(lambda: rig.session.state == SurveyState.QUESTION and rig.session.index == 1
                  and rig.session.prompter.play_id is None)
    rig.key("9")
    rig.key("#")
    rig.run_until(lambda: rig.session.state == SurveyState.QUESTION and rig.session.index == 2
                  and rig.session.prompter.play_id is None)
    rig.key("7")
    assert not hung
    rig.run_until(lambda: rig.session.state == SurveyState.DONE)
    assert hung == ["bye"]
    rows = interactions.survey_results(store, 0.0, 1000.0)
    assert [(r.call_id, r.queue, r.agent, r.csat, r.nps, r.ces, r.at) for r in rows] == [
        ("abc@host", "support", "agent-1", 4, 9, 7, 500.0)]
    rig.session.stop()  # the hang-up reaching the session: no second row, no second hang-up
    assert len(interactions.survey_results(store, 0.0, 1000.0)) == 1 and hung == ["bye"]


def test_a_caller_who_hangs_up_mid_survey_keeps_the_answers_and_is_not_hung_up_again(
        rig: Rig, store: Store, prompts: PromptCache) -> None:
    _answered(rig)
    hung: list[str] = []
    service = PostCallSurvey(rig.engine, rig.schedule, prompts, store, clock=lambda: 42.0)
    rig.session = service.session(rig.chan, SUBJECT, lambda: hung.append("bye"))
    rig.session.start()
    rig.run(0.3)
    rig.key("5")
    rig.chan.set_state(ChannelState.DOWN)  # the caller hung up
    rig.session.stop()
    assert hung == []
    rows = interactions.survey_results(store, 0.0, 100.0)
    assert [(r.csat, r.nps, r.ces) for r in rows] == [(5, None, None)]
