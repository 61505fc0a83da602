"""IVR flow documents: parsing, node dataclasses and validation.

A flow is a versioned document (YAML or JSON)::

    {name, version, start, nodes: {id: {type: ..., ...}}}

`load_flow` is the one way to turn text into a `Flow`; every problem it finds is collected and raised
together in one `FlowError` whose messages name the node and field (``nodes.main_menu.options.1: unknown
node 'salse'``), so an admin fixes a document in one pass.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

NODE_TYPES = ("play", "menu", "collect", "hours", "lookup_caller", "set", "route", "hangup")
ROUTE_KINDS = ("queue", "extension", "voicemail", "external", "flow")
RECORD_MODES = ("none", "mixed", "stereo")
DTMF_KEYS = "0123456789*#ABCD"
MAX_RETRIES_CAP = 10
MAX_TIMEOUT_S = 120.0
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIGITS_RE = re.compile(r"^[0-9]+$")
_EXTERNAL_RE = re.compile(r"^\+?[0-9]{2,20}$")
_RANGE_RE = re.compile(r"^(?P<days>[a-z,\-]+)\s+(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$")
_SUBST_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FlowError(ValueError):
    """A flow document is invalid; `errors` holds one message per problem, each naming node and field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


@dataclass(frozen=True)
class Prompt:
    """A WAV file to play, or text to speak (``say: text``)."""

    kind: Literal["wav", "say"]
    value: str

    def __str__(self) -> str:
        return f"say:{self.value}" if self.kind == "say" else self.value


@dataclass(frozen=True)
class RouteTarget:
    """Where the call leaves the IVR: ``queue:<name>``, ``extension:<n>``, ``voicemail:<n>``,
    ``external:<number>`` or ``flow:<name>``."""

    kind: Literal["queue", "extension", "voicemail", "external", "flow"]
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


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
        t = local.time().replace(tzinfo=None)
        return self.start <= t and (self.end is None or t < self.end)


@dataclass(frozen=True)
class Node:
    """Fields every node has."""

    id: str
    sensitive: bool


@dataclass(frozen=True)
class PlayNode(Node):
    prompt: Prompt
    next: str


@dataclass(frozen=True)
class MenuNode(Node):
    prompt: Prompt
    options: dict[str, str]
    timeout: float = 5.0
    max_retries: int = 2
    on_invalid: str | None = None  # None: hang up once retries are exhausted
    on_timeout: str | None = None
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None


@dataclass(frozen=True)
class CollectNode(Node):
    prompt: Prompt
    variable: str
    next: str
    min_digits: int = 1
    max_digits: int = 16
    terminator: str = "#"  # "" for none
    timeout: float = 5.0
    max_retries: int = 2
    on_invalid: str | None = None
    on_timeout: str | None = None
    invalid_prompt: Prompt | None = None


