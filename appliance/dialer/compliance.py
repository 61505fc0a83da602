"""Whether a lead may be dialled now: do-not-call, attempt limits and calling windows, decided at dial time.

Checking only when a list is loaded is not enough: a number can join the DNC list, reach its
attempt limit or leave its calling window between the import and the moment the dialer picks it.
So the dialer asks `check_dial` right before every call, and writes the answer, allowed or not,
to the audit log. Pure functions: the caller gathers the facts from the store.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.dialer.campaign import Window, parse_window

ALLOWED = "allowed"
DNC = "dnc"
OUTSIDE_WINDOW = "outside-window"
MAX_ATTEMPTS = "max-attempts"
NUMBER_LIMIT = "number-limit"
BAD_ZONE = "bad-timezone"


@dataclass(frozen=True)
class DialFacts:
    """What the store knows about a lead when the dialer wants to call it."""

    number: str  # E.164
    timezone: str  # IANA zone of the lead
    lead_attempts: int  # tries already made for this lead
    number_attempts_recent: int  # tries to this number, any campaign, within the number-limit window
    on_dnc: bool


@dataclass(frozen=True)
class DialRules:
    """The campaign's and the site's limits."""

    windows: Sequence[str]
    max_attempts: int
    number_limit: int  # tries per number per `number_limit_hours`, across campaigns; 0: no limit
    number_limit_hours: int = 24


@dataclass(frozen=True)
class DialCheck:
    """The decision, with a reason code for the audit log and when to try again if refused."""

    allowed: bool
    reason: str
    detail: str
    retry_at: float | None = None  # epoch seconds; None: never (DNC, attempts exhausted)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def in_windows(windows: Sequence[Window], local: dt.datetime) -> bool:
    """Whether the lead's local time falls in any calling window."""
    return any(w.contains(local) for w in windows)


def next_opening(windows: Sequence[Window], local: dt.datetime) -> dt.datetime | None:
    """The first moment at or after `local` inside a window (same zone as `local`), within 8 days."""
    if in_windows(windows, local):
        return local
    best: dt.datetime | None = None
    for day in range(8):
        date = (local + dt.timedelta(days=day)).date()
        for w in windows:
            if date.weekday() not in w.days:
                continue
            start = dt.datetime.combine(date, w.start, tzinfo=local.tzinfo)
            if start >= local and (best is None or start < best):
                best = start
        if best is not None:
            return best
    return None


def check_dial(facts: DialFacts, rules: DialRules, now: float) -> DialCheck:
    """May `facts.number` be dialled at `now`? Refusals say why and, when it can wait, until when."""
    if facts.on_dnc:
        return DialCheck(False, DNC, f"{facts.number} is on the do-not-call list")
    if facts.lead_attempts >= rules.max_attempts:
        return DialCheck(False, MAX_ATTEMPTS, f"{facts.lead_attempts} of {rules.max_attempts} tries made")
    zone = _zone(facts.timezone)
    if zone is None:
        return DialCheck(False, BAD_ZONE, f"{facts.timezone!r} is not a time zone")
    windows = [parse_window(text) for text in rules.windows]
    local = dt.datetime.fromtimestamp(now, zone)
    if not in_windows(windows, local):
        opening = next_opening(windows, local)
        when = opening.strftime("%a %H:%M") if opening else "no window in the next week"
        return DialCheck(False, OUTSIDE_WINDOW, f"{local:%a %H:%M} {facts.timezone}; next opening {when}",
                         opening.timestamp() if opening else None)
    if rules.number_limit and facts.number_attempts_recent >= rules.number_limit:
        return DialCheck(False, NUMBER_LIMIT,
                         f"{facts.number_attempts_recent} calls to {facts.number} in {rules.number_limit_hours} h "
                         f"(limit {rules.number_limit})", now + 3600.0)
    return DialCheck(True, ALLOWED, f"{local:%a %H:%M} {facts.timezone}")
