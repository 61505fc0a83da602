"""One logical ACD across nodes: two real distributors ("one" and "two"), each with its own store
connection to one database (both backends) and its own fakes of the PBX port, share agents and
queue order through the site's rows (appliance/store/acd_site.py).

What a node rings is what its own fake PBX shows (`pbx.phones`), so a test sees which node
offered an agent a call, and that no agent's phone ever rings for two calls at once.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.acd.agent import AgentState
from appliance.ivr.tts import PromptCache
from appliance.pbx.bus import EventBus
from appliance.pbx.channel import DtmfReceived
from appliance.pbx.distributor import CallDistributor
from appliance.store import acd as acd_store
from appliance.store import acd_site, queue_log
from appliance.store.db import Store
from appliance.store.models import AgentConfig, Extension, QueueConfig
from tests.pbx_ports import Caller, Line, Paths, QueuePbx, VirtualTime

AGENTS = {"2001": "1001", "2002": "1002"}


@dataclass
class Node:
    name: str
    pbx: QueuePbx
    dist: CallDistributor[Caller]
    store: Store

    def join(self, caller: Caller, queue: str = "sales") -> None:
        self.pbx.calls[caller.id] = caller
        assert self.dist.enqueue(caller, queue) is None

    def ringing(self) -> list[Line]:
        return [c for chans in self.pbx.phones.values() for c in chans if not c.is_down and not c.is_up]

    def state(self, agent_id: str) -> AgentState:
        return self.dist.roster.agents[agent_id].state


@pytest.fixture
def site(store_target: str | Path, prompts: PromptCache) -> Iterator[tuple[VirtualTime, Node, Node]]:
    time = VirtualTime()
    with Store(store_target) as setup:
        for agent_id, phone in AGENTS.items():
            setup.put_extension(Extension(number=phone, name=f"Desk {phone}", secret=f"secret-{phone}"))
            acd_store.put_agent(setup, AgentConfig(agent_id, f"Agent {agent_id}", "1234", ring_timeout=15))
        acd_store.put_queue(setup, QueueConfig(name="sales", strategy="linear", members=list(AGENTS),
                                               wrapup_seconds=0, announce_seconds=0, max_wait_seconds=0,
                                               join_empty=True, leave_empty=False))
    nodes = []
    for name in ("one", "two"):
        store = Store(store_target)
        pbx = QueuePbx(store, time, prompts)
        pbx.settings = Paths(node=name)
        for phone in AGENTS.values():
            pbx.dialplan.extensions[phone] = Extension(number=phone, name=f"Desk {phone}", secret="x")
        dist = CallDistributor(pbx, time.clock, EventBus())
        dist.start()
        nodes.append(Node(name, pbx, dist, store))
    try:
        yield time, nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.dist.stop()
            node.store.close()


def test_an_agent_logged_in_on_one_node_takes_a_caller_of_the_other(site: tuple[VirtualTime, Node, Node]) -> None:
    time, one, two = site
    two.dist.roster.login("2001", "1234", "1001")  # *61 on engine two
    bob = Caller("call-1", "0611111111")
    one.join(bob)  # the caller is on engine one: it rings the agent's phone itself
    (phone,) = one.ringing()
    assert phone.callee == "1001" and one.state("2001") is AgentState.RINGING
    assert acd_site.agents(one.store)["2001"].held_by == "one"
    time.advance(2.0)
    phone.remote_answer()
    assert bob.agent == (phone, "2001")
    time.advance(1.0)
    assert two.state("2001") is AgentState.ON_CALL  # engine two sees the agent on engine one's call
    assert two.dist.agent_status()[0]["state"] == "on-call"
    # A caller on engine two waits: the agent is held by one, and two does not end one's call.
    ann = Caller("call-2", "0622222222")
    two.join(ann)
    time.advance(10.0)
    assert two.ringing() == [] and two.state("2001") is AgentState.ON_CALL
    assert [q["waiting"] for q in one.dist.queue_status()] == [1]  # the wallboard shows the site
    one.dist.agent_call_ended(bob, "2001", "caller hung up")
    assert acd_site.agents(one.store)["2001"].held_by is None
    time.advance(1.0)  # engine two's next tick sees the agent free
    (phone2,) = two.ringing()
    assert phone2.caller.number == "0622222222"
    events = [(e.event, e.agent) for e in queue_log.events(one.store, 0.0, time.now + 1) if e.queue == "sales"]
    assert events == [("ENTER", ""), ("OFFER", "2001"), ("CONNECT", "2001"), ("ENTER", ""),
                      ("COMPLETE", "2001"), ("OFFER", "2001")]


def test_two_nodes_with_callers_never_ring_one_agent_twice(site: tuple[VirtualTime, Node, Node]) -> None:
    time, one, two = site
    one.join(Caller("call-1", "0611111111"))
    two.join(Caller("call-2", "0622222222"))
    one.join(Caller("call-3", "0633333333"))
    one.dist.roster.login("2001", "1234", "1001")  # both nodes see the agent free on their next look
    for _ in range(5):
        one.dist.dispatch()
        two.dist.dispatch()
        time.advance(1.0)
    ringing = one.ringing() + two.ringing()
    assert [c.callee for c in ringing] == ["1001"]
    # The agent does not answer: ring timeout, the next offer, still one at a time.
    for _ in range(20):
        time.advance(1.0)
        assert len(one.ringing() + two.ringing()) <= 1


def test_a_priority_caller_on_one_node_goes_before_an_earlier_caller_on_the_other(
        site: tuple[VirtualTime, Node, Node]) -> None:
    time, one, two = site
    one.join(Caller("call-1", "0611111111"))  # first, normal priority, on engine one
    time.advance(5.0)
    two.join(Caller("call-2", "0699999999", priority=5))  # later, higher priority, on engine two
    assert [c["node"] for c in one.dist.queue_status()[0]["callers"]] == ["two", "one"]
    one.dist.roster.login("2001", "1234", "1001")  # the agent is free: engine one looks first
    assert one.ringing() == []  # its caller waits behind engine two's
    time.advance(1.0)
    (phone,) = two.ringing()
    assert phone.caller.number == "0699999999"
    two.dist.roster.login("2002", "1234", "1002")  # a second agent: engine one's caller goes now,
    time.advance(1.0)  # as engine two's is already being offered
    (phone2,) = one.ringing()
    assert (phone2.callee, phone2.caller.number) == ("1002", "0611111111")


def test_the_agents_of_a_node_that_stopped_are_freed_and_its_callers_forgotten(
        site: tuple[VirtualTime, Node, Node]) -> None:
    time, one, two = site
    two.dist.roster.login("2001", "1234", "1001")
    two.join(Caller("call-1", "0611111111"))
    (phone,) = two.ringing()
    phone.remote_answer()
    two.dist.stop()  # engine two is frozen: it no longer touches its holds
    one.join(Caller("call-2", "0622222222"))
    time.advance(20.0)
    assert one.state("2001") is AgentState.ON_CALL and one.ringing() == []
    time.advance(20.0)  # past the hold's bound: engine one frees the agent, and offers its caller
    (phone2,) = one.ringing()
    assert phone2.caller.number == "0622222222"
    freed, dropped = acd_site.forget_node(one.store, "two", time.now)  # what the failover watch calls
    assert (freed, dropped) == ([], 0)  # already freed; two's caller was answered, not waiting


def test_a_callback_kept_by_a_node_that_died_is_placed_by_a_survivor(site: tuple[VirtualTime, Node, Node]) -> None:
    time, one, two = site
    for node in (one, two):
        node.dist.queues["sales"].config.callback_key = "5"
    bob = Caller("call-1", "0611111111")
    two.join(bob)
    two.dist.caller_event(bob, DtmfReceived(bob.a, "5", "rfc4733"))
    two.dist.caller_left(bob)  # hangs up after the confirmation: engine two keeps the place
    time.advance(6.0)
    assert one.dist.entries == {}  # engine one does not take engine two's callback
    assert [c["callback"] for c in one.dist.queue_status()[0]["callers"]] == [True]
    two.dist.stop()
    acd_site.forget_node(one.store, "two", time.now)  # the failover watch: engine two died
    one.dist.roster.login("2001", "1234", "1001")
    time.advance(6.0)  # engine one's next reconcile adopts the callback and offers it
    (phone,) = one.ringing()
    assert phone.caller.name == "[Callback] Caller 0611111111"
    phone.remote_answer()
    assert [(number, agent) for _leg, number, agent in one.pbx.callbacks] == [("0611111111", "2001")]
    assert two.pbx.callbacks == [] and two.ringing() == []
