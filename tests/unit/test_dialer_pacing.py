"""Dialer pacing: the abandon ledger, the pacer's decisions, and shifts run through the simulator."""
from __future__ import annotations

import itertools
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from appliance.dialer.abandon import AbandonLedger
from appliance.dialer.pacing import (
    DialerSnapshot,
    DialMode,
    Pacer,
    PacingStats,
    binomial_pmf,
    poisson_binomial_pmf,
)
from appliance.dialer.simulator import ShiftConfig, simulate_shift

# --- the ledger ---------------------------------------------------------------------------------


def test_ledger_rate_counts_abandons_among_answered() -> None:
    ledger = AbandonLedger(0.03)
    for i in range(100):
        ledger.record(float(i), abandoned=i < 3)
    assert ledger.totals(100.0) == (100, 3)
    assert ledger.rate(100.0) == pytest.approx(0.03)
    assert AbandonLedger().rate(0.0) == 0.0


def test_ledger_threshold_is_two_seconds_and_configurable() -> None:
    ledger = AbandonLedger()
    assert not ledger.is_abandon(0.0)
    assert not ledger.is_abandon(2.0)  # connected within 2 s is not abandoned
    assert ledger.is_abandon(2.01)
    assert ledger.is_abandon(None)  # never connected
    assert not AbandonLedger(threshold_s=3.0).is_abandon(2.5)
    assert ledger.record_answered(5.0, None) is True
    assert ledger.record_answered(5.0, 1.0) is False
    assert ledger.totals(5.0) == (2, 1)


def test_ledger_24h_window_rolls_by_minute_buckets() -> None:
    ledger = AbandonLedger.ofcom()
    assert (ledger.window_s, ledger.bucket_s) == (86400.0, 60.0)
    ledger.record(10.0, abandoned=True)  # bucket [0, 60)
    ledger.record(3600.0, abandoned=False)
    assert ledger.totals(86459.0) == (2, 1)  # some of bucket [0, 60) is still within 24 h
    assert ledger.totals(86460.0) == (1, 0)  # all of it is older than 24 h
    assert ledger.totals(3600.0 + 86460.0) == (0, 0)
    assert ledger.rate(3600.0 + 86460.0) == 0.0


