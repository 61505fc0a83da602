"""Erlang C against published values: A = 10 erlangs (100 calls per 30 min, AHT 180 s).

Reference: the standard Erlang C table (probability of waiting) gives C(11, 10) = 0.6821,
C(12, 10) = 0.4494, C(13, 10) = 0.2853, C(14, 10) = 0.1741, C(15, 10) = 0.1020, and the worked
example of Call Centre Helper's "Erlang C formula made simple" (100 calls / 30 min, AHT 180 s,
target 80 % in 20 s) needs 14 agents: 13 agents reach 79.6 %, just short of 80 %.
"""
from __future__ import annotations

import math

import pytest

from web import erlang


def test_traffic_in_erlangs() -> None:
    assert erlang.traffic_erlangs(100, 1800, 180) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        erlang.traffic_erlangs(100, 0, 180)


@pytest.mark.parametrize(("agents", "published"), [(11, 0.6821), (12, 0.4494), (13, 0.2853), (14, 0.1741),
                                                   (15, 0.1020)])
def test_probability_of_waiting_matches_the_table(agents: int, published: float) -> None:
    assert erlang.erlang_c(agents, 10.0) == pytest.approx(published, abs=5e-5)


def test_erlang_b_known_value() -> None:
    # Erlang B table: 10 erlangs on 10 trunks blocks 21.46 % of calls.
    assert erlang.erlang_b(10, 10.0) == pytest.approx(0.2146, abs=5e-5)


def test_service_level_and_asa_of_the_worked_example() -> None:
    assert erlang.service_level(13, 10.0, 180, 20) == pytest.approx(0.7956, abs=5e-4)
    assert erlang.service_level(14, 10.0, 180, 20) == pytest.approx(0.8884, abs=5e-4)
    assert erlang.asa(14, 10.0, 180) == pytest.approx(7.84, abs=0.01)
    assert erlang.asa(11, 10.0, 180) == pytest.approx(122.8, abs=0.1)
    assert erlang.occupancy(14, 10.0) == pytest.approx(0.7143, abs=1e-4)


def test_agents_needed_for_80_in_20() -> None:
    assert erlang.agents_needed(10.0, 180, 0.80, 20) == 14
    assert erlang.agents_needed(10.0, 180, 0.79, 20) == 13  # 79.56 % is enough for 79 %
    plan = erlang.plan(100, 1800, 180, 0.80, 20)
    assert (plan.agents, round(plan.service_level, 3), round(plan.asa_s, 1)) == (14, 0.888, 7.8)


def test_occupancy_cap_adds_agents() -> None:
    # 14 agents run at 71 % occupancy; a 70 % cap needs 15.
    assert erlang.agents_needed(10.0, 180, 0.80, 20, max_occupancy=0.70) == 15


def test_overload_and_no_traffic() -> None:
    assert erlang.erlang_c(10, 10.0) == 1.0
    assert erlang.asa(9, 10.0, 180) == math.inf
    assert erlang.service_level(10, 10.0, 180, 20) == 0.0
    assert erlang.agents_needed(0.0, 180, 0.8, 20) == 0
    assert erlang.plan(0, 1800, 180, 0.8, 20).agents == 0


def test_large_traffic_stays_finite() -> None:
    # 1,000 erlangs: the factorial form overflows floats; the recurrence does not.
    n = erlang.agents_needed(1000.0, 180, 0.8, 20)
    assert 1000 < n < 1100 and 0.8 <= erlang.service_level(n, 1000.0, 180, 20) < 0.9


def test_bad_targets_are_refused() -> None:
    with pytest.raises(ValueError):
        erlang.agents_needed(10.0, 180, 1.5, 20)
    with pytest.raises(ValueError):
        erlang.agents_needed(10.0, 180, 0.8, 20, max_occupancy=0)
