"""Agent state machine: legal paths, illegal transitions, counters, auto-pause, reconcile."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.acd.agent import (
    TRANSITIONS,
    Agent,
    AgentEvent,
    AgentState,
    Answer,
    CallEnded,
    IllegalTransition,
    Login,
    Logout,
    NoAnswer,
    Offer,
    OfferCancelled,
    Pause,
    Unpause,
    WrapUpDone,
)

S = AgentState


def logged_in(**kw: object) -> Agent:
    agent = Agent("a1", "Alice", "1234", **kw)  # type: ignore[arg-type]
    agent.handle(Login("SIP/1001"), 100.0)
    return agent


def test_full_call_cycle_keeps_timestamps_and_counters() -> None:
    agent = logged_in()
    assert agent.state is S.AVAILABLE and agent.device == "SIP/1001" and agent.idle_since == 100.0
    assert agent.handle(Offer("call-1"), 110.0) is S.RINGING
    assert agent.call_id == "call-1" and agent.state_since == 110.0
    assert agent.handle(Answer(), 115.0) is S.ON_CALL
    assert agent.handle(CallEnded(wrapup_seconds=30), 175.0) is S.WRAP_UP
    assert agent.calls_today == 1 and agent.talk_seconds == 60.0
    assert agent.idle_since == 175.0 and agent.call_id is None
    assert agent.expire(200.0) is S.WRAP_UP  # timer not yet expired
    assert agent.expire(205.0) is S.AVAILABLE
    agent.reset_daily()
    assert agent.calls_today == 0 and agent.talk_seconds == 0.0


def test_zero_wrapup_returns_straight_to_available() -> None:
    agent = logged_in()
    agent.handle(Offer("c"), 1.0)
    agent.handle(Answer(), 2.0)
    assert agent.handle(CallEnded(0), 3.0) is S.AVAILABLE


@pytest.mark.parametrize(
    ("setup", "event"),
    [
        ([], Offer("c")),  # logged out cannot be offered
        ([Login("d")], Login("d2")),  # already logged in
        ([Login("d")], Answer()),
        ([Login("d"), Offer("c")], Offer("c2")),  # never two offers at once
        ([Login("d"), Offer("c")], Pause("break")),
        ([Login("d"), Offer("c"), Answer()], Pause("break")),
        ([Login("d"), Pause("lunch")], Offer("c")),
        ([Login("d")], WrapUpDone()),
        ([Login("d")], Unpause()),
    ],
)
def test_illegal_transition_raises(setup: list[AgentEvent], event: AgentEvent) -> None:
    agent = Agent("a1", "Alice", "1234")
    for e in setup:
        agent.handle(e, 0.0)
    before = agent.state
    with pytest.raises(IllegalTransition) as info:
        agent.handle(event, 1.0)
    assert info.value.state is before and info.value.event == event
    assert agent.state is before  # nothing changed


def test_auto_pause_after_n_unanswered_offers() -> None:
    agent = logged_in(max_no_answer=2)
    agent.handle(Offer("c1"), 1.0)
    assert agent.handle(NoAnswer(), 2.0) is S.AVAILABLE
    agent.handle(Offer("c2"), 3.0)
    assert agent.handle(NoAnswer(), 4.0) is S.PAUSED
    assert agent.pause_reason == "no-answer"
    assert agent.handle(Unpause(), 5.0) is S.AVAILABLE and agent.consecutive_no_answer == 0


def test_answer_and_cancel_do_not_count_towards_auto_pause() -> None:
    agent = logged_in(max_no_answer=2)
    agent.handle(Offer("c1"), 1.0)
    agent.handle(NoAnswer(), 2.0)
    agent.handle(Offer("c2"), 3.0)
    agent.handle(OfferCancelled(), 4.0)  # caller hung up / another agent took it
    assert agent.state is S.AVAILABLE and agent.consecutive_no_answer == 1
    agent.handle(Offer("c3"), 5.0)
    agent.handle(Answer(), 6.0)
    assert agent.consecutive_no_answer == 0


def test_pause_reason_and_pause_during_wrapup() -> None:
    agent = logged_in()
    agent.handle(Pause("lunch"), 1.0)
    assert agent.pause_reason == "lunch"
    agent.handle(Pause("training"), 2.0)
    assert agent.pause_reason == "training" and agent.state_since == 2.0
    agent.handle(Unpause(), 3.0)
    agent.handle(Offer("c"), 4.0)
    agent.handle(Answer(), 5.0)
    agent.handle(CallEnded(60), 6.0)
    assert agent.handle(Pause("break"), 7.0) is S.PAUSED
    assert agent.expire(1000.0) is S.PAUSED  # no wrap-up timer left to fire
    assert agent.pause_reason == "break"


def test_ring_timeout_expires_to_available() -> None:
    agent = logged_in(ring_timeout=15.0)
    agent.handle(Offer("c"), 10.0)
    assert agent.reconcile(has_live_call=True, now=20.0) is S.RINGING
    assert agent.reconcile(has_live_call=False, now=25.0) is S.AVAILABLE
    assert agent.consecutive_no_answer == 1


def test_reconcile_on_call_without_channel() -> None:
    agent = logged_in()
    agent.handle(Offer("c"), 10.0)
    agent.handle(Answer(), 11.0)
    assert agent.reconcile(has_live_call=True, now=50.0) is S.ON_CALL
    assert agent.reconcile(has_live_call=False, now=60.0, wrapup_seconds=10.0) is S.WRAP_UP
    assert agent.talk_seconds == 49.0
    assert agent.reconcile(has_live_call=False, now=70.0) is S.AVAILABLE
    agent.handle(Offer("c2"), 80.0)
    agent.handle(Answer(), 81.0)
    assert agent.reconcile(has_live_call=False, now=90.0) is S.AVAILABLE  # no wrap-up given


def test_logout_from_every_state() -> None:
    paths: list[list[AgentEvent]] = [
        [],
        [Login("d")],
        [Login("d"), Offer("c")],
        [Login("d"), Offer("c"), Answer()],
        [Login("d"), Offer("c"), Answer(), CallEnded(30)],
        [Login("d"), Pause("x")],
    ]
    seen = set()
    for path in paths:
        agent = Agent("a", "A", "0")
        for event in path:
            agent.handle(event, 1.0)
        seen.add(agent.state)
        assert agent.handle(Logout(), 2.0) is S.LOGGED_OUT
        assert agent.device is None and agent.call_id is None
    assert seen == set(AgentState)


def _reachable_exits() -> dict[AgentState, set[AgentState]]:
    exits: dict[AgentState, set[AgentState]] = {s: set() for s in AgentState}
    for (state, _event), target in TRANSITIONS.items():
        if target is not state:
            exits[state].add(target)
    return exits


def test_every_state_has_an_exit_and_reaches_available() -> None:
    exits = _reachable_exits()
    for state in AgentState:
        assert exits[state], f"{state} has no exit"
        frontier, seen = {state}, {state}
        while frontier:
            frontier = {t for s in frontier for t in exits[s]} - seen
            seen |= frontier
        assert S.AVAILABLE in seen and S.LOGGED_OUT in seen


EVENTS = st.one_of(
    st.builds(Login, st.sampled_from(["d1", "d2"])),
    st.just(Logout()),
    st.builds(Offer, st.sampled_from(["c1", "c2"])),
    st.just(Answer()),
    st.just(NoAnswer()),
    st.just(OfferCancelled()),
    st.builds(CallEnded, st.sampled_from([0.0, 5.0, 30.0])),
    st.just(WrapUpDone()),
    st.builds(Pause, st.sampled_from(["lunch", "break"])),
    st.just(Unpause()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.floats(0, 50)), max_size=40), st.integers(1, 4))
def test_random_event_sequences_never_strand_an_agent(steps: list[tuple[AgentEvent, float]], max_no: int) -> None:
    agent = Agent("a", "A", "0", max_no_answer=max_no, ring_timeout=20.0)
    now = 0.0
    for event, dt in steps:
        now += dt
        before = agent.state
        if (before, type(event)) in TRANSITIONS:
            agent.handle(event, now)
        else:
            with pytest.raises(IllegalTransition):
                agent.handle(event, now)
            assert agent.state is before
        assert (agent.state is S.PAUSED) == (agent.pause_reason is not None)
        assert agent.consecutive_no_answer < max_no or agent.state is not S.AVAILABLE
    # Whatever happened, reality (no live channel) and time bring the agent back.
    agent.reconcile(has_live_call=False, now=now + 10_000.0)
    assert agent.state in (S.AVAILABLE, S.PAUSED, S.LOGGED_OUT)
    assert agent.handle(Logout(), now + 10_001.0) is S.LOGGED_OUT
