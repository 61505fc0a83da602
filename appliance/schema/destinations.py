"""Where a call is sent: one destination syntax for inbound routes, queue overflows and IVR flows.

The syntax is the one every site's database and provisioning file already hold, so nothing stored
needs rewriting: an extension is its number (``1001``), then ``voicemail:<extension>``,
``queue:<name>`` and ``ivr:<flow>``; a flow may also leave to ``external:<number>`` (a call out
through the trunks). IVR flows used to spell two of them ``extension:<n>`` and ``flow:<name>``:
those still parse (published flows keep working) and are written back in the one syntax.

Whether the thing named exists needs the rest of the configuration: a `Catalogue` of what exists
says so for every boundary alike (web forms, the flow editor's Check, the YAML import).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["extension", "voicemail", "queue", "ivr", "external"]

_NUMBER_RE = re.compile(r"^[0-9]{2,8}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FLOW_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_EXTERNAL_RE = re.compile(r"^\+?[0-9]{2,20}$")
# Spellings IVR flows used before the one syntax (issue 15): read, never written.
LEGACY_PREFIXES: dict[str, Kind] = {"extension": "extension", "flow": "ivr"}
HELP = "an extension number (2-8 digits), voicemail:<extension>, queue:<name> or ivr:<flow>"
FLOW_HELP = f"{HELP}, or external:<number>"


@dataclass(frozen=True)
class Destination:
    """A parsed destination; `str()` is its one spelling."""

    kind: Kind
    value: str

    def __str__(self) -> str:
        return self.value if self.kind == "extension" else f"{self.kind}:{self.value}"


def parse(text: str, *, external: bool = False) -> Destination:
    """`text` as a Destination; ValueError says what is accepted (`external`: in a flow)."""
    what = FLOW_HELP if external else HELP
    raw = text.strip()
    if _NUMBER_RE.match(raw):
        return Destination("extension", raw)
    prefix, sep, value = raw.partition(":")
    kind = LEGACY_PREFIXES.get(prefix, prefix)
    checks: dict[str, re.Pattern[str]] = {"extension": _NUMBER_RE, "voicemail": _NUMBER_RE, "queue": _NAME_RE,
                                          "ivr": _FLOW_RE}
    if external:
        checks["external"] = _EXTERNAL_RE
    regex = checks.get(kind)
    if not sep or regex is None or not regex.match(value.strip()):
        raise ValueError(f"{text!r} is not {what}")
    return Destination(kind, value.strip())  # type: ignore[arg-type]  # kind is a key of checks


@dataclass(frozen=True)
class Catalogue:
    """What a destination may name on this site: extension numbers (and those with voicemail),
    queue names and published IVR flows; `labels` are the display names shown in pick lists."""

    extensions: frozenset[str] = frozenset()
    voicemail: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    flows: frozenset[str] | None = None  # None: flows are not known here (not checked)
    labels: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def of(extensions: Iterable[str], voicemail: Iterable[str], queues: Iterable[str],
           flows: Iterable[str] | None, labels: dict[str, str] | None = None) -> Catalogue:
        return Catalogue(frozenset(extensions), frozenset(voicemail), frozenset(queues),
                         None if flows is None else frozenset(flows), dict(labels or {}))

    def missing(self, dest: Destination) -> str | None:
        """Why `dest` names nothing on this site, or None when it exists."""
        if dest.kind == "extension" and dest.value not in self.extensions:
            return f"extension {dest.value!r} does not exist"
        if dest.kind == "voicemail" and dest.value not in self.extensions:
            return f"extension {dest.value!r} does not exist"
        if dest.kind == "queue" and dest.value not in self.queues:
            return f"queue {dest.value!r} does not exist"
        if dest.kind == "ivr" and self.flows is not None and dest.value not in self.flows:
            return f"IVR flow {dest.value!r} does not exist (publish it first)"
        return None

    def error(self, text: str, *, external: bool = False) -> str | None:
        """What is wrong with `text` as a destination here (its syntax, then what it names)."""
        try:
            dest = parse(text, external=external)
        except ValueError as exc:
            return str(exc)
        return self.missing(dest)

    def choices(self) -> list[tuple[str, str]]:
        """Every destination of the site, in the one syntax, with a label: the pick list."""
        out: list[tuple[str, str]] = []
        for number in sorted(self.extensions):
            name = self.labels.get(number, "")
            out.append((number, f"extension {number} {name}".rstrip()))
            if number in self.voicemail:
                out.append((f"voicemail:{number}", f"voicemail of {number} {name}".rstrip()))
        for queue in sorted(self.queues):
            out.append((f"queue:{queue}", f"queue {self.labels.get('queue:' + queue, queue)}"))
        for flow in sorted(self.flows or ()):
            out.append((f"ivr:{flow}", f"IVR flow {flow}"))
        return out
