"""Walk a flow without a call: ``plateau ivr simulate FLOW --digits 1,2 --caller +33... [--at ISO]``.

The simulator drives the same `Interpreter` a channel will: prompts "finish playing", and each prompt that
asks for input gets the next entry of `digits` ("" or "timeout" is silence; when entries run out the
caller stays silent).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass, field

from appliance.ivr.contacts import ContactDirectory, InMemoryContacts
from appliance.ivr.flow import Flow, FlowError, load_flow_file
from appliance.ivr.interpreter import (
    Action,
    CollectDigits,
    Digits,
    Hangup,
    Input,
    Interpreter,
    Play,
    PlaybackDone,
    Route,
    SetSensitive,
    SetVar,
    Timeout,
)


@dataclass(frozen=True)
class TranscriptEntry:
    """One step: the node, what the IVR did, what the caller gave, and where that led."""

    node: str
    action: str
    input: str = ""
    outcome: str = ""


@dataclass
class Transcript:
    entries: list[TranscriptEntry] = field(default_factory=list)
    result: Route | Hangup | None = None
    variables: dict[str, str] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """``route queue:sales-en`` or ``hangup (reason)``."""
        if isinstance(self.result, Route):
            return f"route {self.result.target}"
        if isinstance(self.result, Hangup):
            return f"hangup ({self.result.reason})"
        return "unfinished"

    def render(self) -> str:
        """The transcript as aligned text lines."""
        rows = [("node", "action", "input", "outcome")] + [(e.node, e.action, e.input, e.outcome)
                                                             for e in self.entries]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip() for r in rows]
        lines.append(f"=> {self.outcome}")
        return "\n".join(lines)


def _describe(action: Action) -> str:
    if isinstance(action, Play):
        flags = (" [sensitive]" if action.sensitive else "") + (" [interruptible]" if action.interruptible else "")
        return f"play {action.prompt}{flags}"
    if isinstance(action, CollectDigits):
        term = f", end {action.terminator}" if action.terminator else ""
        return f"collect ≤{action.max_digits} digit(s) ({action.timeout:g}s{term})"
    if isinstance(action, SetVar):
        return f"set {action.name}={action.value}"
    if isinstance(action, SetSensitive):
        return "recording paused (sensitive)" if action.active else "recording resumed"
    if isinstance(action, Route):
        return f"route {action.target}"
    return f"hangup ({action.reason})"


def simulate(flow: Flow, digits: list[str], caller: str, now: dt.datetime,
             contacts: ContactDirectory | None = None, max_steps: int = 1000) -> Transcript:
    """Walk `flow` for `caller` at `now`; `digits[i]` answers the i-th prompt that asks for input."""
    interp = Interpreter(flow, caller, lambda: now, contacts if contacts is not None else InMemoryContacts())
    transcript = Transcript()
    answers = list(digits)
    interp.start()
    seen = 0
    for _ in range(max_steps):
        event: Input | None = None
        fresh, seen = interp.trace[seen:], len(interp.trace)
        for node, action in fresh:
            if isinstance(action, SetVar) and action.name in ("ivr_path", "ivr_choices"):
                continue  # visible in every line's node column already
            text, given = _describe(action), ""
            if isinstance(action, SetVar) and action.name in interp.sensitive_variables:
                text = f"set {action.name}=****"  # PCI: collected card data never reaches a transcript
            if isinstance(action, CollectDigits):
                answer = answers.pop(0) if answers else "timeout"
                if answer in ("", "timeout"):
                    event, given = Timeout(), "(timeout)"
                else:
                    event = Digits(answer)
                    given = "*" * len(answer) if action.sensitive else answer
            elif isinstance(action, Play):
                event = PlaybackDone()
            transcript.entries.append(TranscriptEntry(node, text, given))
        if event is None:
            break
        before = len(interp.path)
        interp.feed(event)
        if isinstance(event, Digits | Timeout) and transcript.entries:
            last = transcript.entries[-1]
            moved = len(interp.path) > before
            outcome = f"-> {interp.path[before]}" if moved else ("retry" if interp.result is None else "")
            transcript.entries[-1] = TranscriptEntry(last.node, last.action, last.input, outcome)
    transcript.result = interp.result
    transcript.variables = {k: ("****" if k in interp.sensitive_variables else v) for k, v in interp.variables.items()}
    transcript.path = list(interp.path)
    return transcript


def _parse_at(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    return dt.datetime.fromisoformat(text)  # naive: local time of each hours node's zone


def main(argv: list[str] | None = None) -> int:
    """CLI: validate FLOW and print the transcript; exit 0 on route/hangup, 2 on an invalid flow."""
    ap = argparse.ArgumentParser(prog="plateau ivr simulate", description="Walk an IVR flow without a call.")
    ap.add_argument("flow", help="flow file (YAML or JSON)")
    ap.add_argument("--digits", default="", help="input at each prompt, comma-separated; empty or 'timeout' = none")
    ap.add_argument("--caller", default="anonymous", help="caller ID")
    ap.add_argument("--at", default=None, help="ISO time, e.g. 2026-11-23T10:00 (naive = the flow's local time)")
    args = ap.parse_args(argv)
    try:
        flow = load_flow_file(args.flow)
    except FlowError as exc:
        for err in exc.errors:
            print(f"{args.flow}: {err}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{args.flow}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        now = _parse_at(args.at)
    except ValueError:
        print(f"--at: not an ISO date-time: {args.at!r}", file=sys.stderr)
        return 2
    digits = [d.strip() for d in args.digits.split(",")] if args.digits else []
    transcript = simulate(flow, digits, args.caller, now)
    print(f"flow {flow.name} v{flow.version}, caller {args.caller}, at {now.isoformat()}")
    print(transcript.render())
    return 0 if transcript.result is not None else 1


if __name__ == "__main__":
    sys.exit(main())
