"""Outbound campaigns: what is dialled, by which agents, how, when, and what happens after each try.

A campaign takes its agents from an ACD queue (so one agent can serve inbound queues and outbound
campaigns at once: blending), dials leads from its lists through one trunk with its caller ID,
shows its script and lead card to the agent, and closes each call with one of its disposition
codes. Retry rules say how long to wait before trying a lead again after each kind of outcome;
outcomes without a rule end the lead. Calling windows are written the way a compliance officer
states them ("mon-fri 10:00-13:00") and judged in the lead's own time zone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# The rules of a campaign are the validation layer's (one model: appliance/schema/campaigns.py).
from appliance.schema.campaigns import DEFAULT_DISPOSITIONS, DEFAULT_RETRY, DEFAULT_WINDOWS, CampaignRecord
from appliance.schema.campaigns import MACHINE_ACTIONS as MACHINE_ACTIONS
from appliance.schema.campaigns import MODES as MODES
from appliance.schema.campaigns import RETRYABLE as RETRYABLE
from appliance.schema.campaigns import STATES as STATES
from appliance.schema.campaigns import Window as Window
from appliance.schema.campaigns import parse_window as parse_window
from appliance.schema.records import as_fields
from appliance.schema.types import record

# What the dialer itself learns about a try, before or without an agent's disposition.
OUTCOMES = ("no-answer", "busy", "failed", "machine", "abandoned", "connected", "opt-out", "callback")


@dataclass
class CampaignConfig:
    """One outbound campaign as the admin configures it."""

    name: str
    queue: str  # the ACD queue whose members are the campaign's agents
    trunk: str  # where its calls go out
    mode: str = "progressive"
    caller_id: str = ""
    script: str = ""
    dispositions: list[str] = field(default_factory=lambda: list(DEFAULT_DISPOSITIONS))
    retry_minutes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RETRY))
    max_attempts: int = 5  # tries per lead, whatever their outcomes
    windows: list[str] = field(default_factory=lambda: list(DEFAULT_WINDOWS))
    country: str = ""  # how national numbers in its lists are read; empty: the site's country
    abandon_cap: float = 0.03  # the FTC's safe harbour (16 CFR 310.4(b)(4)); Ofcom also uses 3 %
    abandon_window_hours: int = 720  # FTC: 30 days per campaign; Ofcom: 24 hours
    abandon_seconds: float = 2.0  # an answered call with no agent within this long is abandoned
    max_ratio: float = 3.0  # predictive never has more calls in flight than this per free agent
    amd: bool = True
    machine_action: str = "hangup"  # or "message": play `machine_message` after the beep
    machine_message: str = ""
    abandon_message: str = "Sorry, we called you but no one is free to take the call. We will call you back."
    state: str = "paused"
    label: str = ""  # the name people read ("Relance printemps"); empty: `name`

    @property
    def display_name(self) -> str:
        return self.label or self.name


def check_campaign(c: CampaignConfig, where: str = "campaign") -> None:
    """Validate every field of a campaign (not that its queue and trunk exist): RecordInvalid
    lists every error at once."""
    record(CampaignRecord, as_fields(c), (where,))
