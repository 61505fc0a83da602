"""The engine's side of pacing: one `Pacer` per campaign, built from its settings and seeded from
the store, so a restart resumes with the abandon ledger and the measured rates it had.

The pacing model itself is pure (`appliance.dialer.pacing`, `appliance.dialer.abandon`); this
adapter only builds it, feeds it history, and turns its decision into JSON for the API.
"""
from __future__ import annotations

from typing import Any

from appliance.dialer.abandon import AbandonLedger
from appliance.dialer.campaign import CampaignConfig
from appliance.dialer.pacing import DialMode, Pacer, PacingDecision, PacingStats
from appliance.store import dialer as dstore
from appliance.store.db import Store

HISTORY_ATTEMPTS = 300  # the stats' window: the most recent attempts seed it


def make_pacer(campaign: CampaignConfig) -> Pacer:
    """A pacer for the campaign's mode, cap, window, abandon threshold and ratio limit."""
    ledger = AbandonLedger(campaign.abandon_cap, 3600.0 * campaign.abandon_window_hours,
                           threshold_s=campaign.abandon_seconds)
    return Pacer(DialMode(campaign.mode), ledger, PacingStats(), max_ratio=campaign.max_ratio, name=campaign.name)


def pacing_key(campaign: CampaignConfig) -> tuple[Any, ...]:
    """The settings a pacer is built from: a change means a new pacer (re-seeded)."""
    return (campaign.mode, campaign.abandon_cap, campaign.abandon_window_hours, campaign.abandon_seconds,
            campaign.max_ratio)


def seed(pacer: Pacer, store: Store, campaign: CampaignConfig, now: float, wrapup_s: float) -> None:
    """Load the abandon ledger (hour by hour over its window) and the recent outcomes and handle
    times from the campaign's dial attempts. The ledger counts what `store.dialer.abandon_counts`
    counts: attempts a person answered (machines excluded), and those abandoned."""
    since = now - pacer.ledger.window_s
    for hour in dstore.answers_by_hour(store, campaign.name, since):
        at = max(since, float(hour.hour) * 3600.0)
        for i in range(hour.answered):
            pacer.ledger.record(at, i < hour.abandoned)
    for t in dstore.recent_outcomes(store, campaign.name, HISTORY_ATTEMPTS):
        person = t.answered_at is not None and t.outcome != "machine"
        answered_or_ended = t.answered_at if t.answered_at is not None else t.ended_at or t.placed_at
        pacer.stats.record_attempt(person, float(answered_or_ended - t.placed_at))
        if t.connected_at is not None and t.ended_at is not None:
            pacer.stats.record_handle(float(t.ended_at - t.connected_at), wrapup_s)


def decision_dict(d: PacingDecision) -> dict[str, Any]:
    """The decision as the campaigns API shows it."""
    return {"at": d.at, "mode": d.mode.value, "calls": d.calls_to_place, "reason": d.reason,
            "agents_free": d.agents_free, "agents_soon_free": round(d.agents_soon_free, 3), "in_flight": d.in_flight,
            "waiting": d.waiting, "outcomes": d.outcomes, "answer_rate": round(d.answer_rate, 4),
            "mean_handle_s": round(d.mean_handle_s, 1), "headroom": round(d.headroom, 3),
            "expected_answers": round(d.expected_answers, 3), "expected_abandons": round(d.expected_abandons, 4),
            "abandon_probability": round(d.abandon_probability, 4)}