@dataclass(frozen=True)
class HoursNode(Node):
    timezone: str
    open: tuple[WeeklyRange, ...]
    next_open: str
    next_closed: str
    holidays: frozenset[dt.date] = frozenset()
    yearly_holidays: frozenset[tuple[int, int]] = frozenset()  # (month, day) written "MM-DD"

    def is_open(self, now: dt.datetime) -> bool:
        """Open at `now`? An aware `now` is converted to the node's zone; a naive one is taken as local time there."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone) if now.tzinfo is not None else now.replace(tzinfo=zone)
        day = local.date()
        if day in self.holidays or (day.month, day.day) in self.yearly_holidays:
            return False
        return any(r.contains(local) for r in self.open)


@dataclass(frozen=True)
class LookupCallerNode(Node):
    next: str
    create: bool = True
    on_new: str | None = None  # where a caller unknown until now goes; None: `next`


@dataclass(frozen=True)
class SetNode(Node):
    variables: dict[str, str]
    next: str


@dataclass(frozen=True)
class RouteNode(Node):
    target: RouteTarget


@dataclass(frozen=True)
class HangupNode(Node):
    pass


@dataclass(frozen=True)
class Edge:
    """One arc of the flow graph: `field` is the document path; `consumes_input` is False when the caller
    can travel it without pressing a key (the loop check only follows those)."""

    field: str
    target: str
    consumes_input: bool


@dataclass(frozen=True)
class Flow:
    name: str
    version: int
    start: str
    nodes: dict[str, Node] = field(default_factory=dict)
    description: str = ""
    record: str = "none"  # none | mixed | stereo: record calls from the moment this flow answers


def edges(node: Node) -> list[Edge]:
    """Outgoing arcs of `node`, named by the field they come from."""
    p = f"nodes.{node.id}"
    out: list[Edge] = []
    if isinstance(node, PlayNode | SetNode):
        out.append(Edge(f"{p}.next", node.next, False))
    elif isinstance(node, MenuNode):
        out += [Edge(f"{p}.options.{k}", v, True) for k, v in node.options.items()]
        if node.on_invalid is not None:
            out.append(Edge(f"{p}.on_invalid", node.on_invalid, True))
        if node.on_timeout is not None:
            out.append(Edge(f"{p}.on_timeout", node.on_timeout, False))
    elif isinstance(node, CollectNode):
        out.append(Edge(f"{p}.next", node.next, True))
        if node.on_invalid is not None:
            out.append(Edge(f"{p}.on_invalid", node.on_invalid, True))
        if node.on_timeout is not None:
            out.append(Edge(f"{p}.on_timeout", node.on_timeout, False))
    elif isinstance(node, HoursNode):
        out += [Edge(f"{p}.next_open", node.next_open, False), Edge(f"{p}.next_closed", node.next_closed, False)]
    elif isinstance(node, LookupCallerNode):
        out.append(Edge(f"{p}.next", node.next, False))
        if node.on_new is not None:
            out.append(Edge(f"{p}.on_new", node.on_new, False))
    return out


def _ends_implicitly(node: Node) -> bool:
    """Route and hangup end a call's IVR; so does a menu/collect without an exhausted-retries destination."""
    if isinstance(node, RouteNode | HangupNode):
        return True
    if isinstance(node, MenuNode | CollectNode):
        return node.on_invalid is None or node.on_timeout is None
    return False


def substitute(text: str, variables: dict[str, str]) -> str:
    """Replace ``${name}`` by the variable's value; an unset variable becomes the empty string."""
    return _SUBST_RE.sub(lambda m: variables.get(m.group(1), ""), text)


class _Reader:
    """Reads one mapping's fields, recording type errors by path and, at `finish`, any key not read."""

    def __init__(self, path: str, raw: dict[str, Any], errors: list[str]) -> None:
        self.path, self.raw, self.errors = path, raw, errors
        self.seen: set[str] = set()

    def _get(self, key: str) -> Any:
        self.seen.add(key)
        return self.raw.get(key)

    def err(self, key: str, msg: str) -> None:
        self.errors.append(f"{self.path}.{key}: {msg}" if self.path else f"{key}: {msg}")

    def string(self, key: str, default: str | None = None, required: bool = True) -> str | None:
        v = self._get(key)
        if v is None:
            if required and default is None:
                self.err(key, "required")
            return default
        if isinstance(v, bool) or not isinstance(v, str | int):
            self.err(key, f"expected a string, got {type(v).__name__}")
            return default
        return str(v)

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        v = self._get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.err(key, f"expected a number, got {type(v).__name__}")
            return default
        if not lo <= v <= hi:
            self.err(key, f"must be between {lo:g} and {hi:g}, got {v}")
            return default
        return float(v)

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        v = self._get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            self.err(key, f"expected an integer, got {type(v).__name__}")
            return default
        if not lo <= v <= hi:
            self.err(key, f"must be between {lo} and {hi}, got {v}")
            return default
        return v

    def boolean(self, key: str, default: bool) -> bool:
        v = self._get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            self.err(key, f"expected true or false, got {v!r}")
            return default
        return v

    def prompt(self, key: str, required: bool = True) -> Prompt | None:
        v = self.string(key, required=required)
        if v is None:
            return None
        if v.startswith("say:"):
            text = v[4:].strip()
            if not text:
                self.err(key, "'say:' needs text to speak")
            return Prompt("say", text)
        if not v.lower().endswith(".wav"):
            self.err(key, f"expected a .wav path or 'say: text', got {v!r}")
        return Prompt("wav", v)

    def mapping(self, key: str) -> dict[str, Any] | None:
        v = self._get(key)
        if v is None:
            self.err(key, "required")
            return None
        if not isinstance(v, dict) or not v:
            self.err(key, "expected a non-empty mapping")
            return None
        return {str(k): val for k, val in v.items()}

    def finish(self, allowed: tuple[str, ...] = ()) -> None:
        for key in self.raw:
            if key not in self.seen and key not in allowed:
                self.err(str(key), "unknown key")


