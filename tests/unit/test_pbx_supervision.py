"""Supervision (listen *70, whisper *71, barge *72) of an agent's queue call: who may, and what
the media is asked to do, on a real Switchboard and distributor with fake media, virtual time
and test-driven phones (tests/pbx_rig.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.pbx.call import Call, CallState
from appliance.pbx.errors import PbxError
from appliance.pbx.prompter import Prompter
from appliance.pbx.supervision import Mode, SupervisionSession
from appliance.schema.settings import SUPERVISORS_SETTING
from appliance.store import acd as acd_store
from appliance.store.db import Store
from appliance.store.models import AgentConfig, QueueConfig
from tests.pbx_rig import Line, PbxRig


@pytest.fixture
def rig(store: Store, tmp_path: Path) -> PbxRig:
    r = PbxRig(store, tmp_path)
    for number in ("1001", "2001", "3001", "3002"):
        r.extension(number)
    acd_store.put_agent(store, AgentConfig("501", "Alice", "1234"))
    acd_store.put_agent(store, AgentConfig("502", "Bob", "1234"))
    acd_store.put_queue(store, QueueConfig(name="sales", number="6000", members=["501", "502"],
                                           join_empty=True, announce_seconds=0))
    store.set_setting(SUPERVISORS_SETTING, "3001")
    r.pbx.reload()
    r.pbx.distributor.roster.login("501", None, "2001")
    return r


def _agent_call(rig: PbxRig) -> tuple[Call, Line, Line]:
    """1001 calls the queue; agent 501 answers on 2001: (call, caller's leg, agent's leg)."""
    call, caller = rig.dial("1001", "6000")
    assert call.state is CallState.QUEUED
    agent = rig.phones.ringing("2001")
    agent.remote_ringing()
    agent.remote_answer()
    assert call.state is CallState.UP and call.agent_id == "501" and call.agent_leg is agent
    return call, caller, agent


def test_listen_whisper_barge_and_the_mode_keys(rig: PbxRig) -> None:
    target, caller, agent = _agent_call(rig)
    sup_call, sup = rig.dial("3001", "*70501")
    session = sup_call.service
    assert isinstance(session, SupervisionSession) and sup.is_up and session.mode is Mode.LISTEN
    legs = [caller.media_leg, agent.media_leg]
    assert rig.media.monitors[sup.media_leg] == (legs, [])  # hears both, nobody hears it
    sup.key("5")
    assert rig.media.monitors[sup.media_leg] == (legs, [agent.media_leg])  # whisper: the agent hears it
    sup.key("6")
    assert sup.media_leg not in rig.media.monitors  # barge: in the call's bridge, a three-way call
    assert rig.media.bridges[target.bridge_id] == {caller.media_leg, agent.media_leg, sup.media_leg}
    sup.key("4")
    assert rig.media.monitors[sup.media_leg] == (legs, [])
    assert rig.media.bridges[target.bridge_id] == {caller.media_leg, agent.media_leg}
    sup.remote_hangup()  # the supervisor leaves; caller and agent go on talking
    assert sup_call.state is CallState.ENDED and target.state is CallState.UP
    assert rig.media.bridges[target.bridge_id] == {caller.media_leg, agent.media_leg}


def test_barge_dialled_directly_joins_the_bridge(rig: PbxRig) -> None:
    target, caller, agent = _agent_call(rig)
    sup_call, sup = rig.dial("3001", "*72501")
    assert rig.media.bridges[target.bridge_id] == {caller.media_leg, agent.media_leg, sup.media_leg}
    assert sup.bridge_id == target.bridge_id


def test_a_phone_not_in_the_supervisors_setting_is_refused(rig: PbxRig) -> None:
    target, caller, agent = _agent_call(rig)
    sup_call, sup = rig.dial("3002", "*70501")
    assert isinstance(sup_call.service, Prompter)  # it hears the refusal, then is released
    assert sup.media_leg not in rig.media.monitors
    assert rig.media.bridges[target.bridge_id] == {caller.media_leg, agent.media_leg}


def test_an_agent_not_on_a_call_or_unknown_is_not_supervised(rig: PbxRig) -> None:
    for code in ("*70502", "*70999"):  # 502 exists but is on no call; 999 is no agent
        sup_call, sup = rig.dial("3001", code)
        assert isinstance(sup_call.service, Prompter) and sup.media_leg not in rig.media.monitors


def test_the_supervisor_is_released_when_the_call_it_watches_ends(rig: PbxRig) -> None:
    target, caller, agent = _agent_call(rig)
    sup_call, sup = rig.dial("3001", "*71501")
    session = sup_call.service
    assert isinstance(session, SupervisionSession)
    caller.remote_hangup()
    assert target.state is CallState.ENDED  # the session hears CallEnded: no poll to wait for
    assert session.state.value == "closing" and session.mode is None
    assert sup.media_leg not in rig.media.monitors and sup.media_leg in rig.media.playing  # "The call has ended"


def test_the_control_api_rings_the_supervisor_and_needs_no_desk_phone_listing(rig: PbxRig) -> None:
    target, caller, agent = _agent_call(rig)
    with pytest.raises(PbxError) as bad_mode:
        rig.pbx.supervision.originate("501", "3002", "spy")
    with pytest.raises(PbxError) as no_agent:
        rig.pbx.supervision.originate("999", "3002", "listen")
    with pytest.raises(PbxError) as idle_agent:
        rig.pbx.supervision.originate("502", "3002", "listen")
    assert (bad_mode.value.status, no_agent.value.status, idle_agent.value.status) == (400, 404, 409)
    sup_call = rig.pbx.supervision.originate("501", "3002", "listen")  # 3002 is not in acd.supervisors
    phone = rig.phones.ringing("3002")
    phone.remote_answer()
    assert sup_call.a is phone and isinstance(sup_call.service, SupervisionSession)
    assert rig.media.monitors[phone.media_leg] == ([caller.media_leg, agent.media_leg], [])


def test_a_survey_queue_keeps_the_caller_for_the_survey_when_the_agent_hangs_up(rig: PbxRig) -> None:
    from appliance.pbx.events import SurveyDue
    from appliance.pbx.survey import SurveySession

    acd_store.put_queue(rig.store, QueueConfig(name="sales", number="6000", members=["501", "502"],
                                               join_empty=True, announce_seconds=0, survey=True))
    rig.pbx.reload()
    due: list[SurveyDue] = []
    rig.pbx.events.subscribe(SurveyDue, due.append)
    call, caller, agent = _agent_call(rig)
    agent.remote_hangup()
    assert due == [SurveyDue(call.id, "sales", "501")]
    assert call.state is CallState.IVR and not caller.is_down and call.agent_id is None
    assert isinstance(call.service, SurveySession) and call.bridge_id not in rig.media.bridges


def test_the_supervisor_is_released_at_once_when_the_agent_leaves_during_a_blind_transfer(rig: PbxRig) -> None:
    target, caller, agent = _agent_call(rig)
    sup_call, sup = rig.dial("3001", "*70501")
    session = sup_call.service
    assert isinstance(session, SupervisionSession)
    agent.refer("3002")  # the agent blind-transfers the caller...
    assert session.state.value == "supervising"  # ...and is still on the call while 3002 rings
    agent.remote_hangup()  # the transferor leaves (PartiesChanged): no time passes
    assert target.state is CallState.UP and session.state.value == "closing"
    assert sup.media_leg not in rig.media.monitors and sup.media_leg in rig.media.playing


def test_the_supervisor_is_released_when_the_transfer_target_takes_the_agents_place(rig: PbxRig) -> None:
    target, caller, agent = _agent_call(rig)
    sup_call, sup = rig.dial("3001", "*71501")
    session = sup_call.service
    assert isinstance(session, SupervisionSession)
    agent.refer("3002")
    new = rig.phones.ringing("3002")
    new.remote_ringing()
    new.remote_answer()  # the agent is released (AgentReleased "transfer"): another conversation
    assert target.state is CallState.UP and target.b is new and target.agent_id is None
    assert session.state.value == "closing" and sup.media_leg not in rig.media.monitors
