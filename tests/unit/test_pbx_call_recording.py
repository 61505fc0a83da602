"""The recording policy as a service on the bus (pbx/call_recording.py): a queue that records, an
extension's on-demand *1/*2/*3, the survey and the end of the call, on a real Switchboard and
store with fakes of its ports only (tests/pbx_rig.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.pbx.call import Call, CallState
from appliance.pbx.recording import recordings_for_call
from appliance.store import acd as acd_store
from appliance.store.db import Store
from appliance.store.models import AgentConfig, QueueConfig
from tests.pbx_ports import Line
from tests.pbx_rig import PbxRig


@pytest.fixture
def rig(store: Store, tmp_path: Path) -> PbxRig:
    r = PbxRig(store, tmp_path)
    r.extension("1001", recording="on-demand")
    r.extension("1002")
    r.extension("2001")
    acd_store.put_agent(store, AgentConfig("501", "Alice", "1234"))
    acd_store.put_queue(store, QueueConfig(name="sales", number="6000", members=["501"], join_empty=True,
                                           announce_seconds=0, recording="stereo", survey=True))
    r.pbx.reload()
    r.pbx.distributor.roster.login("501", None, "2001")
    return r


def _requests(rig: PbxRig, kind: str) -> list[tuple[object, ...]]:
    return [r for r in rig.media.requests if r[0] == kind]


def _queue_call(rig: PbxRig) -> tuple[Call, Line, Line]:
    call, caller = rig.dial("1002", "6000")
    agent = rig.phones.ringing("2001")
    agent.remote_ringing()
    agent.remote_answer()
    assert call.state is CallState.UP and call.agent_leg is agent
    return call, caller, agent


def test_a_recording_queue_records_caller_and_agent_until_the_call_ends(rig: PbxRig) -> None:
    call, caller, agent = _queue_call(rig)
    [(_, path, legs, stereo)] = _requests(rig, "record_parties")
    assert legs == (caller.media_leg, agent.media_leg) and stereo is True
    rec = rig.pbx.recordings.of(call.id)
    assert rec is not None and rig.pbx.recordings.active() == [rec]
    [row] = recordings_for_call(rig.store, caller.dialog_key())
    assert (row["mode"], row["reason"], row["queue"], row["agent"], row["ended_at"]) == (
        "stereo", "queue", "sales", "501", None)
    caller.remote_hangup()
    assert _requests(rig, "stop_record") == [("stop_record", rec.rec_id)]
    assert rig.pbx.recordings.active() == []
    [row] = recordings_for_call(rig.store, caller.dialog_key())
    assert row["ended_at"] is not None and str(path).endswith("-queue.wav")


def test_the_survey_is_not_recorded(rig: PbxRig) -> None:
    call, caller, agent = _queue_call(rig)
    rec = rig.pbx.recordings.of(call.id)
    assert rec is not None
    agent.remote_hangup()  # the caller stays for the survey (SurveyDue): the recording stops first
    assert call.state is CallState.IVR and not caller.is_down
    assert _requests(rig, "stop_record") == [("stop_record", rec.rec_id)]
    assert rig.pbx.recordings.of(call.id) is None


def test_star_1_starts_and_stops_an_on_demand_recording_and_star_2_3_pause_it(rig: PbxRig) -> None:
    call, a, b = rig.connected("1001", "1002")
    assert _requests(rig, "record_parties") == []  # on-demand: nothing until *1
    for digit in "*1":
        a.key(digit)
    rec = rig.pbx.recordings.of(call.id)
    assert rec is not None and rec.legs == [a.media_leg, b.media_leg]
    for digit in "*2":
        a.key(digit)
    assert rec.paused and _requests(rig, "pause_record") == [("pause_record", rec.rec_id)]
    for digit in "*3":
        a.key(digit)
    assert not rec.paused and _requests(rig, "resume_record") == [("resume_record", rec.rec_id)]
    for digit in "*1":
        a.key(digit)
    assert rig.pbx.recordings.of(call.id) is None and _requests(rig, "stop_record") == [("stop_record", rec.rec_id)]
    for digit in "*1":  # 1002 records nothing: its *1 starts nothing
        b.key(digit)
    assert rig.pbx.recordings.of(call.id) is None
