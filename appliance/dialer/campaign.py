"""Outbound campaigns: what is dialled, by which agents, how, when, and what happens after each try.

A campaign takes its agents from an ACD queue (so one agent can serve inbound queues and outbound
campaigns at once: blending), dials leads from its lists through one trunk with its caller ID,
shows its script and lead card to the agent, and closes each call with one of its disposition
codes. Retry rules say how long to wait before trying a lead again after each kind of outcome;
outcomes without a rule end the lead. Calling windows are written the way a compliance officer
states them ("mon-fri 10:00-13:00") and judged in the lead's own time zone.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
import typing
from dataclasses import dataclass, field

from appliance.store.errors import ConfigError
from appliance.store.validation import CALLER_ID_RE, NAME_RE, check_type

MODES = ("preview", "progressive", "predictive")
STATES = ("paused", "running", "finished")
# What the dialer itself learns about a try, before or without an agent's disposition.
OUTCOMES = ("no-answer", "busy", "failed", "machine", "abandoned", "connected", "opt-out", "callback")
# Outcomes a retry rule may name: an agent's callback is scheduled at the time the lead asked for.
RETRYABLE = ("no-answer", "busy", "failed", "machine", "abandoned")
MACHINE_ACTIONS = ("hangup", "message")
DEFAULT_WINDOWS = ("mon-fri 09:00-20:00", "sat 09:00-13:00")
DEFAULT_RETRY = {"no-answer": 120, "busy": 15, "failed": 60, "machine": 240, "abandoned": 60}
DISPOSITION_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW_RE = re.compile(r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
                        r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$")
MAX_SCRIPT = 20_000


@dataclass(frozen=True)
class Window:
    """Days of the week (0 = Monday) and a [start, end) time of day, local to the lead."""

    days: frozenset[int]
    start: dt.time
    end: dt.time

    def contains(self, local: dt.datetime) -> bool:
        return local.weekday() in self.days and self.start <= local.time() < self.end


@dataclass
class CampaignConfig:
    """One outbound campaign as the admin configures it."""

    name: str
    queue: str  # the ACD queue whose members are the campaign's agents
    trunk: str  # where its calls go out
    mode: str = "progressive"
    caller_id: str = ""
    script: str = ""
    dispositions: list[str] = field(default_factory=lambda: ["sale", "not-interested", "callback", "wrong-number",
                                                              "do-not-call"])
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


def parse_window(text: str) -> Window:
    """"mon-fri 09:00-20:00" or "sat,sun 10:00-12:00" as a Window; ValueError says what is wrong."""
    m = _WINDOW_RE.match(text.strip().lower())
    if m is None:
        raise ValueError(f"{text!r} is not a window like 'mon-fri 09:00-20:00'")
    days: set[int] = set()
    for part in m["days"].split(","):
        first, _, last = part.partition("-")
        for name in (first, last or first):
            if name not in _DAYS:
                raise ValueError(f"{text!r}: {name!r} is not a day (mon..sun)")
        a, b = _DAYS.index(first), _DAYS.index(last or first)
        if b < a:
            raise ValueError(f"{text!r}: {part!r} runs backwards")
        days.update(range(a, b + 1))
    try:
        start = dt.time.fromisoformat(m["start"])
        end = dt.time.fromisoformat(m["end"]) if m["end"] != "24:00" else dt.time.max
    except ValueError:
        raise ValueError(f"{text!r}: not a time of day (00:00-24:00)") from None
    if end <= start:
        raise ValueError(f"{text!r}: the window ends before it starts")
    return Window(frozenset(days), start, end)


def _fail(where: str, name: str, message: str) -> ConfigError:
    return ConfigError(f"{where}.{name}: {message}")


def check_campaign(c: CampaignConfig, where: str = "campaign") -> None:
    """Validate every field of a campaign (not that its queue and trunk exist)."""
    hints = typing.get_type_hints(CampaignConfig)
    for f in dataclasses.fields(c):
        if f.name != "retry_minutes":  # check_type knows no dicts; checked below
            check_type(getattr(c, f.name), hints[f.name], where, f.name)
    if not isinstance(c.retry_minutes, dict):
        raise _fail(where, "retry_minutes", "must be a mapping of outcome to minutes")
    if not NAME_RE.match(c.name):
        raise _fail(where, "name", f"{c.name!r} is not a name (letters, digits, '_', '.', '-', up to 64)")
    for name in ("queue", "trunk"):
        if not NAME_RE.match(getattr(c, name)):
            raise _fail(where, name, f"{getattr(c, name)!r} is not a {name} name")
    if c.mode not in MODES:
        raise _fail(where, "mode", f"{c.mode!r} is not one of {', '.join(MODES)}")
    if c.state not in STATES:
        raise _fail(where, "state", f"{c.state!r} is not one of {', '.join(STATES)}")
    if c.caller_id and not CALLER_ID_RE.match(c.caller_id):
        raise _fail(where, "caller_id", f"{c.caller_id!r} is not a caller number (digits, optional leading +)")
    if len(c.script) > MAX_SCRIPT:
        raise _fail(where, "script", f"is longer than {MAX_SCRIPT} characters")
    if not c.dispositions:
        raise _fail(where, "dispositions", "needs at least one code")
    seen: set[str] = set()
    for i, code in enumerate(c.dispositions):
        if not DISPOSITION_RE.match(code):
            raise _fail(where, f"dispositions[{i}]", f"{code!r} is not a code (letters, digits, '_', '-', up to 32)")
        if code in seen:
            raise _fail(where, f"dispositions[{i}]", f"{code!r} is listed twice")
        seen.add(code)
    for outcome, minutes in c.retry_minutes.items():
        if outcome not in RETRYABLE:
            raise _fail(where, f"retry_minutes.{outcome}", f"is not one of {', '.join(RETRYABLE)}")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 43200:
            raise _fail(where, f"retry_minutes.{outcome}", f"{minutes!r} is not a number of minutes in 1..43200")
    if not 1 <= c.max_attempts <= 100:
        raise _fail(where, "max_attempts", f"{c.max_attempts} is not in 1..100")
    if not c.windows:
        raise _fail(where, "windows", "needs at least one calling window")
    for i, text in enumerate(c.windows):
        try:
            parse_window(text)
        except ValueError as exc:
            raise _fail(where, f"windows[{i}]", str(exc)) from None
    if not 0.0 <= c.abandon_cap <= 0.2:
        raise _fail(where, "abandon_cap", f"{c.abandon_cap} is not a fraction in 0..0.2 (3 % is 0.03)")
    if not 1 <= c.abandon_window_hours <= 24 * 90:
        raise _fail(where, "abandon_window_hours", f"{c.abandon_window_hours} is not in 1..2160")
    if not 0.5 <= c.abandon_seconds <= 10.0:
        raise _fail(where, "abandon_seconds", f"{c.abandon_seconds} is not in 0.5..10")
    if not 1.0 <= c.max_ratio <= 10.0:
        raise _fail(where, "max_ratio", f"{c.max_ratio} is not in 1..10")
    if c.machine_action not in MACHINE_ACTIONS:
        raise _fail(where, "machine_action", f"{c.machine_action!r} is not one of {', '.join(MACHINE_ACTIONS)}")
    if c.machine_action == "message" and not c.machine_message.strip():
        raise _fail(where, "machine_message", "must be set when machine_action is 'message'")
    if c.mode == "predictive" and not c.abandon_message.strip():
        # FTC 16 CFR 310.4(b)(4)(iii): an abandoned call gets a recorded message within 2 s.
        raise _fail(where, "abandon_message", "a predictive campaign must have a message for abandoned calls")
