"""An I/O-free IVR interpreter: an explicit state machine over a validated `Flow`.

The caller of this module (a channel driver, or `simulate`) feeds typed inputs and performs the typed
actions it gets back. Each call to `start`/`feed` returns a list of actions: zero or more that need no answer
(`SetVar`, `SetSensitive`) followed by exactly one that does (`Play` -> `PlaybackDone` or, when the prompt is
interruptible, `Digits`; `CollectDigits` -> `Digits` or `Timeout`) or that ends the flow (`Route`, `Hangup`).
"""
from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass

from appliance.ivr.contacts import ContactDirectory
from appliance.ivr.flow import (
    DTMF_KEYS,
    CollectNode,
    Flow,
    HangupNode,
    HoursNode,
    LookupCallerNode,
    MenuNode,
    Node,
    PlayNode,
    Prompt,
    RouteNode,
    RouteTarget,
    SetNode,
    substitute,
)

# Defence in depth behind the validator's loop check: this many nodes in a row without caller input hangs up.
MAX_STEPS_WITHOUT_INPUT = 64


# -- actions (interpreter -> channel) --------------------------------------------------------------
@dataclass(frozen=True)
class Play:
    """Play a prompt; answer PlaybackDone, or Digits when `interruptible` and the caller pressed keys."""

    prompt: Prompt
    sensitive: bool = False
    interruptible: bool = False


@dataclass(frozen=True)
class CollectDigits:
    """Collect up to `max_digits` keys, ending early on `terminator`; answer Digits, or Timeout if none came."""

    max_digits: int
    timeout: float
    terminator: str = ""
    sensitive: bool = False


@dataclass(frozen=True)
class SetVar:
    """A flow variable changed (for the agent's screen pop); needs no answer."""

    name: str
    value: str


@dataclass(frozen=True)
class SetSensitive:
    """The call enters (True) or leaves (False) a sensitive node: pause/resume recording (PCI DSS)."""

    active: bool


@dataclass(frozen=True)
class Route:
    """The call leaves the IVR for `target`; the flow is over."""

    target: RouteTarget


@dataclass(frozen=True)
class Hangup:
    """Hang up; the flow is over."""

    reason: str = "flow"


Action = Play | CollectDigits | SetVar | SetSensitive | Route | Hangup


# -- inputs (channel -> interpreter) ---------------------------------------------------------------
@dataclass(frozen=True)
class Digits:
    """Keys the caller pressed (a terminator, if any, may be included)."""

    digits: str


@dataclass(frozen=True)
class Timeout:
    """No key came before the collection timeout."""


@dataclass(frozen=True)
class PlaybackDone:
    """The prompt finished playing."""


Input = Digits | Timeout | PlaybackDone


class InterpreterError(RuntimeError):
    """An input that the current state does not accept (a driver bug, not a caller's doing)."""


class State(enum.Enum):
    IDLE = "idle"
    PLAYING = "playing"
    COLLECTING = "collecting"
    DONE = "done"