def _parse_range(text: str) -> WeeklyRange:
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
    start, end = _parse_hhmm(m.group("start"), allow_24=False), _parse_hhmm(m.group("end"), allow_24=True)
    if start is None:
        raise ValueError("a range cannot start at 24:00")
    if end is not None and end <= start:
        raise ValueError(f"end {m.group('end')} is not after start {m.group('start')}")
    return WeeklyRange(frozenset(days), start, end)


def _parse_hhmm(text: str, allow_24: bool) -> dt.time | None:
    """``HH:MM``; ``24:00`` (end of day, when allowed) is None."""
    hh, mm = int(text[:2]), int(text[3:])
    if allow_24 and (hh, mm) == (24, 0):
        return None
    if hh > 23 or mm > 59:
        raise ValueError(f"bad time {text!r}")
    return dt.time(hh, mm)


def _parse_node(node_id: str, raw: Any, errors: list[str]) -> Node | None:
    path = f"nodes.{node_id}"
    if not isinstance(raw, dict):
        errors.append(f"{path}: expected a mapping with a 'type'")
        return None
    r = _Reader(path, {str(k): v for k, v in raw.items()}, errors)
    kind = r.string("type")
    sensitive = r.boolean("sensitive", False)
    r.string("description", required=False)
    if kind is None:
        return None
    if kind not in NODE_TYPES:
        r.err("type", f"unknown node type {kind!r} (expected one of {', '.join(NODE_TYPES)})")
        return None
    n_err = len(errors)
    node: Node | None = None
    if kind == "play":
        prompt, nxt = r.prompt("prompt"), r.string("next")
        if prompt and nxt:
            node = PlayNode(node_id, sensitive, prompt, nxt)
    elif kind == "menu":
        node = _parse_menu(node_id, sensitive, r)
    elif kind == "collect":
        node = _parse_collect(node_id, sensitive, r)
    elif kind == "hours":
        node = _parse_hours(node_id, sensitive, r)
    elif kind == "lookup_caller":
        nxt = r.string("next")
        create, on_new = r.boolean("create", True), r.string("on_new", required=False)
        if nxt:
            node = LookupCallerNode(node_id, sensitive, nxt, create, on_new)
    elif kind == "set":
        values = r.mapping("variables")
        nxt = r.string("next")
        clean: dict[str, str] = {}
        for k, v in (values or {}).items():
            if not _VAR_RE.match(k):
                errors.append(f"{path}.variables.{k}: not a valid variable name")
            elif isinstance(v, bool) or not isinstance(v, str | int | float):
                errors.append(f"{path}.variables.{k}: expected a string value")
            else:
                clean[k] = str(v)
        if values and nxt:
            node = SetNode(node_id, sensitive, clean, nxt)
    elif kind == "route":
        target = _parse_target(r)
        if target:
            node = RouteNode(node_id, sensitive, target)
    else:
        node = HangupNode(node_id, sensitive)
    r.finish()
    return node if len(errors) == n_err else None


def _parse_menu(node_id: str, sensitive: bool, r: _Reader) -> MenuNode | None:
    prompt = r.prompt("prompt")
    options = r.mapping("options")
    clean: dict[str, str] = {}
    for k, v in (options or {}).items():
        if len(k) != 1 or k not in DTMF_KEYS:
            r.errors.append(f"{r.path}.options.{k}: option keys are single DTMF keys ({DTMF_KEYS})")
        elif not isinstance(v, str):
            r.errors.append(f"{r.path}.options.{k}: expected a node id")
        else:
            clean[k] = v
    node = MenuNode(
        node_id, sensitive, prompt or Prompt("say", ""), clean,
        timeout=r.number("timeout", 5.0, 0.5, MAX_TIMEOUT_S),
        max_retries=r.integer("max_retries", 2, 0, MAX_RETRIES_CAP),
        on_invalid=r.string("on_invalid", required=False), on_timeout=r.string("on_timeout", required=False),
        invalid_prompt=r.prompt("invalid_prompt", required=False),
        timeout_prompt=r.prompt("timeout_prompt", required=False),
    )
    return node if prompt and options else None


