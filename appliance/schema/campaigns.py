"""The outbound campaign record's model, and its calling windows.

A calling window is written the way a compliance officer states it ("mon-fri 10:00-13:00");
`parse_window` reads one, for the model's check and for the dialer that judges a lead's local
time against it (appliance/dialer/campaign.py re-exports both).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, field_validator, model_validator

from appliance.schema.errors import FieldError, Problems, problem
from appliance.schema.records import CALLER_HELP, CALLER_ID_RE, NAME_HELP, NAME_RE
from appliance.schema.records import text as free_text
from appliance.schema.types import Flag, Number, Record, Text, TextList, Whole, matches, one_of

MODES = ("preview", "progressive", "predictive")
STATES = ("paused", "running", "finished")
# Outcomes a retry rule may name: an agent's callback is scheduled at the time the lead asked for.
RETRYABLE = ("no-answer", "busy", "failed", "machine", "abandoned")
MACHINE_ACTIONS = ("hangup", "message")
DEFAULT_WINDOWS = ("mon-fri 09:00-20:00", "sat 09:00-13:00")
DEFAULT_RETRY = {"no-answer": 120, "busy": 15, "failed": 60, "machine": 240, "abandoned": 60}
DEFAULT_DISPOSITIONS = ("sale", "not-interested", "callback", "wrong-number", "do-not-call")
DISPOSITION_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_SCRIPT = 20_000
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW_RE = re.compile(r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
                        r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$")


@dataclass(frozen=True)
class Window:
    """Days of the week (0 = Monday) and a [start, end) time of day, local to the lead."""

    days: frozenset[int]
    start: dt.time
    end: dt.time

    def contains(self, local: dt.datetime) -> bool:
        return local.weekday() in self.days and self.start <= local.time() < self.end


def parse_window(text: str) -> Window:
    """"mon-fri 09:00-20:00" or "sat,sun 10:00-12:00" as a Window; ValueError says what is wrong."""
    m = _WINDOW_RE.match(text.strip().lower())
    if m is None:
        raise ValueError(f"{text!r} is not a window like 'mon-fri 09:00-20:00'")
    days: set[int] = set()
    for part in m["days"].split(","):
        first, _, last = part.partition("-")
        for name in (first, last or first):
            if name not in DAYS:
                raise ValueError(f"{text!r}: {name!r} is not a day (mon..sun)")
        a, b = DAYS.index(first), DAYS.index(last or first)
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


def _mapping(value: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of outcome to minutes")
    return value


def _between(value: float, low: float, high: float, shown: str) -> float:
    if not low <= value <= high:
        raise ValueError(f"{value} is not in {shown}")
    return value


class CampaignRecord(Record):
    """One outbound campaign as the admin configures it (appliance.dialer.campaign.CampaignConfig)."""

    name: Text
    queue: Text
    trunk: Text
    mode: Text = "progressive"
    caller_id: Text = ""
    script: Text = ""
    dispositions: TextList = list(DEFAULT_DISPOSITIONS)
    retry_minutes: Annotated[dict[Any, Any], BeforeValidator(_mapping)] = dict(DEFAULT_RETRY)
    max_attempts: Whole = 5
    windows: TextList = list(DEFAULT_WINDOWS)
    country: Text = ""
    abandon_cap: Number = 0.03
    abandon_window_hours: Whole = 720
    abandon_seconds: Number = 2.0
    max_ratio: Number = 3.0
    amd: Flag = True
    machine_action: Text = "hangup"
    machine_message: Text = ""
    abandon_message: Text = "Sorry, we called you but no one is free to take the call. We will call you back."
    state: Text = "paused"
    label: Text = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v and not v.isascii():
            raise ValueError(f"{v!r} is not {NAME_HELP}: it is the campaign's identifier (in URLs and "
                             "reports); write it with accents as the display name")
        return matches(v, NAME_RE, NAME_HELP) or v

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        return free_text(v, required=False)

    @field_validator("queue", "trunk")
    @classmethod
    def _reference(cls, v: str, info: Any) -> str:
        return matches(v, NAME_RE, f"a {info.field_name} name") or v

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        return one_of(v, MODES)

    @field_validator("state")
    @classmethod
    def _state(cls, v: str) -> str:
        return one_of(v, STATES)

    @field_validator("caller_id")
    @classmethod
    def _caller(cls, v: str) -> str:
        return (matches(v, CALLER_ID_RE, CALLER_HELP) or v) if v else v

    @field_validator("script")
    @classmethod
    def _script(cls, v: str) -> str:
        if len(v) > MAX_SCRIPT:
            raise ValueError(f"is longer than {MAX_SCRIPT} characters")
        return v

    @field_validator("dispositions")
    @classmethod
    def _dispositions(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one code")
        errors: list[FieldError] = []
        seen: set[str] = set()
        for i, code in enumerate(v):
            if not DISPOSITION_RE.match(code):
                errors.append(FieldError((i,), f"{code!r} is not a code (letters, digits, '_', '-', up to 32)"))
            elif code in seen:
                errors.append(FieldError((i,), f"{code!r} is listed twice"))
            seen.add(code)
        if errors:
            raise Problems(errors)
        return v

    @field_validator("retry_minutes")
    @classmethod
    def _retry(cls, v: dict[Any, Any]) -> dict[Any, Any]:
        errors: list[FieldError] = []
        for outcome, minutes in v.items():
            if outcome not in RETRYABLE:
                errors.append(FieldError((outcome,), f"is not one of {', '.join(RETRYABLE)}"))
            elif not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 43200:
                errors.append(FieldError((outcome,), f"{minutes!r} is not a number of minutes in 1..43200"))
        if errors:
            raise Problems(errors)
        return v

    @field_validator("max_attempts")
    @classmethod
    def _attempts(cls, v: int) -> int:
        return int(_between(v, 1, 100, "1..100"))

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("needs at least one calling window")
        errors: list[FieldError] = []
        for i, line in enumerate(v):
            try:
                parse_window(line)
            except ValueError as exc:
                errors.append(FieldError((i,), str(exc)))
        if errors:
            raise Problems(errors)
        return v

    @field_validator("abandon_cap")
    @classmethod
    def _cap(cls, v: float) -> float:
        if not 0.0 <= v <= 0.2:
            raise ValueError(f"{v} is not a fraction in 0..0.2 (3 % is 0.03)")
        return v

    @field_validator("abandon_window_hours")
    @classmethod
    def _abandon_window(cls, v: int) -> int:
        return int(_between(v, 1, 24 * 90, "1..2160"))

    @field_validator("abandon_seconds")
    @classmethod
    def _abandon_seconds(cls, v: float) -> float:
        return _between(v, 0.5, 10.0, "0.5..10")

    @field_validator("max_ratio")
    @classmethod
    def _ratio(cls, v: float) -> float:
        return _between(v, 1.0, 10.0, "1..10")

    @field_validator("machine_action")
    @classmethod
    def _machine_action(cls, v: str) -> str:
        return one_of(v, MACHINE_ACTIONS)

    @model_validator(mode="after")
    def _messages(self) -> CampaignRecord:
        if self.machine_action == "message" and not self.machine_message.strip():
            raise problem("must be set when machine_action is 'message'", "machine_message")
        if self.mode == "predictive" and not self.abandon_message.strip():
            # FTC 16 CFR 310.4(b)(4)(iii): an abandoned call gets a recorded message within 2 s.
            raise problem("a predictive campaign must have a message for abandoned calls", "abandon_message")
        return self
