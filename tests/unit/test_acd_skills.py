"""Skills: levels, eligibility, escalation that only ever widens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.acd.skills import SkillError, SkillRequirements, check_skills, eligible, widens

SKILLS = ["french", "english", "billing", "tech"]


def test_eligible_needs_every_skill_at_level() -> None:
    agent = {"french": 4, "billing": 2}
    assert eligible(agent, [("french", 4)])
    assert eligible(agent, [("french", 3), ("billing", 1)])
    assert not eligible(agent, [("french", 5)])
    assert not eligible(agent, [("french", 1), ("tech", 1)])
    assert eligible({}, [])


def test_requirements_at_follows_escalation_steps() -> None:
    reqs = SkillRequirements.build([("french", 4), ("billing", 2)], [(30, [("french", 1), ("billing", 2)]), (90, [])])
    assert reqs.requirements_at(0) == (("billing", 2), ("french", 4))
    assert reqs.requirements_at(29.9) == (("billing", 2), ("french", 4))
    assert reqs.requirements_at(30) == (("billing", 2), ("french", 1))
    assert reqs.requirements_at(500) == ()
    assert not eligible({"french": 2, "billing": 2}, reqs.requirements_at(10))
    assert eligible({"french": 2, "billing": 2}, reqs.requirements_at(40))


@pytest.mark.parametrize(
    ("base", "steps", "message"),
    [
        ([("french", 6)], [], "level must be 1-5"),
        ([("french", 0)], [], "level must be 1-5"),
        ([("french", 2)], [(30, [("french", 3)])], "narrows"),
        ([("french", 2)], [(30, [("french", 1), ("tech", 1)])], "narrows"),
        ([("french", 2)], [(30, [("french", 1)]), (20, [])], "must increase"),
        ([("french", 2)], [(-1, [])], "must increase"),
    ],
)
def test_bad_requirements_are_rejected(base: list, steps: list, message: str) -> None:
    with pytest.raises(SkillError, match=message):
        SkillRequirements.build(base, steps)


def test_agent_skill_levels_are_checked() -> None:
    assert check_skills({"french": 5}) == {"french": 5}
    with pytest.raises(SkillError, match="'french'"):
        check_skills({"french": 7})


requirement_lists = st.lists(st.tuples(st.sampled_from(SKILLS), st.integers(1, 5)), max_size=4)
agent_skills = st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5))


@st.composite
def widening_requirements(draw: st.DrawFn) -> SkillRequirements:
    """A base list and escalation steps each derived by lowering levels or dropping skills."""
    current = dict(draw(requirement_lists))
    base = list(current.items())
    steps = []
    after = 0.0
    for _ in range(draw(st.integers(0, 4))):
        after += draw(st.floats(1, 60))
        nxt = {}
        for skill, level in current.items():
            if draw(st.booleans()):
                nxt[skill] = draw(st.integers(1, level))
        steps.append((after, list(nxt.items())))
        current = nxt
    return SkillRequirements.build(base, steps)


@settings(max_examples=200, deadline=None)
@given(widening_requirements(), st.lists(agent_skills, min_size=1, max_size=10), st.floats(0, 300), st.floats(0, 300))
def test_escalation_only_widens(reqs: SkillRequirements, agents: list[dict[str, int]], t1: float, t2: float) -> None:
    early, late = sorted((t1, t2))
    for skills in agents:
        if eligible(skills, reqs.requirements_at(early)):
            assert eligible(skills, reqs.requirements_at(late))
    assert widens(reqs.requirements_at(early), reqs.requirements_at(late))


@settings(max_examples=200, deadline=None)
@given(requirement_lists, requirement_lists)
def test_any_narrowing_step_is_refused(base: list, step: list) -> None:
    try:
        reqs = SkillRequirements.build(base, [(10, step)])
    except SkillError:
        assert not widens(SkillRequirements.build(base).base, SkillRequirements.build(step).base)
        return
    assert widens(reqs.base, reqs.requirements_at(10))
