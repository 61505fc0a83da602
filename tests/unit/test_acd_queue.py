"""Call queue: ordering, positions, offer decisions with skills and strategies, expected wait."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.acd.agent import (
    Agent,
    AgentState,
    Answer,
    CallEnded,
    Login,
    NoAnswer,
    Offer,
    OfferCancelled,
    Pause,
    Unpause,
)
from appliance.acd.queue import CallQueue, UnknownEntry
from appliance.acd.skills import SkillRequirements, eligible
from appliance.acd.strategies import RingProgressively


def agent(agent_id: str, skills: dict[str, int] | None = None, now: float = 0.0) -> Agent:
    a = Agent(agent_id, agent_id.upper(), "0000", skills=skills or {})
    a.handle(Login(f"SIP/{agent_id}"), now)
    return a


def test_order_by_priority_then_arrival_and_positions() -> None:
    q = CallQueue("sales")
    e1 = q.join("+331", now=1.0)
    e2 = q.join("+332", now=2.0)
    vip = q.join("+33vip", now=3.0, priority=5)
    e3 = q.join("+333", now=3.0)
    assert [e.caller_id for e in q.entries()] == ["+33vip", "+331", "+332", "+333"]
    assert [q.position(e.entry_id) for e in (vip, e1, e2, e3)] == [1, 2, 3, 4]
    q.leave(e1.entry_id)
    assert q.position(e2.entry_id) == 2 and len(q) == 3
    with pytest.raises(UnknownEntry):
        q.position(e1.entry_id)
    with pytest.raises(ValueError, match="already waiting"):
        q.join("+334", now=4.0, entry_id=e2.entry_id)


def test_assignment_uses_escalated_requirements_per_entry() -> None:
    reqs = SkillRequirements.build([("french", 4)], [(30, [("french", 1)])])
    q = CallQueue("fr", "longest-idle", reqs)
    novice = agent("novice", {"french": 2})
    english = agent("english", {"english": 5})
    fresh = q.join("+33fresh", now=100.0)
    assert q.next_assignment([novice, english], now=110.0) == []  # nobody at french >= 4 yet
    [offer] = q.next_assignment([novice, english], now=130.0)  # waited 30 s: french >= 1
    assert offer.entry_id == fresh.entry_id and offer.agent_ids == ("novice",)
    assert offer.requirements == (("french", 1),)


def test_head_skipped_when_nobody_fits_later_caller_served() -> None:
    reqs = SkillRequirements.build([("french", 4)], [(60, [("french", 1)])])
    q = CallQueue("fr", "linear", reqs, member_order={"expert": 1, "novice": 2})
    expert, novice = agent("expert", {"french": 5}), agent("novice", {"french": 1})
    q.join("vip", now=50.0, priority=9)  # waited little: needs an expert
    old = q.join("old", now=0.0)  # waited 60 s: anyone with french
    offers = q.next_assignment([novice, expert], now=60.0)
    assert [(o.caller_id, o.agent_ids) for o in offers] == [("vip", ("expert",)), ("old", ("novice",))]
    assert q.entries()[1] is old and old.ringing == {"novice"}


def test_one_offer_per_agent_and_per_caller_until_outcome() -> None:
    q = CallQueue("q", "longest-idle")
    a, b = agent("a", now=1.0), agent("b", now=2.0)
    e1, e2, e3 = (q.join(c, now=10.0 + i) for i, c in enumerate(("c1", "c2", "c3")))
    offers = q.next_assignment([a, b], now=20.0)
    assert [(o.entry_id, o.agent_ids) for o in offers] == [(e1.entry_id, ("a",)), (e2.entry_id, ("b",))]
    # The engine has not applied Offer yet: the queue still never double-books.
    assert q.next_assignment([a, b], now=21.0) == []
    a.handle(Offer(e1.entry_id), 21.0)
    a.handle(NoAnswer(), 25.0)
    q.offer_ended(e1.entry_id, "a")
    [again] = q.next_assignment([a, b], now=26.0)
    assert again.entry_id == e1.entry_id and again.agent_ids == ("a",)  # head keeps its place
    entry, others = q.answered(e1.entry_id, "a", now=27.0)
    assert entry.caller_id == "c1" and others == set()
    assert [e.entry_id for e in q.entries()] == [e2.entry_id, e3.entry_id]
    assert q.next_assignment([a, b], now=28.0, exclude={"a"}) == []


def test_ring_all_offers_everyone_and_answer_cancels_the_rest() -> None:
    q = CallQueue("q", "ring-all")
    agents = [agent(x) for x in "abc"]
    agents[2].handle(Pause("lunch"), 1.0)
    e = q.join("c1", now=0.0)
    q.join("c2", now=1.0)
    [offer] = q.next_assignment(agents, now=2.0)
    assert offer.agent_ids == ("a", "b")
    _, others = q.answered(e.entry_id, "b", now=5.0)
    assert others == {"a"}


def test_ring_progressively_adds_agents_over_time() -> None:
    q = CallQueue("q", RingProgressively(step_seconds=10), member_order={"a": 1, "b": 2, "c": 3})
    agents = {x: agent(x) for x in "cba"}
    e = q.join("c1", now=0.0)
    [o] = q.next_assignment(agents.values(), now=0.0)
    assert o.agent_ids == ("a",)
    agents["a"].handle(Offer(e.entry_id), 0.0)
    assert q.next_assignment(agents.values(), now=5.0) == []
    [o] = q.next_assignment(agents.values(), now=10.0)
    assert o.agent_ids == ("b",)
    agents["b"].handle(Offer(e.entry_id), 10.0)
    [o] = q.next_assignment(agents.values(), now=25.0)
    assert o.agent_ids == ("c",)


def test_expected_wait_from_live_service_rate() -> None:
    q = CallQueue("q", service_window=600.0, created_at=0.0)
    assert q.expected_wait(1, staffed_agents=2, now=100.0) is None  # no answer yet: unknown
    # 2 agents answered 6 calls in the last 10 minutes: 0.3 calls/agent/minute.
    for i in range(6):
        q.join(f"c{i}", now=600.0 + i)
        q.answered(f"q-{i}", "a" if i % 2 else "b", now=700.0 + i)
    assert q.service_rate(1200.0) == pytest.approx(6 / (2 * 10))
    # 3 staffed agents serve 0.9 calls/minute: position 3 waits 3 / 0.9 minutes.
    assert q.expected_wait(3, staffed_agents=3, now=1200.0) == pytest.approx(200.0)
    # The window slides: those answers are forgotten 10 minutes later.
    assert q.service_rate(1400.0) is None
    # Early on, the window is only as long as the queue has existed.
    young = CallQueue("y", created_at=1000.0)
    young.join("c", now=1000.0)
    young.answered("y-0", "a", now=1030.0)
    assert young.service_rate(1060.0) == pytest.approx(1.0)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[Agent], SkillRequirements, list[tuple[float, int]]]:
    skills = ["fr", "en", "de"]
    agents = []
    for i in range(draw(st.integers(1, 12))):
        a = Agent(f"a{i}", "x", "0", skills=draw(st.dictionaries(st.sampled_from(skills), st.integers(1, 5))))
        state = draw(st.sampled_from(["out", "avail", "paused", "ringing", "oncall"]))
        if state != "out":
            a.handle(Login("d"), 0.0)
        if state == "paused":
            a.handle(Pause("x"), 0.0)
        if state in ("ringing", "oncall"):
            a.handle(Offer("other"), 0.0)
        if state == "oncall":
            a.handle(Answer(), 0.0)
        agents.append(a)
    base = {s: draw(st.integers(1, 5)) for s in draw(st.sets(st.sampled_from(skills), max_size=2))}
    step = {s: draw(st.integers(1, lv)) for s, lv in base.items() if draw(st.booleans())}
    reqs = SkillRequirements.build(base.items(), [(draw(st.floats(1, 100)), step.items())])
    callers = draw(st.lists(st.tuples(st.floats(0, 200), st.integers(0, 3)), min_size=1, max_size=15))
    return agents, reqs, callers


@settings(max_examples=200, deadline=None)
@given(scenario(), st.sampled_from(["longest-idle", "round-robin", "ring-all", "linear", "random", "fewest-calls"]))
def test_no_ineligible_or_unavailable_agent_is_offered_and_none_twice(sc, name: str) -> None:  # type: ignore[no-untyped-def]
    agents, reqs, callers = sc
    q = CallQueue("q", name, reqs)
    for entered, prio in callers:
        q.join("c", now=entered, priority=prio)
    now = 300.0
    entries = {e.entry_id: e for e in q.entries()}
    offers = q.next_assignment(agents, now)
    by_id = {a.agent_id: a for a in agents}
    offered = [agent_id for o in offers for agent_id in o.agent_ids]
    assert len(offered) == len(set(offered))
    for o in offers:
        need = reqs.requirements_at(now - entries[o.entry_id].entered_at)
        for agent_id in o.agent_ids:
            assert by_id[agent_id].state is AgentState.AVAILABLE
            assert eligible(by_id[agent_id].skills, need)
    # Work-conserving: an available agent eligible for some waiting caller is not left idle
    # while that caller waits without an offer (single-pick strategies take one each).
    for a in agents:
        if a.available and a.agent_id not in offered:
            for e in q.entries():
                if not e.ringing:
                    assert not eligible(a.skills, reqs.requirements_at(now - e.entered_at))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["longest-idle", "round-robin"]))
def test_simulated_queue_never_starves_an_eligible_agent(seed: int, name: str) -> None:
    """Agents come and go at random; every agent who keeps being available gets calls."""
    rng = random.Random(seed)
    agents = [agent(f"a{i}", {"fr": rng.randint(1, 5)}) for i in range(6)]
    q = CallQueue("q", name, SkillRequirements.build([("fr", 1)]))
    steady = agents[-1]
    waits_since_served = 0
    now = 0.0
    for step in range(200):
        now += 1.0
        q.join(f"c{step}", now=now)
        for a in agents[:-1]:  # the others flap in and out of pause
            if a.state is AgentState.AVAILABLE and rng.random() < 0.3:
                a.handle(Pause("x"), now)
            elif a.state is AgentState.PAUSED and rng.random() < 0.5:
                a.handle(Unpause(), now)
        offers = q.next_assignment(agents, now)
        for o in offers:
            for agent_id in o.agent_ids:
                a = next(x for x in agents if x.agent_id == agent_id)
                a.handle(Offer(o.entry_id), now)
                if rng.random() < 0.2:
                    a.handle(NoAnswer() if a.agent_id != steady.agent_id else OfferCancelled(), now)
                    q.offer_ended(o.entry_id, agent_id)
                    continue
                a.handle(Answer(), now)
                q.answered(o.entry_id, agent_id, now)
                a.handle(CallEnded(0), now + 0.5)
                if a is steady:
                    waits_since_served = 0
        if steady.state is AgentState.AVAILABLE:
            waits_since_served += 1
        assert waits_since_served <= 6 * 5, f"{name} starved the steady agent"
