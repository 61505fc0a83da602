"""Selection strategies: each one's choice, the registry, and no starvation under repeated offers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.acd.strategies import STRATEGIES, Candidate, RingProgressively, make_strategy

POOL = [
    Candidate("a", idle_since=50.0, calls_today=3, talk_seconds=300.0, order=2),
    Candidate("b", idle_since=10.0, calls_today=5, talk_seconds=100.0, order=3),
    Candidate("c", idle_since=30.0, calls_today=1, talk_seconds=900.0, order=1),
    Candidate("d", idle_since=20.0, calls_today=1, talk_seconds=200.0, order=4),
]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ring-all", ["c", "a", "b", "d"]),
        ("longest-idle", ["b"]),
        ("fewest-calls", ["d"]),  # tie c/d on calls broken by longer idle
        ("least-talk-time", ["b"]),
        ("linear", ["c"]),
        ("ring-progressively", ["c"]),
    ],
)
def test_each_strategy_picks(name: str, expected: list[str]) -> None:
    strategy = make_strategy(name)
    assert strategy.name == name
    assert strategy.select(POOL) == expected
    assert strategy.select(list(reversed(POOL))) == expected  # input order does not matter
    assert strategy.select([]) == []


def test_registry_has_every_strategy_and_rejects_unknown() -> None:
    assert set(STRATEGIES) == {
        "ring-all",
        "longest-idle",
        "round-robin",
        "fewest-calls",
        "least-talk-time",
        "random",
        "linear",
        "ring-progressively",
    }
    with pytest.raises(ValueError, match="unknown queue strategy 'fifo'"):
        make_strategy("fifo")


def test_round_robin_remembers_across_calls_and_missing_agents() -> None:
    rr = make_strategy("round-robin")
    assert [rr.select(POOL)[0] for _ in range(5)] == ["c", "a", "b", "d", "c"]
    # "a" (next after c) is busy: rotation carries on to b, then wraps past missing agents.
    assert rr.select([p for p in POOL if p.agent_id != "a"]) == ["b"]
    assert rr.select([POOL[2], POOL[0]]) == ["c"]


def test_random_is_seedable() -> None:
    picks = [make_strategy("random", seed=7).select(POOL) for _ in range(3)]
    assert picks[0] == picks[1] == picks[2]
    seq = make_strategy("random", seed=1)
    assert len({seq.select(POOL)[0] for _ in range(50)}) == 4  # every agent comes up


def test_ring_progressively_adds_one_every_step() -> None:
    rp = RingProgressively(step_seconds=10)
    assert rp.select(POOL, elapsed=0) == ["c"]
    assert rp.select(POOL, elapsed=9.9) == ["c"]
    assert rp.select(POOL, elapsed=10) == ["c", "a"]
    assert rp.select(POOL, elapsed=35) == ["c", "a", "b", "d"]
    assert rp.select(POOL, elapsed=999) == ["c", "a", "b", "d"]
    with pytest.raises(ValueError):
        RingProgressively(step_seconds=0)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["round-robin", "longest-idle"]),
    st.integers(2, 12),
    st.data(),
)
def test_no_available_agent_is_starved(name: str, n: int, data: st.DataObject) -> None:
    """An agent that stays available is picked within n offers, whoever else comes and goes.

    Each picked agent takes the call and comes back idle (idle_since = now), as in the engine.
    """
    strategy = make_strategy(name)
    orders = data.draw(st.permutations(range(n)))
    agents = {f"ag{i}": Candidate(f"ag{i}", float(data.draw(st.integers(0, 100))), 0, 0.0, orders[i]) for i in range(n)}
    watched = data.draw(st.sampled_from(sorted(agents)))
    since_picked = 0
    for step in range(3 * n):
        others = data.draw(st.sets(st.sampled_from(sorted(agents))))
        present = [c for c in agents.values() if c.agent_id in others or c.agent_id == watched]
        (picked,) = strategy.select(present)
        assert picked in {c.agent_id for c in present}
        old = agents[picked]
        agents[picked] = Candidate(picked, 1000.0 + step, old.calls_today + 1, old.talk_seconds, old.order)
        since_picked = 0 if picked == watched else since_picked + 1
        assert since_picked < n, f"{watched} starved by {name}"
