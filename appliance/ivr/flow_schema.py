"""The IVR flow document's schema: one pydantic model per node type, and the flow's top level.

Every problem of a document is found in one pass, each naming node and field
(``nodes.main_menu.timeout: must be between 0.5 and 120, got -1``): the models are the
validation layer's (appliance/schema), with the flow format's own words and paths (dots, list
items as ``open.1``). appliance/ivr/flow.py builds the Flow from them and checks its graph.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

from appliance.schema import destinations
from appliance.schema.errors import FieldError, Problems, field_errors

NODE_TYPES = ("play", "menu", "collect", "hours", "lookup_caller", "set", "route", "hangup")
ROUTE_KINDS = ("queue", "extension", "voicemail", "external", "flow")
RECORD_MODES = ("none", "mixed", "stereo")
DTMF_KEYS = "0123456789*#ABCD"
MAX_RETRIES_CAP = 10
MAX_TIMEOUT_S = 120.0
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RANGE_RE = re.compile(r"^(?P<days>[a-z,\-]+)\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$")


@dataclass(frozen=True)
class Prompt:
    """A WAV file to play, or text to speak (``say: text``)."""

    kind: Literal["wav", "say"]
    value: str

    def __str__(self) -> str:
        return f"say:{self.value}" if self.kind == "say" else self.value


@dataclass(frozen=True)
class RouteTarget:
    """Where the call leaves the IVR; `kind` as the engine routes it (``flow`` is an ``ivr:`` destination,
    ``extension`` a bare number)."""

    kind: Literal["queue", "extension", "voicemail", "external", "flow"]
    value: str

    def __str__(self) -> str:
        # The engine's spelling (transcripts, logs); `destination` is the one a person writes.
        return f"{self.kind}:{self.value}"

    @property
    def destination(self) -> str:
        """The target in the one destination syntax (``1001``, ``ivr:menu``)."""
        return str(destinations.Destination(_SYNTAX_KIND.get(self.kind, self.kind), self.value))  # type: ignore[arg-type]


@dataclass(frozen=True)
class WeeklyRange:
    """Open on `days` (0 = Monday) from `start` to `end` local wall-clock time; end 24:00 is midnight."""

    days: frozenset[int]
    start: dt.time
    end: dt.time | None  # None means 24:00

    def contains(self, local: dt.datetime) -> bool:
        """True when the local wall-clock time falls inside this range."""
        if local.weekday() not in self.days:
            return False
        t = local.time()
        return self.start <= t and (self.end is None or t < self.end)


def parse_range(text: str) -> WeeklyRange:
    """``mon-fri 08:30-18:00``, ``sat 09:00-12:00``, ``mon,wed,fri 14:00-24:00``; raises ValueError."""
    m = _RANGE_RE.match(text.strip().lower())
    if m is None:
        raise ValueError(f"expected 'mon-fri 08:30-18:00', got {text!r}")
    days: set[int] = set()
    for part in m.group("days").split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"unknown day in {part!r} (use {', '.join(DAYS)})")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))  # "fri-mon" wraps over the weekend
    start, end = parse_hhmm(m.group("start"), allow_24=False), parse_hhmm(m.group("end"), allow_24=True)
    if start is None:
        raise ValueError("a range cannot start at 24:00")
    if end is not None and end <= start:
        raise ValueError(f"end {m.group('end')} is not after start {m.group('start')}")
    return WeeklyRange(frozenset(days), start, end)


def parse_hhmm(text: str, allow_24: bool) -> dt.time | None:
    """``HH:MM``; ``24:00`` (end of day, when allowed) is None."""
    hh, mm = int(text[:2]), int(text[3:])
    if allow_24 and (hh, mm) == (24, 0):
        return None
    if hh > 23 or mm > 59:
        raise ValueError(f"bad time {text!r}")
    return dt.time(hh, mm)


# -- field types: a key left out and a key set to null read alike, as the default ---------------------
class _Absent:
    """The default of every field: the validators see it, so a missing required key says "required"."""


ABSENT: Any = _Absent()


def _field(check: Callable[[Any], Any]) -> Any:
    return BeforeValidator(check)


def _present(v: Any) -> bool:
    return v is not None and v is not ABSENT


def text(required: bool = True, default: str | None = None) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not _present(v):
            if required and default is None:
                raise ValueError("required")
            return default
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise ValueError(f"expected a string, got {type(v).__name__}")
        return str(v)
    return check


def number(default: float, lo: float, hi: float) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if not _present(v):
            return default
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"expected a number, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo:g} and {hi:g}, got {v}")
        return float(v)
    return check


def integer(default: int, lo: int, hi: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if not _present(v):
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {v}")
        return v
    return check


def boolean(default: bool) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not _present(v):
            return default
        if not isinstance(v, bool):
            raise ValueError(f"expected true or false, got {v!r}")
        return v
    return check


def prompt(required: bool = True) -> Callable[[Any], Prompt | None]:
    as_text = text(required=required)

    def check(v: Any) -> Prompt | None:
        value = as_text(v)
        if value is None:
            return None
        if value.startswith("say:"):
            spoken = value[4:].strip()
            if not spoken:
                raise ValueError("'say:' needs text to speak")
            return Prompt("say", spoken)
        if not value.lower().endswith(".wav"):
            raise ValueError(f"expected a .wav path or 'say: text', got {value!r}")
        return Prompt("wav", value)
    return check


def _mapping(v: Any) -> dict[str, Any]:
    if not _present(v):
        raise ValueError("required")
    if not isinstance(v, dict) or not v:
        raise ValueError("expected a non-empty mapping")
    return {str(k): val for k, val in v.items()}


Text = Annotated[str, _field(text())]
OptText = Annotated[str | None, _field(text(required=False))]
Bool = Annotated[bool, _field(boolean(False))]
Mapping = Annotated[dict[str, Any], _field(_mapping)]
Timeout = Annotated[float, _field(number(5.0, 0.5, MAX_TIMEOUT_S))]
Retries = Annotated[int, _field(integer(2, 0, MAX_RETRIES_CAP))]
Prompted = Annotated[Prompt, _field(prompt())]
OptPrompt = Annotated[Prompt | None, _field(prompt(required=False))]


class FlowRecord(BaseModel):
    """Base of the flow's models: a key that is not a field is an error ("unknown key")."""

    # Every field defaults to ABSENT and is validated even then: its check says "required".
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class NodeHead(FlowRecord):
    """What every node has; read alone when the type is missing or unknown."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    type: Text = ABSENT
    sensitive: Bool = ABSENT
    description: OptText = ABSENT


class NodeFields(FlowRecord):
    type: Text = ABSENT
    sensitive: Bool = ABSENT
    description: OptText = ABSENT


class PlayFields(NodeFields):
    prompt: Prompted = ABSENT
    next: Text = ABSENT


class MenuFields(NodeFields):
    prompt: Prompted = ABSENT
    options: Mapping = ABSENT
    timeout: Timeout = ABSENT
    max_retries: Retries = ABSENT
    on_invalid: OptText = ABSENT
    on_timeout: OptText = ABSENT
    invalid_prompt: OptPrompt = ABSENT
    timeout_prompt: OptPrompt = ABSENT

    @field_validator("options")
    @classmethod
    def _keys(cls, v: dict[str, Any]) -> dict[str, str]:
        errors: list[FieldError] = []
        for k, target in v.items():
            if len(k) != 1 or k not in DTMF_KEYS:
                errors.append(FieldError((k,), f"option keys are single DTMF keys ({DTMF_KEYS})"))
            elif not isinstance(target, str):
                errors.append(FieldError((k,), "expected a node id"))
        if errors:
            raise Problems(errors)
        return v


class CollectFields(NodeFields):
    prompt: Prompted = ABSENT
    variable: Text = ABSENT
    next: Text = ABSENT
    min_digits: Annotated[int, _field(integer(1, 1, 64))] = ABSENT
    max_digits: Annotated[int, _field(integer(16, 1, 64))] = ABSENT
    terminator: Annotated[str, _field(text(default="#", required=False))] = ABSENT
    timeout: Timeout = ABSENT
    max_retries: Retries = ABSENT
    on_invalid: OptText = ABSENT
    on_timeout: OptText = ABSENT
    invalid_prompt: OptPrompt = ABSENT

    @field_validator("variable")
    @classmethod
    def _variable(cls, v: str) -> str:
        if not VAR_RE.match(v):
            raise ValueError(f"not a valid variable name: {v!r}")
        return v

    @field_validator("max_digits")
    @classmethod
    def _digits(cls, v: int, info: Any) -> int:
        lo = info.data.get("min_digits")
        if lo is not None and lo > v:
            raise Problems([FieldError(("min_digits",), f"{lo} is more than max_digits {v}")], of_record=True)
        return v

    @field_validator("terminator")
    @classmethod
    def _terminator(cls, v: str) -> str:
        if v not in ("", "#", "*"):
            raise ValueError(f"expected '#', '*' or '', got {v!r}")
        return v


def _ranges(v: Any) -> tuple[WeeklyRange, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError("expected a non-empty list like ['mon-fri 08:30-18:00']")
    ranges, errors = [], []
    for i, item in enumerate(v):
        try:
            ranges.append(parse_range(str(item)))
        except ValueError as exc:
            errors.append(FieldError((i,), str(exc)))
    if errors:
        raise Problems(errors)
    return tuple(ranges)


def _holidays(v: Any) -> tuple[frozenset[dt.date], frozenset[tuple[int, int]]]:
    if v is ABSENT or not v:
        return frozenset(), frozenset()  # null, [] or another empty value: no holidays
    if not isinstance(v, list):
        raise ValueError("expected a list of dates (YYYY-MM-DD, or MM-DD for every year)")
    days: set[dt.date] = set()
    yearly: set[tuple[int, int]] = set()
    errors = []
    for i, item in enumerate(v):
        try:
            if isinstance(item, dt.date):  # YAML already parsed an unquoted ISO date
                days.add(item)
            elif isinstance(item, str) and re.fullmatch(r"\d{2}-\d{2}", item):
                d = dt.date(2000, int(item[:2]), int(item[3:]))  # 2000 is a leap year: 02-29 is valid
                yearly.add((d.month, d.day))
            else:
                days.add(dt.date.fromisoformat(str(item)))
        except ValueError:
            errors.append(FieldError((i,), f"expected YYYY-MM-DD or MM-DD, got {item!r}"))
    if errors:
        raise Problems(errors)
    return frozenset(days), frozenset(yearly)


class HoursFields(NodeFields):
    timezone: Text = ABSENT
    open: Annotated[tuple[WeeklyRange, ...], _field(_ranges)] = ABSENT
    holidays: Annotated[tuple[frozenset[dt.date], frozenset[tuple[int, int]]], _field(_holidays)] = ABSENT
    next_open: Text = ABSENT
    next_closed: Text = ABSENT

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class LookupCallerFields(NodeFields):
    next: Text = ABSENT
    create: Annotated[bool, _field(boolean(True))] = ABSENT
    on_new: OptText = ABSENT


class SetFields(NodeFields):
    variables: Mapping = ABSENT
    next: Text = ABSENT

    @field_validator("variables")
    @classmethod
    def _names(cls, v: dict[str, Any]) -> dict[str, str]:
        errors: list[FieldError] = []
        clean: dict[str, str] = {}
        for k, value in v.items():
            if not VAR_RE.match(k):
                errors.append(FieldError((k,), "not a valid variable name"))
            elif isinstance(value, bool) or not isinstance(value, str | int | float):
                errors.append(FieldError((k,), "expected a string value"))
            else:
                clean[k] = str(value)
        if errors:
            raise Problems(errors)
        return clean


def _target(v: Any) -> RouteTarget:
    """A route node's target in the one destination syntax (appliance/schema/destinations.py):
    ``1001``, ``voicemail:1001``, ``queue:support``, ``ivr:menu``, ``external:+3312345678``;
    the older ``extension:1001`` and ``flow:menu`` still read."""
    value_text = text()(v) or ""  # required: never None
    try:
        dest = destinations.parse(value_text, external=True)
    except ValueError:
        kind, sep, value = value_text.partition(":")
        if sep and _SYNTAX_KIND.get(kind, kind) in _SYNTAX_KINDS:
            raise ValueError(f"bad {kind} {value.strip()!r}") from None
        raise ValueError("expected one of queue:..., voicemail:..., ivr:..., external:... or an extension number"
                         f", got {value_text!r}") from None
    return RouteTarget(_RUNTIME_KIND.get(dest.kind, dest.kind), dest.value)  # type: ignore[arg-type]


# The destination kinds as the engine's RouteTarget names them (pbx/dialplan.py FLOW_TARGETS).
_RUNTIME_KIND = {"ivr": "flow"}
_SYNTAX_KIND = {"flow": "ivr"}
_SYNTAX_KINDS = ("extension", "voicemail", "queue", "ivr", "external")


class RouteFields(NodeFields):
    target: Annotated[RouteTarget, _field(_target)] = ABSENT


class HangupFields(NodeFields):
    pass


NODE_MODELS: dict[str, type[NodeFields]] = {
    "play": PlayFields, "menu": MenuFields, "collect": CollectFields, "hours": HoursFields,
    "lookup_caller": LookupCallerFields, "set": SetFields, "route": RouteFields, "hangup": HangupFields,
}


def _version(v: Any) -> int:
    if v is ABSENT:
        raise ValueError("required")
    return integer(0, 1, 2**31)(v)


def _record_mode(v: Any) -> str:
    mode = text(required=False, default="none")(v) or "none"
    if mode not in RECORD_MODES:
        raise ValueError(f"expected one of {', '.join(RECORD_MODES)}, got {mode!r}")
    return mode


class FlowFields(FlowRecord):
    """The flow document's top level: name, version, start node, nodes (checked one by one)."""

    name: Text = ABSENT
    version: Annotated[int, _field(_version)] = ABSENT
    start: Text = ABSENT
    description: Annotated[str, _field(text(required=False, default=""))] = ABSENT
    record: Annotated[str, _field(_record_mode)] = ABSENT
    nodes: Mapping = ABSENT

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"use letters, digits, '.', '_', '-': {v!r}")
        return v


def check(model: type[FlowRecord], raw: dict[str, Any], prefix: tuple[str, ...],
          errors: list[FieldError]) -> Any:
    """`raw` checked by `model`, or None with every problem appended to `errors`."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors.extend(field_errors(exc, prefix, unknown="unknown key"))
        return None


def flow_message(error: FieldError) -> str:
    """A FieldError as the flow format writes paths: ``nodes.a.open.1: ...``."""
    return f"{'.'.join(str(p) for p in error.loc)}: {error.msg}" if error.loc else error.msg