def _parse_collect(node_id: str, sensitive: bool, r: _Reader) -> CollectNode | None:
    prompt, variable, nxt = r.prompt("prompt"), r.string("variable"), r.string("next")
    if variable is not None and not _VAR_RE.match(variable):
        r.err("variable", f"not a valid variable name: {variable!r}")
    lo, hi = r.integer("min_digits", 1, 1, 64), r.integer("max_digits", 16, 1, 64)
    if lo > hi:
        r.err("min_digits", f"{lo} is more than max_digits {hi}")
    term = r.string("terminator", "#", required=False) or ""
    if term not in ("", "#", "*"):
        r.err("terminator", f"expected '#', '*' or '', got {term!r}")
    node = CollectNode(
        node_id, sensitive, prompt or Prompt("say", ""), variable or "", nxt or "",
        min_digits=lo, max_digits=hi, terminator=term,
        timeout=r.number("timeout", 5.0, 0.5, MAX_TIMEOUT_S),
        max_retries=r.integer("max_retries", 2, 0, MAX_RETRIES_CAP),
        on_invalid=r.string("on_invalid", required=False), on_timeout=r.string("on_timeout", required=False),
        invalid_prompt=r.prompt("invalid_prompt", required=False),
    )
    return node if prompt and variable and nxt else None


def _parse_hours(node_id: str, sensitive: bool, r: _Reader) -> HoursNode | None:
    tz = r.string("timezone")
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            r.err("timezone", f"unknown time zone {tz!r}")
    raw_open = r._get("open")
    ranges: list[WeeklyRange] = []
    if not isinstance(raw_open, list) or not raw_open:
        r.err("open", "expected a non-empty list like ['mon-fri 08:30-18:00']")
    else:
        for i, item in enumerate(raw_open):
            try:
                ranges.append(_parse_range(str(item)))
            except ValueError as exc:
                r.errors.append(f"{r.path}.open.{i}: {exc}")
    raw_hol = r._get("holidays") or []
    days: set[dt.date] = set()
    yearly: set[tuple[int, int]] = set()
    if not isinstance(raw_hol, list):
        r.err("holidays", "expected a list of dates (YYYY-MM-DD, or MM-DD for every year)")
        raw_hol = []
    for i, item in enumerate(raw_hol):
        try:
            if isinstance(item, dt.date):  # YAML already parsed an unquoted ISO date
                days.add(item)
            elif isinstance(item, str) and re.fullmatch(r"\d{2}-\d{2}", item):
                d = dt.date(2000, int(item[:2]), int(item[3:]))  # 2000 is a leap year: 02-29 is valid
                yearly.add((d.month, d.day))
            else:
                days.add(dt.date.fromisoformat(str(item)))
        except ValueError:
            r.errors.append(f"{r.path}.holidays.{i}: expected YYYY-MM-DD or MM-DD, got {item!r}")
    nopen, nclosed = r.string("next_open"), r.string("next_closed")
    if tz and ranges and nopen and nclosed:
        return HoursNode(node_id, sensitive, tz, tuple(ranges), nopen, nclosed, frozenset(days), frozenset(yearly))
    return None


def _parse_target(r: _Reader) -> RouteTarget | None:
    text = r.string("target")
    if text is None:
        return None
    kind, sep, value = text.partition(":")
    value = value.strip()
    if not sep or kind not in ROUTE_KINDS:
        r.err("target", f"expected one of {', '.join(k + ':...' for k in ROUTE_KINDS)}, got {text!r}")
        return None
    ok = {
        "queue": bool(_NAME_RE.match(value)), "flow": bool(_NAME_RE.match(value)),
        "extension": bool(_DIGITS_RE.match(value)), "voicemail": bool(_DIGITS_RE.match(value)),
        "external": bool(_EXTERNAL_RE.match(value)),
    }[kind]
    if not ok:
        r.err("target", f"bad {kind} {value!r}")
        return None
    return RouteTarget(kind, value)  # type: ignore[arg-type]  # kind checked against ROUTE_KINDS


