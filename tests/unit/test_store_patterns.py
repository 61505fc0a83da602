"""Dial-pattern syntax (Asterisk) and its regex translation."""

from __future__ import annotations

import pytest

from appliance.store.errors import ConfigError
from appliance.store.patterns import pattern_to_regex, validate_pattern


@pytest.mark.parametrize(
    ("pattern", "matches", "rejects"),
    [
        ("_0XXXXXXXXX", ["0123456789", "0999999999"], ["012345678", "01234567890", "1123456789"]),
        ("_00.", ["0044123", "001"], ["00", "0144"]),
        ("_+33.", ["+33123456789"], ["+33", "33123", "+34123"]),
        ("112", ["112"], ["1120", "11", "_112"]),
        ("_NXX", ["200", "999"], ["100", "099", "2000"]),
        ("_ZX", ["10", "99"], ["01", "9"]),
        ("_[1-5]X!", ["10", "59999"], ["5", "60", "0"]),
        ("_[135-7]", ["1", "3", "5", "6", "7"], ["2", "4", "8"]),
        ("_x.", ["12", "0abc"], ["1"]),
        ("_*XX", ["*12"], ["112"]),
        ("*97", ["*97"], ["97"]),
    ],
)
def test_pattern_matches(pattern: str, matches: list[str], rejects: list[str]) -> None:
    regex = pattern_to_regex(pattern)
    for number in matches:
        assert regex.match(number), (pattern, number)
    for number in rejects:
        assert not regex.match(number), (pattern, number)


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "empty"),
        ("_", "matches nothing"),
        ("_0.X", "must be the last"),
        ("_0!1", "must be the last"),
        ("_[5-1]", "descending"),
        ("_[12", "not closed"),
        ("_[]", "empty set"),
        ("_[1-]", "incomplete range"),
        ("_[a]", "not allowed inside"),
        ("_1]", "without '['"),
        ("_0Y", "'Y' is not valid"),
        ("1a2", "not a dial character"),
        ("0X", "not a dial character"),
        ("_" + "X" * 80, "longer than"),
    ],
)
def test_invalid_patterns_name_the_problem(pattern: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("(", r"\(")):
        validate_pattern(pattern)


def test_non_string_pattern_rejected() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        validate_pattern(112)  # type: ignore[arg-type]
