"""IVR flow documents: parsing, node dataclasses and validation.

A flow is a versioned document (YAML or JSON)::

    {name, version, start, nodes: {id: {type: ..., ...}}}

`load_flow` is the one way to turn text into a `Flow`; every problem it finds is collected and raised
together in one `FlowError` whose messages name the node and field (``nodes.main_menu.options.1: unknown
node 'salse'``), so an admin fixes a document in one pass.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from appliance.schema.destinations import Catalogue
from appliance.schema.errors import FieldError

# The schema of the document (one pydantic model per node type) and its value types; their names
# stay importable from here.
from appliance.ivr.flow_schema import (
    DAYS as DAYS,
)
from appliance.ivr.flow_schema import (
    DTMF_KEYS as DTMF_KEYS,
)
from appliance.ivr.flow_schema import (
    MAX_RETRIES_CAP as MAX_RETRIES_CAP,
)
from appliance.ivr.flow_schema import (
    MAX_TIMEOUT_S as MAX_TIMEOUT_S,
)
from appliance.ivr.flow_schema import (
    NODE_MODELS,
    FlowFields,
    NodeHead,
    check,
    flow_message,
)
from appliance.ivr.flow_schema import (
    NODE_TYPES as NODE_TYPES,
)
from appliance.ivr.flow_schema import (
    RECORD_MODES as RECORD_MODES,
)
from appliance.ivr.flow_schema import (
    ROUTE_KINDS as ROUTE_KINDS,
)
from appliance.ivr.flow_schema import Prompt as Prompt
from appliance.ivr.flow_schema import RouteTarget as RouteTarget
from appliance.ivr.flow_schema import WeeklyRange as WeeklyRange

_SUBST_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FlowError(ValueError):
    """A flow document is invalid: `fields` holds every problem as a FieldError (its path in the
    document, ("nodes", "main_menu", "timeout")), `errors` the same as messages naming node and field."""

    def __init__(self, errors: Sequence[str | FieldError]) -> None:
        self.fields = tuple(e if isinstance(e, FieldError) else FieldError((), e) for e in errors)
        self.errors = [flow_message(e) for e in self.fields]
        super().__init__("; ".join(self.errors))


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

    loc: tuple[str, ...]
    target: str
    consumes_input: bool

    @property
    def field(self) -> str:
        return ".".join(self.loc)


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
    p = ("nodes", node.id)
    out: list[Edge] = []
    if isinstance(node, PlayNode | SetNode):
        out.append(Edge((*p, "next"), node.next, False))
    elif isinstance(node, MenuNode):
        out += [Edge((*p, "options", k), v, True) for k, v in node.options.items()]
        if node.on_invalid is not None:
            out.append(Edge((*p, "on_invalid"), node.on_invalid, True))
        if node.on_timeout is not None:
            out.append(Edge((*p, "on_timeout"), node.on_timeout, False))
    elif isinstance(node, CollectNode):
        out.append(Edge((*p, "next"), node.next, True))
        if node.on_invalid is not None:
            out.append(Edge((*p, "on_invalid"), node.on_invalid, True))
        if node.on_timeout is not None:
            out.append(Edge((*p, "on_timeout"), node.on_timeout, False))
    elif isinstance(node, HoursNode):
        out += [Edge((*p, "next_open"), node.next_open, False), Edge((*p, "next_closed"), node.next_closed, False)]
    elif isinstance(node, LookupCallerNode):
        out.append(Edge((*p, "next"), node.next, False))
        if node.on_new is not None:
            out.append(Edge((*p, "on_new"), node.on_new, False))
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


def _parse_node(node_id: str, raw: Any, errors: list[FieldError]) -> Node | None:
    """One node checked by the model of its type (appliance/ivr/flow_schema.py), or None."""
    path = ("nodes", node_id)
    if not isinstance(raw, dict):
        errors.append(FieldError(path, "expected a mapping with a 'type'"))
        return None
    raw = {str(k): v for k, v in raw.items()}
    kind = raw.get("type")
    model = NODE_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        # No type, or one we do not know: only the fields every node has are checked.
        check(NodeHead, raw, path, errors)
        if isinstance(kind, str | int) and not isinstance(kind, bool):
            errors.append(FieldError((*path, "type"), f"unknown node type {str(kind)!r} "
                                     f"(expected one of {', '.join(NODE_TYPES)})"))
        return None
    f = check(model, raw, path, errors)
    if f is None:
        return None
    base = (node_id, f.sensitive)
    if kind == "play":
        return PlayNode(*base, f.prompt, f.next)
    if kind == "menu":
        return MenuNode(*base, f.prompt, f.options, timeout=f.timeout, max_retries=f.max_retries,
                        on_invalid=f.on_invalid, on_timeout=f.on_timeout, invalid_prompt=f.invalid_prompt,
                        timeout_prompt=f.timeout_prompt)
    if kind == "collect":
        return CollectNode(*base, f.prompt, f.variable, f.next, min_digits=f.min_digits, max_digits=f.max_digits,
                           terminator=f.terminator, timeout=f.timeout, max_retries=f.max_retries,
                           on_invalid=f.on_invalid, on_timeout=f.on_timeout, invalid_prompt=f.invalid_prompt)
    if kind == "hours":
        holidays, yearly = f.holidays
        return HoursNode(*base, f.timezone, f.open, f.next_open, f.next_closed, holidays, yearly)
    if kind == "lookup_caller":
        return LookupCallerNode(*base, f.next, f.create, f.on_new)
    if kind == "set":
        return SetNode(*base, dict(f.variables), f.next)
    if kind == "route":
        return RouteNode(*base, f.target)
    return HangupNode(*base)


def _check_graph(flow: Flow, errors: list[FieldError]) -> None:
    """References exist, every node is reachable, every node can reach an end, no input-free loop."""
    nodes = flow.nodes
    if flow.start not in nodes:
        errors.append(FieldError(("start",), f"unknown node {flow.start!r}"))
        return
    graph = {nid: edges(n) for nid, n in nodes.items()}
    dangling = False
    for out in graph.values():
        for e in out:
            if e.target not in nodes:
                errors.append(FieldError(e.loc, f"unknown node {e.target!r}"))
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
            errors.append(FieldError(("nodes", nid), f"unreachable from start {flow.start!r}"))
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
            errors.append(FieldError(("nodes", nid), "no path from here ends in a route or hangup"))
    # A cycle made only of arcs that need no key press would spin forever on a silent caller.
    color: dict[str, int] = {}

    def visit(nid: str, stack: list[str]) -> None:
        color[nid] = 1
        for e in graph[nid]:
            if e.consumes_input:
                continue
            if color.get(e.target) == 1:
                loop = stack[stack.index(e.target):] + [nid, e.target] if e.target in stack else [nid, e.target]
                errors.append(FieldError(e.loc, f"loop without caller input ({' -> '.join(loop)})"))
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
        raise FlowError([FieldError(("document",), "nested too deeply")]) from None
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        # Besides YAMLError, PyYAML's constructors raise ValueError for an impossible date
        # (2026-02-30) and TypeError for an unhashable key (found by fuzz/ivr_flow).
        raise FlowError([FieldError(("document",), f"not valid YAML/JSON: {exc}")]) from exc
    if not isinstance(raw, dict):
        raise FlowError([FieldError(("document",), "expected a mapping with name, version, start and nodes")])
    errors: list[FieldError] = []
    top = check(FlowFields, {str(k): v for k, v in raw.items()}, (), errors)
    nodes: dict[str, Node] = {}
    raw_nodes = top.nodes if top is not None else raw.get("nodes")
    for nid, body in (raw_nodes.items() if isinstance(raw_nodes, dict) else ()):
        node = _parse_node(str(nid), body, errors)
        if node is not None:
            nodes[str(nid)] = node
    if errors:
        raise FlowError(errors)
    if top is None:  # the top level had errors, and they were raised above
        raise FlowError(["document: invalid"])
    flow = Flow(top.name, top.version, top.start, nodes, top.description, top.record)
    _check_graph(flow, errors)
    if errors:
        raise FlowError(errors)
    return flow


def load_flow_file(path: str) -> Flow:
    """Read and validate a flow file."""
    with open(path, encoding="utf-8") as fh:
        return load_flow(fh.read())


# A replaced version kept beside the published flow: ``<name>.v<version>.yaml`` (web/admin/flows.py).
KEPT_VERSION_RE = re.compile(r"^(?P<name>.+)\.v(?P<version>\d+)$")


def published_flow_names(folder: Path) -> list[str]:
    """Names of the flows published in `folder` (data/flows/), not their kept versions: what an
    ``ivr:<flow>`` destination may name."""
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if not KEPT_VERSION_RE.match(p.stem))


def target_errors(flow: Flow, catalogue: Catalogue) -> list[FieldError]:
    """Every route node whose target names nothing on the site (a queue that does not exist...).

    The document alone cannot tell: the editor's Check, publishing and the engine's loader ask
    with the site's catalogue. A flow may route to itself before it is first published.
    """
    known = dataclasses.replace(catalogue, flows=None if catalogue.flows is None else catalogue.flows | {flow.name})
    errors = []
    for nid, node in flow.nodes.items():
        if isinstance(node, RouteNode):
            why = known.error(node.target.destination, external=True)
            if why:
                errors.append(FieldError(("nodes", nid, "target"), why))
    return errors
