"""Skills-based routing: agents hold skills at levels 1-5, queues require minimum levels.

A queue's requirements widen as a caller waits ("french >= 4" for 30 s, then "french >= 1"):
each escalation step must be implied by the step before it, so the set of eligible agents
only ever grows with the wait (checked when the requirements are built).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MIN_LEVEL = 1
MAX_LEVEL = 5

Requirement = tuple[str, int]


class SkillError(ValueError):
    """A skill level out of range or an escalation that would narrow the requirements."""


def check_level(skill: str, level: int) -> int:
    """Return ``level`` if it is an int in 1-5, else raise SkillError naming the skill."""
    if isinstance(level, bool) or not isinstance(level, int) or not MIN_LEVEL <= level <= MAX_LEVEL:
        raise SkillError(f"skill {skill!r}: level must be {MIN_LEVEL}-{MAX_LEVEL}, got {level!r}")
    return level


def check_skills(skills: Mapping[str, int]) -> dict[str, int]:
    """Validate an agent's skill map."""
    return {name: check_level(name, level) for name, level in skills.items()}


def _normalise(requirements: Iterable[Requirement]) -> tuple[Requirement, ...]:
    merged: dict[str, int] = {}
    for skill, level in requirements:
        check_level(skill, level)
        merged[skill] = max(level, merged.get(skill, MIN_LEVEL))
    return tuple(sorted(merged.items()))


def eligible(agent_skills: Mapping[str, int], requirements: Iterable[Requirement]) -> bool:
    """True when the agent holds every required skill at least at the required level."""
    for skill, level in requirements:
        if agent_skills.get(skill, 0) < level:
            return False
    return True


def widens(before: Sequence[Requirement], after: Sequence[Requirement]) -> bool:
    """True when every agent eligible for ``before`` is eligible for ``after``."""
    levels = dict(before)
    return all(skill in levels and level <= levels[skill] for skill, level in after)


@dataclass(frozen=True)
class Escalation:
    """After ``after_seconds`` of waiting the caller's requirements become ``requirements``."""

    after_seconds: float
    requirements: tuple[Requirement, ...]


@dataclass(frozen=True)
class SkillRequirements:
    """A queue's base requirements and its escalation steps, in order of wait."""

    base: tuple[Requirement, ...] = ()
    escalations: tuple[Escalation, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", _normalise(self.base))
        steps = tuple(Escalation(float(e.after_seconds), _normalise(e.requirements)) for e in self.escalations)
        previous, previous_after = self.base, 0.0
        for index, step in enumerate(steps):
            if step.after_seconds < 0 or (index > 0 and step.after_seconds <= previous_after):
                raise SkillError(f"escalation {index}: after_seconds must increase, got {step.after_seconds}")
            if not widens(previous, step.requirements):
                raise SkillError(f"escalation {index}: {list(step.requirements)} narrows {list(previous)}")
            previous, previous_after = step.requirements, step.after_seconds
        object.__setattr__(self, "escalations", steps)

    @classmethod
    def build(
        cls,
        base: Iterable[Requirement],
        escalations: Iterable[tuple[float, Iterable[Requirement]]] = (),
    ) -> SkillRequirements:
        """From config shapes: ``[("french", 4)]``, ``[(30, [("french", 1)])]``."""
        return cls(tuple(base), tuple(Escalation(after, tuple(reqs)) for after, reqs in escalations))

    def requirements_at(self, wait_seconds: float) -> tuple[Requirement, ...]:
        """The requirements that apply to a caller who has waited ``wait_seconds``."""
        current = self.base
        for step in self.escalations:
            if wait_seconds < step.after_seconds:
                break
            current = step.requirements
        return current


# -- configuration text ------------------------------------------------------------------------
# Skills are written "french:4" (an agent's proficiency, or a queue's minimum level) and
# escalation steps "after 30s: french:1, support:2" ("after 60s: any" drops every requirement):
# one line an admin can read in the YAML file and type in the web form.
_SKILL_RE = re.compile(r"^([a-z][a-z0-9_-]{0,31}):([0-9]+)$")
_ESCALATION_RE = re.compile(r"^after ([0-9]{1,5})s:\s*(.*)$")


def parse_skill(text: str) -> Requirement:
    """``"french:4"`` -> ("french", 4); raises SkillError naming what is wrong."""
    m = _SKILL_RE.match(text.strip())
    if m is None:
        raise SkillError(f"{text!r} is not skill:level (a lower-case name, a colon, a level 1-5)")
    return m.group(1), check_level(m.group(1), int(m.group(2)))


def parse_skills(items: Iterable[str]) -> dict[str, int]:
    """A list of "name:level" strings as a skill map; a skill listed twice is an error."""
    skills: dict[str, int] = {}
    for item in items:
        name, level = parse_skill(item)
        if name in skills:
            raise SkillError(f"skill {name!r} is listed twice")
        skills[name] = level
    return skills


def parse_escalation(text: str) -> Escalation:
    """``"after 30s: french:1, support:2"`` or ``"after 60s: any"``."""
    m = _ESCALATION_RE.match(text.strip())
    if m is None:
        raise SkillError(f"{text!r} is not 'after <seconds>s: skill:level, ...' (or ': any')")
    body = m.group(2).strip()
    items = [] if body == "any" else [part for part in (p.strip() for p in body.split(",")) if part]
    if not items and body != "any":
        raise SkillError(f"{text!r}: list skills after the colon, or write 'any'")
    return Escalation(float(m.group(1)), tuple(parse_skills(items).items()))


def requirements_from_text(skills: Iterable[str], escalations: Iterable[str]) -> SkillRequirements:
    """A queue's requirements from its configuration lines (SkillError if they narrow)."""
    return SkillRequirements(tuple(parse_skills(skills).items()),
                             tuple(parse_escalation(line) for line in escalations))
