"""The distributor at run time: offers, ring timeouts and re-offers, connection, release, priorities
and skills, and the preview offer, through its one offer path.

The `CallDistributor` is the real one, on a real SQLite store and the real roster; what it is
given are fakes of its ports (tests/pbx_ports.py): the PBX (`DistributorPbx`: agents' phones are
`Line`s the test answers or lets ring), a caller (`QueueCall`), media and virtual time.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from appliance.acd.agent import AgentState
from appliance.ivr.tts import PromptCache
from appliance.pbx.bus import EventBus
from appliance.pbx.channel import ANSWERED_ELSEWHERE, CANCELLED, Cause, DtmfReceived, Party
from appliance.pbx.distributor import CallDistributor
from appliance.pbx.events import AgentConnected, AgentReleased, QueueJoined, QueueLeft
from appliance.store import acd as acd_store
from appliance.store import queue_log
from appliance.store.db import Store
from appliance.store.models import AgentConfig, Extension, QueueConfig
from tests.pbx_ports import Caller, Line, QueuePbx, VirtualTime


@dataclass
class World:
    time: VirtualTime
    pbx: QueuePbx
    dist: CallDistributor[Caller]
    events: list[object]
    store: Store

    def join(self, caller: Caller, queue: str = "sales") -> None:
        self.pbx.calls[caller.id] = caller
        assert self.dist.enqueue(caller, queue) is None

    def log(self) -> list[tuple[str, str, str]]:
        """(event, agent, data) of the queue log rows of the test so far, in order."""
        return [(e.event, e.agent, e.data) for e in queue_log.events(self.store, 0.0, self.time.now + 1.0)
                if not e.event.startswith("AGENT_")]

    def state(self, agent_id: str) -> AgentState:
        return self.dist.roster.agents[agent_id].state


AGENTS = {"2001": ("1001", ["fr:5"]), "2002": ("1002", ["en:4"]), "2003": ("1003", ["fr:2", "en:2"])}


@pytest.fixture
def world(store: Store, prompts: PromptCache) -> Iterator[World]:
    time = VirtualTime()
    pbx = QueuePbx(store, time, prompts)
    for agent_id, (phone, skills) in AGENTS.items():
        store.put_extension(Extension(number=phone, name=f"Desk {phone}", secret=f"secret-{phone}"))
        pbx.dialplan.extensions[phone] = Extension(number=phone, name=f"Desk {phone}", secret="x")
        acd_store.put_agent(store, AgentConfig(agent_id, f"Agent {agent_id}", "1234", skills=skills,
                                               max_no_answer=2, ring_timeout=15))
    for name, members, skills, wrapup in (("sales", ["2001", "2002"], [], 10),
                                          ("french", ["2002", "2003", "2001"], ["fr:2"], 0)):
        acd_store.put_queue(store, QueueConfig(name=name, strategy="linear", members=members, skills=skills,
                                               wrapup_seconds=wrapup, announce_seconds=0, max_wait_seconds=0,
                                               join_empty=True, leave_empty=False))
    bus = EventBus()
    events: list[object] = []
    for kind in (QueueJoined, QueueLeft, AgentConnected, AgentReleased):
        bus.subscribe(kind, events.append)
    dist = CallDistributor(pbx, time.clock, bus)
    dist.start()
    yield World(time, pbx, dist, events, store)
    dist.stop()


def login(w: World, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        w.dist.roster.login(agent_id, None, AGENTS[agent_id][0])


def test_a_caller_is_offered_to_the_first_agent_and_connected_when_the_phone_answers(world: World) -> None:
    login(world, "2001", "2002")
    bob = Caller("call-1", "0611111111")
    world.join(bob)
    assert world.pbx.media.played(bob.a.media_leg) == ["default-moh"]  # music while waiting
    phone = world.pbx.ringing("1001")  # linear: the first member
    assert phone.caller == Party("0611111111", "[sales] Caller 0611111111")
    assert phone.owner is bob
    assert world.state("2001") is AgentState.RINGING and "2001" in world.dist.offers
    assert world.pbx.phones.get("1002") is None  # one offer at a time for one caller
    world.time.advance(3.0)
    phone.remote_answer()
    assert bob.agent == (phone, "2001") and bob.queue_config is not None and bob.queue_config.name == "sales"
    assert world.state("2001") is AgentState.ON_CALL and world.dist.agent_calls == {"2001": bob}
    assert world.dist.offers == {} and world.dist.entries == {} and bob.queue_entry is None
    assert world.log() == [("ENTER", "", ""), ("OFFER", "2001", ""), ("CONNECT", "2001", "")]
    connect = queue_log.events(world.store, 0.0, world.time.now + 1)[-1]
    assert connect.wait_s == pytest.approx(3.0) and connect.position == 1
    assert world.events == [QueueJoined("call-1", "sales", "0611111111"), QueueLeft("call-1", "sales", "CONNECT"),
                            AgentConnected("call-1", "sales", "2001", phone.id)]


def test_an_offer_left_ringing_times_out_and_the_caller_is_offered_again(world: World) -> None:
    login(world, "2001", "2002")
    bob = Caller("call-1", "0611111111")
    world.join(bob)
    first = world.pbx.ringing("1001")
    world.time.advance(14.9)
    assert world.state("2001") is AgentState.RINGING
    world.time.advance(0.2)  # the agent's 15 s ring timeout
    assert first.is_down and first.ended_with == CANCELLED
    agent = world.dist.roster.agents["2001"]
    assert agent.consecutive_no_answer == 1
    # The caller keeps its place and linear offers the first agent again, who rejects it this
    # time: a second offer in a row not answered pauses them (max_no_answer 2), so the next one rings.
    world.pbx.ringing("1001").remote_hangup(Cause(486, "Busy Here"))
    assert agent.state is AgentState.PAUSED and agent.pause_reason == "no-answer"
    assert world.state("2002") is AgentState.RINGING and world.pbx.ringing("1002").owner is bob
    assert world.log() == [("ENTER", "", ""), ("OFFER", "2001", ""), ("RINGNOANSWER", "2001", "480 No Answer"),
                           ("OFFER", "2001", ""), ("RINGNOANSWER", "2001", "486 Busy Here"),
                           ("OFFER", "2002", "")]
    assert bob.queue_entry is not None and world.events == [QueueJoined("call-1", "sales", "0611111111")]


def test_the_agent_released_wraps_up_then_takes_the_next_caller(world: World) -> None:
    login(world, "2001")
    bob, ann = Caller("call-1", "0611111111"), Caller("call-2", "0622222222")
    world.join(bob)
    world.pbx.ringing("1001").remote_answer()
    world.join(ann)  # nobody free for Ann
    world.time.advance(30.0)
    world.pbx.ringing("1001").remote_hangup()  # the conversation's leg ends
    bob.agent_answered_at = world.time.now - 30.0
    world.dist.agent_call_ended(bob, "2001", "caller hung up")
    assert world.state("2001") is AgentState.WRAP_UP and world.dist.agent_calls == {}
    complete = [e for e in queue_log.events(world.store, 0.0, world.time.now + 1) if e.event == "COMPLETE"]
    assert [(c.agent, c.talk_s, c.wrap_s, c.data) for c in complete] == [("2001", 30.0, 10.0, "caller hung up")]
    assert AgentReleased("call-1", "sales", "2001", "caller hung up") in world.events
    world.time.advance(9.5)
    assert world.state("2001") is AgentState.WRAP_UP and len(world.pbx.phones["1001"]) == 1
    world.time.advance(1.0)  # the 10 s wrap-up is over: Ann's turn
    assert world.pbx.ringing("1001").caller.number == "0622222222"


def test_a_caller_who_hangs_up_while_offered_abandons_and_the_phone_stops(world: World) -> None:
    login(world, "2001")
    bob = Caller("call-1", "0611111111")
    world.join(bob)
    phone = world.pbx.ringing("1001")
    world.time.advance(4.0)
    world.dist.caller_left(bob)
    assert phone.is_down and phone.ended_with == CANCELLED
    agent = world.dist.roster.agents["2001"]
    assert agent.state is AgentState.AVAILABLE and agent.consecutive_no_answer == 0  # not the agent's fault
    abandon = queue_log.events(world.store, 0.0, world.time.now + 1)[-1]
    assert (abandon.event, abandon.position, abandon.wait_s) == ("ABANDON", 1, 4.0)
    assert world.events[-1] == QueueLeft("call-1", "sales", "ABANDON")


def test_a_higher_priority_caller_goes_first(world: World) -> None:
    bob, vip = Caller("call-1", "0611111111"), Caller("call-2", "0699999999", priority=5)
    world.join(bob)
    world.time.advance(1.0)
    world.join(vip)  # later, but a higher priority
    login(world, "2001")
    assert world.pbx.ringing("1001").caller.number == "0699999999"
    assert [s["caller"] for s in world.dist.queue_status()[1]["callers"]] == ["0699999999", "0611111111"]


def test_only_agents_with_the_skills_the_queue_requires_are_offered(world: World) -> None:
    login(world, "2001", "2002", "2003")
    world.join(Caller("call-1", "0611111111"), "french")
    # linear in member order 2002, 2003, 2001: 2002 has no French (fr:2 required), so 2003 rings.
    assert world.pbx.phones.get("1002") is None
    world.pbx.ringing("1003").remote_answer()
    world.join(Caller("call-2", "0622222222"), "french")
    assert world.pbx.phones.get("1002") is None and world.pbx.ringing("1001").caller.number == "0622222222"


def test_ring_all_first_answer_wins_and_the_other_phone_is_released(world: World) -> None:
    from appliance.acd.strategies import make_strategy

    login(world, "2001", "2002")
    world.dist.queues["sales"].calls.strategy = make_strategy("ring-all")
    bob = Caller("call-1", "0611111111")
    world.join(bob)
    one, two = world.pbx.ringing("1001"), world.pbx.ringing("1002")
    two.remote_answer()
    assert one.is_down and one.ended_with == ANSWERED_ELSEWHERE
    assert world.state("2001") is AgentState.AVAILABLE and world.state("2002") is AgentState.ON_CALL
    assert bob.agent == (two, "2002")


def test_the_preview_offer_rings_the_agent_and_starts_the_call_they_answer(world: World) -> None:
    login(world, "2001", "2002")
    agent = world.dist.roster.agents["2001"]
    started: list[Caller] = []
    lead = Caller("call-9", "3001")
    phones = world.dist.ringing.channels(agent, Party("+33612345678", "[spring]"))
    owner = object()
    world.dist.offer_preview(agent, "preview-2001-7", "sales", phones, owner, lambda chan: lead, started.append)
    phone = world.pbx.ringing("1001")
    assert phone.owner is owner and agent.state is AgentState.RINGING and agent.call_id == "preview-2001-7"
    world.join(Caller("call-1", "0611111111"))  # a queue caller meanwhile: not offered to the ringing agent
    queue_phone = world.pbx.ringing("1002")
    phone.remote_answer()
    assert agent.state is AgentState.ON_CALL and started == [lead] and world.dist.agent_calls["2001"] is lead
    assert world.events[-1] == AgentConnected("call-9", "sales", "2001", phone.id)
    assert "2001" not in world.dist.offers and not queue_phone.is_down
    assert ("OFFER", "2001", "") not in world.log()  # a preview is not a queue offer


def test_a_preview_offer_not_answered_or_withdrawn(world: World) -> None:
    login(world, "2001")
    agent = world.dist.roster.agents["2001"]

    def preview(build: Any) -> Line:
        chans = world.dist.ringing.channels(agent, Party("+33612345678", "[spring]"))
        world.dist.offer_preview(agent, "preview-2001-7", "sales", chans, None, build, lambda call: None)
        return world.pbx.ringing("1001")

    preview(lambda chan: None)
    world.time.advance(15.1)  # rang out: counts against the agent
    assert agent.state is AgentState.AVAILABLE and agent.consecutive_no_answer == 1
    preview(lambda chan: None).remote_hangup(Cause(487, "Request Terminated"))  # withdrawn: not the agent's fault
    assert agent.state is AgentState.AVAILABLE and agent.consecutive_no_answer == 1
    phone = preview(lambda chan: None)  # answered, but the campaign is gone meanwhile
    phone.remote_answer()
    assert phone.is_down and agent.state is AgentState.AVAILABLE and world.dist.agent_calls == {}
    assert world.dist.offers == {}


def test_a_caller_waiting_too_long_leaves_for_the_overflow(world: World) -> None:
    cfg = world.dist.queues["sales"].config
    cfg.max_wait_seconds, cfg.overflow = 30, "1003"
    login(world, "2001")
    world.dist.roster.pause("2001", "lunch")  # logged in (the queue is staffed) but not taking calls
    bob = Caller("call-1", "0611111111")
    world.join(bob)
    world.time.advance(29.5)
    assert bob.overflowed_to is None
    world.time.advance(1.0)  # the next tick past 30 s
    assert bob.overflowed_to == "1003" and bob.queue_entry is None and world.dist.entries == {}
    assert world.log()[-1][0] == "EXITWITHTIMEOUT"
    assert world.events[-1] == QueueLeft("call-1", "sales", "EXITWITHTIMEOUT")


def test_a_callback_keeps_the_place_and_the_agent_answers_first(world: World) -> None:
    world.dist.queues["sales"].config.callback_key = "5"
    bob = Caller("call-1", "0611111111")
    world.join(bob)
    assert bob.interaction_id is not None  # each queued call opens an interaction
    world.dist.caller_event(bob, DtmfReceived(bob.a, "5", "rfc4733"))
    world.dist.caller_left(bob)  # hangs up after the confirmation: keeps the place
    assert len(world.dist.entries) == 1 and world.events[-1] == QueueLeft("call-1", "sales", "CALLBACK_REQUESTED")
    login(world, "2001")
    phone = world.pbx.ringing("1001")
    assert phone.caller.name == "[Callback] Caller 0611111111"
    phone.remote_answer()
    [(leg, number, agent_id)] = world.pbx.callbacks
    assert (leg, number, agent_id) == (phone, "0611111111", "2001")
    callback = world.dist.agent_calls["2001"]
    assert callback.interaction_id == bob.interaction_id  # the same matter as the call that asked
    assert [e for e, _a, _d in world.log()] == ["ENTER", "CALLBACK_REQUESTED", "OFFER", "CONNECT", "CALLBACK_PLACED"]
    assert world.events[-1] == AgentConnected(callback.id, "sales", "2001", phone.id)