def _check_graph(flow: Flow, errors: list[str]) -> None:
    """References exist, every node is reachable, every node can reach an end, no input-free loop."""
    nodes = flow.nodes
    if flow.start not in nodes:
        errors.append(f"start: unknown node {flow.start!r}")
        return
    graph = {nid: edges(n) for nid, n in nodes.items()}
    dangling = False
    for out in graph.values():
        for e in out:
            if e.target not in nodes:
                errors.append(f"{e.field}: unknown node {e.target!r}")
                dangling = True
    if dangling:
        return
    seen, todo = {flow.start}, [flow.start]
    while todo:
        for e in graph[todo.pop()]:
            if e.target not in seen:
                seen.add(e.target)
                todo.append(e.target)
    for nid in nodes:
        if nid not in seen:
            errors.append(f"nodes.{nid}: unreachable from start {flow.start!r}")
    # Every node must be able to reach a route/hangup: walk backwards from the ends.
    ends = {nid for nid, n in nodes.items() if _ends_implicitly(n)}
    changed = True
    while changed:
        changed = False
        for nid, out in graph.items():
            if nid not in ends and any(e.target in ends for e in out):
                ends.add(nid)
                changed = True
    for nid in nodes:
        if nid in seen and nid not in ends:
            errors.append(f"nodes.{nid}: no path from here ends in a route or hangup")
    # A cycle made only of arcs that need no key press would spin forever on a silent caller.
    color: dict[str, int] = {}

    def visit(nid: str, stack: list[str]) -> None:
        color[nid] = 1
        for e in graph[nid]:
            if e.consumes_input:
                continue
            if color.get(e.target) == 1:
                loop = stack[stack.index(e.target):] + [nid, e.target] if e.target in stack else [nid, e.target]
                errors.append(f"{e.field}: loop without caller input ({' -> '.join(loop)})")
            elif e.target not in color:
                visit(e.target, stack + [nid])
        color[nid] = 2

    for nid in nodes:
        if nid not in color:
            visit(nid, [])


def load_flow(text: str) -> Flow:
    """Parse and validate a flow document (YAML or JSON); raises FlowError listing every problem."""
    try:
        raw = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except RecursionError:
        raise FlowError(["document: nested too deeply"]) from None
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        # Besides YAMLError, PyYAML's constructors raise ValueError for an impossible date
        # (2026-02-30) and TypeError for an unhashable key (found by fuzz/ivr_flow).
        raise FlowError([f"document: not valid YAML/JSON: {exc}"]) from exc
    if not isinstance(raw, dict):
        raise FlowError(["document: expected a mapping with name, version, start and nodes"])
    errors: list[str] = []
    top = _Reader("", {str(k): v for k, v in raw.items()}, errors)
    name = top.string("name")
    if name is not None and not _NAME_RE.match(name):
        top.err("name", f"use letters, digits, '.', '_', '-': {name!r}")
    version = top.integer("version", 0, 1, 2**31)
    if "version" not in raw:
        top.err("version", "required")
    start = top.string("start")
    description = top.string("description", "", required=False) or ""
    record = top.string("record", "none", required=False) or "none"
    if record not in RECORD_MODES:
        top.err("record", f"expected one of {', '.join(RECORD_MODES)}, got {record!r}")
    raw_nodes = top.mapping("nodes")
    top.finish()
    nodes: dict[str, Node] = {}
    for nid, body in (raw_nodes or {}).items():
        node = _parse_node(nid, body, errors)
        if node is not None:
            nodes[nid] = node
    if errors:
        raise FlowError(errors)
    flow = Flow(name or "", version, start or "", nodes, description, record)
    _check_graph(flow, errors)
    if errors:
        raise FlowError(errors)
    return flow


def load_flow_file(path: str) -> Flow:
    """Read and validate a flow file."""
    with open(path, encoding="utf-8") as fh:
        return load_flow(fh.read())
