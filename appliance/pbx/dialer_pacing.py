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
    rows = store.query(
        "SELECT CAST(placed_at / 3600 AS INTEGER), COUNT(*),"
        " COALESCE(SUM(CASE WHEN outcome = 'abandoned' THEN 1 ELSE 0 END), 0) FROM dial_attempts"
        " WHERE campaign = ? AND placed_at >= ? AND answered_at IS NOT NULL AND outcome != 'machine'"
        " GROUP BY 1 ORDER BY 1", (campaign.name, since))
    for hour, answered, abandoned in rows:
        at = max(since, float(hour) * 3600.0)
        for i in range(int(answered)):
            pacer.ledger.record(at, i < int(abandoned))
    history = store.query(
        "SELECT placed_at, answered_at, connected_at, ended_at, outcome FROM dial_attempts"
        " WHERE campaign = ? AND outcome IS NOT NULL ORDER BY id DESC LIMIT ?", (campaign.name, HISTORY_ATTEMPTS))
    for placed, answered, connected, ended, outcome in reversed(history):
        person = answered is not None and outcome != "machine"
        pacer.stats.record_attempt(person, float((answered if answered is not None else ended or placed) - placed))
        if connected is not None and ended is not None:
            pacer.stats.record_handle(float(ended - connected), wrapup_s)


def decision_dict(d: PacingDecision) -> dict[str, Any]:
    """The decision as the campaigns API shows it."""
    return {"at": d.at, "mode": d.mode.value, "calls": d.calls_to_place, "reason": d.reason,
            "agents_free": d.agents_free, "agents_soon_free": round(d.agents_soon_free, 3), "in_flight": d.in_flight,
            "waiting": d.waiting, "outcomes": d.outcomes, "answer_rate": round(d.answer_rate, 4),
            "mean_handle_s": round(d.mean_handle_s, 1), "headroom": round(d.headroom, 3),
            "expected_answers": round(d.expected_answers, 3), "expected_abandons": round(d.expected_abandons, 4),
            "abandon_probability": round(d.abandon_probability, 4)}