def test_ledger_30_day_window_keeps_hourly_buckets_and_bounded_memory() -> None:
    ledger = AbandonLedger.ftc()
    assert (ledger.window_s, ledger.bucket_s, ledger.max_buckets) == (30 * 86400.0, 3600.0, 721)
    t = 0.0
    for i in range(40 * 24 * 6):  # 40 days, a call every 10 minutes, one in 20 abandoned
        ledger.record(t, abandoned=i % 20 == 0)
        t += 600.0
    assert len(ledger) <= ledger.max_buckets
    answered, abandoned = ledger.totals(t)
    assert 30 * 24 * 6 <= answered <= 30 * 24 * 6 + 6  # 30 days, to within one hourly bucket
    assert ledger.rate(t) == pytest.approx(0.05, abs=0.002)
    ofcom = AbandonLedger.ofcom()
    for i in range(3 * 86400 // 10):
        ofcom.record(i * 10.0, abandoned=False)
    assert len(ofcom) <= ofcom.max_buckets == 1441


def test_ledger_late_record_counts_in_the_newest_bucket() -> None:
    ledger = AbandonLedger(window_s=3600.0, bucket_s=60.0)
    ledger.record(600.0, abandoned=False)
    ledger.record(30.0, abandoned=True)  # reported late: kept as long as the newest bucket
    assert len(ledger) == 1
    assert ledger.totals(600.0 + 3600.0 + 59.0) == (2, 1)


def test_ledger_headroom() -> None:
    ledger = AbandonLedger(0.03)
    for i in range(100):
        ledger.record(0.0, abandoned=i < 2)
    assert ledger.headroom(0.0) == pytest.approx(1.0)  # 0.03 * 100 - 2
    assert ledger.headroom(0.0, expected_answers=50) == pytest.approx(2.5)  # 0.03 * 150 - 2
    assert ledger.headroom(0.0, 0.0, cap=0.02) == pytest.approx(0.0)
    for _ in range(2):
        ledger.record(0.0, abandoned=True)
    assert ledger.headroom(0.0) == pytest.approx(0.03 * 102 - 4)  # over the cap: negative
    assert ledger.headroom(0.0) < 0


@pytest.mark.parametrize("kwargs", [dict(cap=1.5), dict(cap=-0.1), dict(window_s=0.0), dict(bucket_s=0.0),
                                    dict(window_s=60.0, bucket_s=120.0), dict(threshold_s=0.0)])
def test_ledger_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AbandonLedger(**kwargs)


# --- the model's arithmetic ---------------------------------------------------------------------


def test_binomial_pmf_is_exact() -> None:
    for n, p in [(1, 0.5), (7, 0.3), (40, 0.15), (0, 0.4)]:
        want = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
        assert np.allclose(binomial_pmf(n, p), want, atol=1e-12)
    assert list(binomial_pmf(3, 1.0)) == [0, 0, 0, 1]


def test_poisson_binomial_pmf_matches_enumeration() -> None:
    probs = [0.1, 0.5, 0.93, 0.0, 0.27]
    want = np.zeros(len(probs) + 1)
    for outcome in itertools.product((0, 1), repeat=len(probs)):
        want[sum(outcome)] += math.prod(p if o else 1 - p for p, o in zip(probs, outcome))
    assert np.allclose(poisson_binomial_pmf(np.array(probs)), want, atol=1e-12)
    assert list(poisson_binomial_pmf(np.array([]))) == [1.0]


def _stats(answered: int, unanswered: int, *, answer_ring: float = 5.0, handles: int = 0,
           wrap: float = 20.0) -> PacingStats:
    stats = PacingStats(window=1000)
    for _ in range(answered):
        stats.record_attempt(True, answer_ring)
    for _ in range(unanswered):
        stats.record_attempt(False, 25.0)
    for _ in range(handles):
        stats.record_handle(100.0, wrap)
    return stats


def test_stats_conditional_answer_and_free_probabilities() -> None:
    stats = _stats(30, 70, handles=10)
    assert stats.answer_rate == pytest.approx(0.3)
    assert stats.p_answer_after(0.0) == pytest.approx(0.3)
    assert stats.p_answer_after(10.0) == 0.0  # every answer came at 5 s: a call ringing 10 s is dead
    q = stats.p_free_within(np.array([10.0, 95.0]), np.array([5.0, 15.0]), 7.0)
    # talking 10 s of 100: not free in 7 s; talking 95 s: 100 + 20 wrap > 102; wrap 5 of 20: no; wrap 15: yes
    assert list(q) == [0.0, 0.0, 0.0, 1.0]
    assert stats.mean_handle_s == pytest.approx(120.0)


# --- decisions ----------------------------------------------------------------------------------


def test_preview_never_dials() -> None:
    pacer = Pacer(DialMode.PREVIEW, AbandonLedger(), _stats(50, 50))
    decision = pacer.decide(0.0, DialerSnapshot(agents_free=5))
    assert decision.calls_to_place == 0
    assert decision.reason.startswith("preview")


def test_progressive_one_call_per_free_agent_less_calls_in_flight() -> None:
    pacer = Pacer(DialMode.PROGRESSIVE, AbandonLedger(), _stats(50, 50))
    assert pacer.decide(0.0, DialerSnapshot(agents_free=5, ringing_elapsed_s=(1.0, 2.0))).calls_to_place == 3
    assert pacer.decide(0.0, DialerSnapshot(agents_free=2, ringing_elapsed_s=(1.0,), waiting=1)).calls_to_place == 0
    assert pacer.decide(0.0, DialerSnapshot(agents_free=1, ringing_elapsed_s=(1.0, 2.0))).calls_to_place == 0


def test_cold_start_paces_progressively() -> None:
    pacer = Pacer(DialMode.PREDICTIVE, AbandonLedger(), _stats(5, 10), min_outcomes=50)
    decision = pacer.decide(0.0, DialerSnapshot(agents_free=4))
    assert decision.calls_to_place == 4
    assert decision.reason.startswith("cold start: 15 < 50")


def test_predictive_hand_computed_case() -> None:
    # p = 0.5, one free agent, nothing in flight, an empty ledger with a 30 % cap aimed at in full:
    # 2 calls: E[(A - 1)+] = P(A = 2) = 0.25 abandons for 1.0 answers: 25 % <= 30 %.
    # 3 calls: P(A = 2) * 1 + P(A = 3) * 2 = 3/8 + 2/8 = 0.625 for 1.5 answers: 41.7 % > 30 %.
    pacer = Pacer(DialMode.PREDICTIVE, AbandonLedger(cap=0.3), _stats(50, 50), aim=1.0)
    decision = pacer.decide(0.0, DialerSnapshot(agents_free=1))
    assert decision.calls_to_place == 2
    assert decision.reason == "predictive"
    assert decision.expected_answers == pytest.approx(1.0)
    assert decision.expected_abandons == pytest.approx(0.25)
    assert decision.abandon_probability == pytest.approx(0.25)
    assert decision.headroom == pytest.approx(0.3)


def test_soon_free_agent_counts_as_available() -> None:
    # An agent 15 s into a 20 s wrap-up frees within the horizon (10th-percentile ring 5 s + 2 s).
    pacer = Pacer(DialMode.PREDICTIVE, AbandonLedger(cap=0.3), _stats(50, 50, handles=20), aim=1.0)
    decision = pacer.decide(0.0, DialerSnapshot(agents_free=0, wrapping_elapsed_s=(15.0,), talking_elapsed_s=(3.0,)))
    assert decision.agents_soon_free == pytest.approx(1.0)
    assert decision.calls_to_place == 2  # the same as one free agent
    assert decision.horizon_s == pytest.approx(7.0)


def test_no_headroom_means_no_over_dial() -> None:
    ledger = AbandonLedger(0.03)
    for i in range(100):
        ledger.record(0.0, abandoned=i < 3)  # at the cap; the pacer aims at 80 % of it
    pacer = Pacer(DialMode.PREDICTIVE, ledger, _stats(50, 50))
    decision = pacer.decide(1.0, DialerSnapshot(agents_free=2))
    assert decision.calls_to_place == 2
    assert decision.reason.startswith("no headroom")
    over_dialled = pacer.decide(1.0, DialerSnapshot(agents_free=2, ringing_elapsed_s=(1.0, 1.0, 1.0)))
    assert over_dialled.calls_to_place == 0


def _ledger_with(answered: int, abandoned: int) -> AbandonLedger:
    ledger = AbandonLedger(0.03)
    for i in range(answered):
        ledger.record(0.0, abandoned=i < abandoned)
    return ledger


def test_higher_answer_rate_means_fewer_extra_calls() -> None:
    snap = DialerSnapshot(agents_free=10)
    low = Pacer(DialMode.PREDICTIVE, _ledger_with(1000, 20), _stats(30, 70)).decide(0.0, snap)
    high = Pacer(DialMode.PREDICTIVE, _ledger_with(1000, 20), _stats(60, 40)).decide(0.0, snap)
    assert 10 < high.calls_to_place < low.calls_to_place <= 30
    for d in (low, high):
        assert d.expected_abandons <= d.headroom + 1e-9
        assert d.headroom == pytest.approx(0.024 * (1000 + d.expected_answers) - 20)


def test_dial_ratio_caps_calls_per_available_agent() -> None:
    pacer = Pacer(DialMode.PREDICTIVE, _ledger_with(1000, 0), _stats(1, 99), max_ratio=3.0)
    decision = pacer.decide(0.0, DialerSnapshot(agents_free=4, ringing_elapsed_s=(1.0, 1.0)))
    assert decision.calls_to_place == 3 * 4 - 2
    assert decision.reason == "predictive: ratio limit"


def test_every_decision_is_logged_and_kept_in_bounded_history(caplog: pytest.LogCaptureFixture) -> None:
    pacer = Pacer(DialMode.PROGRESSIVE, AbandonLedger(), history=3, name="spring-sale")
    with caplog.at_level(logging.INFO, logger="appliance.dialer.pacing"):
        for i in range(5):
            pacer.decide(float(i), DialerSnapshot(agents_free=i))
    assert pacer.decisions == 5
    assert [d.calls_to_place for d in pacer.history] == [2, 3, 4]
    lines = [r.getMessage() for r in caplog.records if r.name == "appliance.dialer.pacing"]
    assert len(lines) == 5
    assert "spring-sale progressive: place 4 (progressive: one call per free agent)" in lines[-1]


# --- shifts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer_rate", [0.15, 0.3, 0.6])
@pytest.mark.parametrize("seed", [1, 2])
def test_predictive_shift_stays_under_the_cap(answer_rate: float, seed: int) -> None:
    result = simulate_shift(ShiftConfig(mode=DialMode.PREDICTIVE, agents=10, hours=2.0,
                                        answer_schedule=((0.0, answer_rate),), seed=seed))
    assert result.answered > 200
    assert 0 < result.abandoned  # it did over-dial
    assert result.abandon_rate <= 0.03
    assert result.decisions == 2 * 3600 + 1


@pytest.mark.parametrize("schedule", [((0.0, 0.15), (3600.0, 0.6)), ((0.0, 0.6), (3600.0, 0.15))])
def test_predictive_shift_survives_an_answer_rate_jump(schedule: tuple) -> None:
    result = simulate_shift(ShiftConfig(mode=DialMode.PREDICTIVE, agents=10, hours=2.0,
                                        answer_schedule=schedule, seed=3))
    assert result.abandon_rate <= 0.03


def test_occupancy_predictive_over_progressive_over_preview() -> None:
    results = {mode: simulate_shift(ShiftConfig(mode=mode, agents=20, hours=2.0, seed=4)) for mode in DialMode}
    preview, progressive, predictive = (results[m] for m in (DialMode.PREVIEW, DialMode.PROGRESSIVE,
                                                              DialMode.PREDICTIVE))
    assert predictive.occupancy > progressive.occupancy + 0.02
    assert progressive.occupancy > preview.occupancy + 0.05
    assert preview.abandoned == progressive.abandoned == 0
    assert predictive.abandon_rate <= 0.03
    assert predictive.connects_per_agent_hour > progressive.connects_per_agent_hour > preview.connects_per_agent_hour


def test_simulator_is_deterministic_per_seed() -> None:
    config = ShiftConfig(mode=DialMode.PROGRESSIVE, agents=5, hours=1.0, seed=9)
    assert simulate_shift(config) == simulate_shift(config)
    assert simulate_shift(config) != simulate_shift(ShiftConfig(mode=DialMode.PROGRESSIVE, agents=5, hours=1.0,
                                                                seed=10))


def test_simulator_rejects_a_schedule_not_starting_at_zero() -> None:
    with pytest.raises(ValueError):
        simulate_shift(ShiftConfig(answer_schedule=((60.0, 0.3),)))


def test_spare_headroom_is_not_spent_in_one_burst() -> None:
    # A quiet month leaves lots of headroom (1000 answered, no abandons: 24 abandons allowed), but
    # no single decision may expect more than burst x cap of its answers to be abandoned.
    snap = DialerSnapshot(agents_free=10)
    greedy = Pacer(DialMode.PREDICTIVE, _ledger_with(1000, 0), _stats(60, 40), burst=100.0).decide(0.0, snap)
    spread = Pacer(DialMode.PREDICTIVE, _ledger_with(1000, 0), _stats(60, 40)).decide(0.0, snap)
    assert greedy.abandon_probability > 0.06
    assert spread.abandon_probability <= 2 * 0.03 + 1e-9
    assert 10 < spread.calls_to_place < greedy.calls_to_place
    with pytest.raises(ValueError, match="burst"):
        Pacer(DialMode.PREDICTIVE, AbandonLedger(), burst=0.5)
