"""What the control API tells the wallboard of the floor (issue 15 item 3), on a real Switchboard
(tests/pbx_rig.py: fakes of the media, clock and phones only).

Each finding has its test: time in state for an agent who never logged in, calls today after a
restart, an agent busy for another queue, an agent on an unregistered phone, the waiting
callers with their contact name, each agent's queue, colours by time in state, and who monitors
whom."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.acd.agent import Agent, AgentState
from appliance.pbx.acd_board import BUSY_ELSEWHERE, Thresholds, agent_board, time_in_state
from appliance.pbx.call import CallState
from appliance.schema.settings import SUPERVISORS_SETTING
from appliance.store import acd as acd_store
from appliance.store import contacts as contacts_store
from appliance.store import queue_log
from appliance.store.db import Store
from appliance.store.models import AgentConfig, QueueConfig
from tests.pbx_rig import PbxRig


@pytest.fixture
def rig(store: Store, tmp_path: Path) -> PbxRig:
    r = PbxRig(store, tmp_path)
    for number in ("1001", "1002", "2001", "2002", "3001"):
        r.extension(number)
    r.extension("2009", registered=False)
    for agent_id, name in (("501", "Alice"), ("502", "Bob"), ("503", "Chloé"), ("509", "Never")):
        acd_store.put_agent(store, AgentConfig(agent_id, name, "1234"))
    acd_store.put_queue(store, QueueConfig(name="sales", number="6000", members=["501", "502"],
                                           join_empty=True, announce_seconds=0, wrapup_seconds=5))
    acd_store.put_queue(store, QueueConfig(name="support", number="6001", members=["501", "502", "503"],
                                           leave_empty=False, join_empty=True, announce_seconds=0))
    store.set_setting(SUPERVISORS_SETTING, "3001")
    r.pbx.reload()
    r.pbx.distributor.start()
    return r


def _agents(rig: PbxRig) -> dict[str, dict[str, Any]]:
    return {str(a["agent"]): a for a in rig.pbx.distributor.agent_status()}


def _queues(rig: PbxRig) -> dict[str, dict[str, Any]]:
    return {str(q["name"]): q for q in rig.pbx.distributor.queue_status()}


def test_an_agent_who_never_logged_in_has_no_time_in_state(rig: PbxRig) -> None:
    never = _agents(rig)["509"]
    assert never["state"] == "logged-out" and never["since"] is None  # not 499058:12:42 (since 1970)
    rig.pbx.distributor.roster.login("501", None, "2001")
    rig.clock.advance(12.0)
    assert _agents(rig)["501"]["since"] == pytest.approx(12.0, abs=0.2)


def test_time_in_state_is_none_only_without_a_state_change() -> None:
    agent = Agent("1", "A", "0")
    assert time_in_state(agent, 1_000_000.0) is None
    agent.state, agent.state_since = AgentState.AVAILABLE, 999_990.0
    assert time_in_state(agent, 1_000_000.0) == 10.0


def test_calls_today_survive_an_engine_restart(rig: PbxRig, store: Store, tmp_path: Path) -> None:
    rig.pbx.distributor.roster.login("501", None, "2001")
    call, caller = rig.dial("1001", "6000")
    agent = rig.phones.ringing("2001")
    agent.remote_ringing()
    agent.remote_answer()
    assert call.state is CallState.UP
    caller.remote_hangup()
    assert _agents(rig)["501"]["calls_today"] == 1
    again = PbxRig(store, tmp_path)  # a new engine process on the same database
    again.clock.now = rig.clock.now
    again.pbx.reload()
    again.pbx.distributor.start()
    assert _agents(again)["501"]["calls_today"] == 1  # the queue log counted it; memory was 0


def test_an_agent_on_another_queues_call_is_busy_elsewhere(rig: PbxRig) -> None:
    rig.pbx.distributor.roster.login("501", None, "2001")
    call, _caller = rig.dial("1001", "6000")  # sales
    agent = rig.phones.ringing("2001")
    agent.remote_ringing()
    agent.remote_answer()
    assert call.state is CallState.UP
    queues = _queues(rig)
    assert queues["sales"]["agents"]["on-call"] == 1 and queues["sales"]["agents"][BUSY_ELSEWHERE] == 0
    assert queues["support"]["agents"]["on-call"] == 0 and queues["support"]["agents"][BUSY_ELSEWHERE] == 1
    assert _agents(rig)["501"]["queue"] == "sales"


def test_an_agent_on_an_unregistered_phone_is_not_reachable(rig: PbxRig) -> None:
    rig.pbx.distributor.roster.login("503", None, "2009")  # 2009 has no registered phone
    rig.pbx.distributor.roster.login("502", None, "2002")
    agents = _agents(rig)
    assert agents["503"]["state"] == "available" and agents["503"]["reachable"] is False
    assert agents["502"]["reachable"] is True
    assert agents["509"]["reachable"] is None  # logged out: no phone to reach


def test_waiting_callers_have_position_priority_wait_and_contact_name(rig: PbxRig, store: Store) -> None:
    contacts_store.add_contact(store, "1002", rig.clock.now)
    with store.transaction():  # a name typed in the CRM (no store function sets one yet)
        store.execute("UPDATE contacts SET name = ? WHERE number = ?", ("Zoé Martin", "1002"))
    rig.dial("1001", "6001")
    rig.clock.advance(3.0)
    rig.dial("1002", "6001")
    rig.clock.advance(2.0)
    (first, second) = _queues(rig)["support"]["callers"]
    assert (first["caller"], first["position"], first["priority"]) == ("1001", 1, 0)
    assert first["wait"] == pytest.approx(5.0, abs=0.2) and second["wait"] == pytest.approx(2.0, abs=0.2)
    assert second["position"] == 2
    assert second["name"] == "Zoé Martin" and first["name"] == ""


def test_time_in_state_is_coloured_against_the_queues_thresholds(rig: PbxRig) -> None:
    rig.pbx.distributor.roster.login("501", None, "2001")
    call, caller = rig.dial("1001", "6000")  # sales: wrap-up 5 s
    agent = rig.phones.ringing("2001")
    agent.remote_ringing()
    agent.remote_answer()
    assert _agents(rig)["501"]["level"] == "ok"
    t = Thresholds.of_queue(5, 20)
    assert (t.level("wrap-up", 4), t.level("wrap-up", 5), t.level("wrap-up", 10)) == ("ok", "warn", "alarm")
    assert (t.level("on-call", 299), t.level("on-call", 300), t.level("on-call", 600)) == ("ok", "warn", "alarm")
    assert t.level("available", 10_000) == "ok" and t.level("paused", None) == "ok"
    rig.clock.advance(310.0)
    assert _agents(rig)["501"]["level"] == "warn"  # 5 minutes on one call


def test_agent_board_levels_use_the_queue_of_the_call() -> None:
    agent = Agent("1", "A", "0", state=AgentState.WRAP_UP, state_since=100.0, device="2001")
    strict, lax = Thresholds.of_queue(5, 20), Thresholds.of_queue(60, 20)
    (row,) = agent_board([agent], {}, {}, 110.0, thresholds={"strict": strict, "lax": lax}, queue_of={"1": "strict"})
    assert row["level"] == "alarm" and row["queue"] == "strict"
    (row,) = agent_board([agent], {}, {}, 110.0, thresholds={"strict": strict, "lax": lax}, queue_of={"1": "lax"})
    assert row["level"] == "ok"


def test_who_monitors_whom_and_in_which_mode(rig: PbxRig) -> None:
    rig.pbx.distributor.roster.login("501", None, "2001")
    call, _caller = rig.dial("1001", "6000")
    agent = rig.phones.ringing("2001")
    agent.remote_ringing()
    agent.remote_answer()
    assert rig.pbx.supervision.sessions() == []
    sup_call, sup = rig.dial("3001", "*70501")
    assert rig.pbx.supervision.sessions() == [{"agent": "501", "call": call.id, "mode": "listen",
                                               "supervisor": "3001", "supervisor_call": sup_call.id}]
    sup.key("5")
    assert [s["mode"] for s in rig.pbx.supervision.sessions()] == ["whisper"]
    sup.key("6")
    assert [s["mode"] for s in rig.pbx.supervision.sessions()] == ["barge"]
    sup.remote_hangup()
    assert rig.pbx.supervision.sessions() == []


def test_calls_today_start_again_at_midnight_and_count_the_sites_answers(rig: PbxRig, store: Store) -> None:
    roster = rig.pbx.distributor.roster
    roster.login("501", None, "2001")
    call, caller = rig.dial("1001", "6000")
    agent = rig.phones.ringing("2001")
    agent.remote_ringing()
    agent.remote_answer()
    caller.remote_hangup()
    assert _agents(rig)["501"]["calls_today"] == 1
    queue_log.record(store, queue_log.QueueEvent(at=rig.clock.now, event="CONNECT", call_id="other-node-1",
                                                 queue="sales", agent="501", caller="1002"))
    roster.count_calls_today(rig.clock.now)  # another node's answer, read from the shared log
    assert _agents(rig)["501"]["calls_today"] == 2
    roster.count_calls_today(rig.clock.now + 86_400)  # the next day: nothing answered yet
    assert _agents(rig)["501"]["calls_today"] == 0


class _CampaignCall:
    """A campaign's call as the distributor sees it (the `QueueCall` port): the dialer names the
    campaign in the call's variables (dialer_call.py)."""

    id = "c7"
    interaction_id = None
    variables = {"campaign": "spring-offers", "priority": "10"}

    class a:  # noqa: N801 - the port's attribute name
        class caller:  # noqa: N801
            number = "+33699"


def test_an_agent_on_a_campaign_call_shows_the_campaign() -> None:
    agent = Agent("1", "A", "0", state=AgentState.ON_CALL, state_since=100.0, device="2001")
    (row,) = agent_board([agent], {"1": _CampaignCall()}, {}, 130.0, queue_of={"1": "outbound"})  # type: ignore[dict-item]
    assert (row["campaign"], row["queue"], row["caller"], row["since"]) == ("spring-offers", "outbound", "+33699", 30.0)


def test_the_supervisors_extension_is_kept_with_the_user(store: Store) -> None:
    from appliance.store import accounts

    accounts.insert_user(store, "sup", "hash", "supervisor", None, False, 0.0)
    assert accounts.supervisor_extension(store, "sup") is None
    accounts.set_supervisor_extension(store, "sup", "1090")
    assert accounts.supervisor_extension(store, "sup") == "1090"
    assert accounts.supervisor_extension(store, "nobody") is None
