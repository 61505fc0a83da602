"""Syntax of Asterisk-style dial patterns used by outbound routes.

A pattern starting with ``_`` is a pattern; anything else is a literal number
matched exactly ("112"). Inside a pattern (Asterisk dialplan syntax):

- ``X`` any digit 0-9, ``Z`` 1-9, ``N`` 2-9 (lower case accepted, as in Asterisk);
- ``[15-7]`` one character from a set of digits and ascending digit ranges;
- ``.`` one or more characters, ``!`` zero or more; they must come last, because
  anything after them could never constrain a match;
- ``0-9 * # +`` match themselves.

This module only checks syntax and builds the regular expression; the matcher
that ranks routes lives in ``appliance/pbx/dialplan.py``.
"""

from __future__ import annotations

import re

from appliance.store.errors import ConfigError

_LITERAL_CHARS = frozenset("0123456789*#+")
_CLASSES = {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]"}
MAX_PATTERN_LENGTH = 64


def _parse_set(pattern: str, text: str, start: int) -> tuple[str, int]:
    """Parse a ``[...]`` set at ``text[start]``; return (regex, index after ``]``).

    ``pattern`` is the whole pattern, only used in error messages.
    """
    end = text.find("]", start + 1)
    if end < 0:
        raise ConfigError(f"pattern {pattern!r}: '[' is not closed")
    body = text[start + 1 : end]
    if not body:
        raise ConfigError(f"pattern {pattern!r}: empty set '[]'")
    parts: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch not in _LITERAL_CHARS:
            raise ConfigError(f"pattern {pattern!r}: {ch!r} is not allowed inside '[...]'")
        if i + 2 < len(body) and body[i + 1] == "-":
            hi = body[i + 2]
            if not (ch.isdigit() and hi.isdigit()):
                raise ConfigError(f"pattern {pattern!r}: range {ch}-{hi} must be between digits")
            if hi < ch:
                raise ConfigError(f"pattern {pattern!r}: range {ch}-{hi} is descending")
            parts.append(f"{ch}-{hi}")
            i += 3
            continue
        if ch == "-" or (i + 1 < len(body) and body[i + 1] == "-"):
            raise ConfigError(f"pattern {pattern!r}: incomplete range in '[{body}]'")
        parts.append(re.escape(ch))
        i += 1
    return "[" + "".join(parts) + "]", end + 1


def _translate(pattern: str) -> str:
    """Return the anchored regular-expression source for a pattern, or raise ConfigError."""
    if not isinstance(pattern, str):
        raise ConfigError(f"pattern must be a string, got {type(pattern).__name__}")
    if not pattern:
        raise ConfigError("pattern is empty")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ConfigError(f"pattern {pattern!r} is longer than {MAX_PATTERN_LENGTH} characters")
    if not pattern.startswith("_"):
        bad = sorted(set(pattern) - _LITERAL_CHARS)
        if bad:
            raise ConfigError(
                f"pattern {pattern!r}: {bad[0]!r} is not a dial character "
                "(patterns start with '_', literal numbers use 0-9 * # +)"
            )
        return "^" + re.escape(pattern) + "$"
    body = pattern[1:]
    if not body:
        raise ConfigError("pattern '_' matches nothing: add digits or X/Z/N/[...]")
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        upper = ch.upper()
        if upper in _CLASSES:
            out.append(_CLASSES[upper])
            i += 1
        elif ch == "[":
            regex, after = _parse_set(pattern, body, i)
            out.append(regex)
            i = after
        elif ch in ".!":
            if i != len(body) - 1:
                raise ConfigError(
                    f"pattern {pattern!r}: {ch!r} must be the last character "
                    "(it already matches everything after it)"
                )
            out.append(".+" if ch == "." else ".*")
            i += 1
        elif ch in _LITERAL_CHARS:
            out.append(re.escape(ch))
            i += 1
        elif ch == "]":
            raise ConfigError(f"pattern {pattern!r}: ']' without '['")
        else:
            raise ConfigError(f"pattern {pattern!r}: {ch!r} is not valid in a pattern")
    return "^" + "".join(out) + "$"


def validate_pattern(pattern: str) -> None:
    """Raise ConfigError if ``pattern`` is not a valid literal number or ``_`` pattern."""
    _translate(pattern)


def pattern_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a dial pattern to an anchored regex (use ``.match``); raises ConfigError."""
    return re.compile(_translate(pattern), re.DOTALL)