class Interpreter:
    """Walks one call through a flow. `clock` gives the current time (hours nodes); `contacts` serves
    lookup_caller nodes (None: every caller is unknown and nothing is created)."""

    def __init__(self, flow: Flow, caller: str, clock: Callable[[], dt.datetime],
                 contacts: ContactDirectory | None = None) -> None:
        self.flow, self.caller, self.clock, self.contacts = flow, caller, clock, contacts
        self.state = State.IDLE
        self.node: Node | None = None
        self.path: list[str] = []
        self.choices: list[str] = []
        self.variables: dict[str, str] = {
            "caller": caller, "flow": flow.name, "flow_version": str(flow.version), "ivr_path": "", "ivr_choices": "",
        }
        self.sensitive_variables: set[str] = set()  # collected in a sensitive node: never show or log them
        self.result: Route | Hangup | None = None
        self.trace: list[tuple[str, Action]] = []  # (node id, action) for every action, in order
        self._sensitive = False
        self._after_play = "next"  # what PlaybackDone leads to: "next", "collect" or "reprompt"
        self._failures = 0
        self._buffer = ""
        self._steps = 0

    # -- public transitions ------------------------------------------------------------------------
    def start(self) -> list[Action]:
        """Enter the start node; returns the first actions."""
        if self.state is not State.IDLE:
            raise InterpreterError(f"start() in state {self.state.value}")
        out: list[Action] = []
        self._goto(self.flow.start, out)
        return out

    def feed(self, event: Input) -> list[Action]:
        """Give the answer to the last blocking action; returns the next actions."""
        out: list[Action] = []
        node = self.node
        if self.state is State.PLAYING and isinstance(event, PlaybackDone):
            if self._after_play == "next":
                if not isinstance(node, PlayNode):
                    raise InterpreterError("PlaybackDone after a non-play prompt")
                self._goto(node.next, out)
            elif self._after_play == "reprompt":
                self._prompt(out)
            else:
                self._collect(out)
        elif self.state is State.PLAYING and isinstance(event, Digits) and self._after_play == "collect":
            self._input(event.digits, out, partial=True)  # barge-in: keys pressed during the prompt
        elif self.state is State.COLLECTING and isinstance(event, Digits):
            self._input(event.digits, out, partial=False)
        elif self.state is State.COLLECTING and isinstance(event, Timeout):
            if isinstance(node, CollectNode) and self._buffer:
                self._finish_collect(node, out)
            else:
                self._fail("timeout", out)
        else:
            raise InterpreterError(f"{type(event).__name__} not expected in state {self.state.value}")
        return out

    # -- node dispatch -----------------------------------------------------------------------------
    def _goto(self, node_id: str, out: list[Action]) -> None:
        self._steps += 1
        if self._steps > MAX_STEPS_WITHOUT_INPUT:
            self._end(Hangup("loop without caller input"), out)
            return
        node = self.flow.nodes[node_id]
        self.node = node
        self.path.append(node_id)
        self._set("ivr_path", ">".join(self.path), out)
        if node.sensitive != self._sensitive:
            self._sensitive = node.sensitive
            self._emit(out, SetSensitive(node.sensitive))
        self._failures, self._buffer = 0, ""
        if isinstance(node, PlayNode):
            self._after_play = "next"
            self.state = State.PLAYING
            self._emit(out, Play(self._render(node.prompt), node.sensitive))
        elif isinstance(node, MenuNode | CollectNode):
            self._prompt(out)
        elif isinstance(node, HoursNode):
            self._goto(node.next_open if node.is_open(self.clock()) else node.next_closed, out)
        elif isinstance(node, LookupCallerNode):
            self._lookup(node, out)
        elif isinstance(node, SetNode):
            for name, value in node.variables.items():
                self._set(name, substitute(value, self.variables), out)
            self._goto(node.next, out)
        elif isinstance(node, RouteNode):
            self._end(Route(node.target), out)
        elif isinstance(node, HangupNode):
            self._end(Hangup("flow"), out)
        else:
            raise InterpreterError(f"node {node.id}: no handler for {type(node).__name__}")

    def _prompt(self, out: list[Action]) -> None:
        node = self.node
        if not isinstance(node, MenuNode | CollectNode):
            raise InterpreterError("prompt outside a menu or collect node")
        self._after_play, self._buffer = "collect", ""
        self.state = State.PLAYING
        self._emit(out, Play(self._render(node.prompt), node.sensitive, interruptible=True))

    def _collect(self, out: list[Action]) -> None:
        node = self.node
        self.state = State.COLLECTING
        if isinstance(node, MenuNode):
            self._emit(out, CollectDigits(1, node.timeout, "", node.sensitive))
        elif isinstance(node, CollectNode):
            self._emit(out, CollectDigits(node.max_digits - len(self._buffer), node.timeout, node.terminator,
                                     node.sensitive))

    def _input(self, digits: str, out: list[Action], partial: bool) -> None:
        bad = [d for d in digits if d not in DTMF_KEYS]
        if bad:
            raise InterpreterError(f"not DTMF keys: {''.join(bad)!r}")
        self._steps = 0
        node = self.node
        if isinstance(node, MenuNode):
            if not digits:
                self._fail("timeout", out)
            elif digits[0] in node.options:  # type-ahead beyond the first key is dropped
                self.choices.append(digits[0])
                self._set("ivr_choices", ",".join(self.choices), out)
                self._goto(node.options[digits[0]], out)
            else:
                self._fail("invalid", out)
        elif isinstance(node, CollectNode):
            self._buffer += digits
            ended = bool(node.terminator) and node.terminator in self._buffer
            if ended:
                self._buffer = self._buffer.split(node.terminator, 1)[0]
            if partial and not ended and len(self._buffer) < node.max_digits:
                self._collect(out)  # barge-in gave the first keys; gather the rest
            else:
                self._finish_collect(node, out)
        else:
            raise InterpreterError("digits outside a menu or collect node")

    def _finish_collect(self, node: CollectNode, out: list[Action]) -> None:
        value = self._buffer
        if node.min_digits <= len(value) <= node.max_digits and value.isdigit():
            if node.sensitive:
                self.sensitive_variables.add(node.variable)
            self._set(node.variable, value, out)
            self._goto(node.next, out)
        else:
            self._fail("invalid", out)

    def _fail(self, why: str, out: list[Action]) -> None:
        """Invalid key or silence: re-prompt until max_retries is spent, then take on_invalid/on_timeout."""
        node = self.node
        if not isinstance(node, MenuNode | CollectNode):
            raise InterpreterError("failure outside a menu or collect node")
        self._failures += 1
        if self._failures > node.max_retries:
            dest = node.on_invalid if why == "invalid" else node.on_timeout
            if dest is None:
                self._end(Hangup(f"{node.id}: retries exhausted ({why})"), out)
            else:
                self._goto(dest, out)
            return
        notice = node.invalid_prompt if why == "invalid" else (
            node.timeout_prompt if isinstance(node, MenuNode) else None)
        if notice is None:
            self._prompt(out)
        else:
            self._after_play, self.state = "reprompt", State.PLAYING
            self._emit(out, Play(self._render(notice), node.sensitive))

    def _lookup(self, node: LookupCallerNode, out: list[Action]) -> None:
        number = self.caller.strip()
        anonymous = number == "" or number.lower() in ("anonymous", "unknown", "restricted")
        contact = None if anonymous or self.contacts is None else self.contacts.find_by_number(number)
        known = contact is not None
        if contact is None and node.create and not anonymous and self.contacts is not None:
            contact = self.contacts.create(number)
        self._set("contact_known", "true" if known else "false", out)
        if contact is not None:
            self._set("contact_id", contact.id, out)
            self._set("contact_name", contact.name, out)
            for key, value in contact.fields.items():
                self._set(f"contact_{key}", value, out)
        self._goto(node.on_new if not known and node.on_new is not None else node.next, out)

    # -- helpers -----------------------------------------------------------------------------------
    def _render(self, prompt: Prompt) -> Prompt:
        return Prompt("say", substitute(prompt.value, self.variables)) if prompt.kind == "say" else prompt

    def _emit(self, out: list[Action], action: Action) -> None:
        out.append(action)
        self.trace.append((self.node.id if self.node is not None else "", action))

    def _set(self, name: str, value: str, out: list[Action]) -> None:
        self.variables[name] = value
        self._emit(out, SetVar(name, value))

    def _end(self, action: Route | Hangup, out: list[Action]) -> None:
        if self._sensitive:
            self._sensitive = False
            self._emit(out, SetSensitive(False))
        self.state, self.result = State.DONE, action
        self._emit(out, action)
