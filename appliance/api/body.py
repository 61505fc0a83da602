"""Decoding a request body: bounded JSON (RFC 8259), before any model sees it.

Every number is bounded before it is converted, so a hostile body cannot make ``int()`` raise
outside the JSON error handling (CPython refuses integers of more than 4,300 digits) or smuggle
in infinities; NaN and Infinity are not JSON at all (RFC 8259 §6).
"""

from __future__ import annotations

import json
from typing import Any

MAX_NUMBER_DIGITS = 20  # any count, port or id of ours fits in 64 bits (19 digits) plus a sign


class JsonNumberError(ValueError):
    """A JSON number we refuse before converting it."""


class BodyUnreadable(ValueError):
    """A body that is not JSON, or holds a number we refuse; the message says which."""


def _bounded_int(text: str) -> int:
    # A 5000-digit integer made int() raise ValueError (CPython's 4300-digit limit) outside the
    # JSONDecodeError handler, and the connection closed with no answer (issue 12).
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise JsonNumberError(f"number too long: at most {MAX_NUMBER_DIGITS} digits")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > 2 * MAX_NUMBER_DIGITS:
        raise JsonNumberError(f"number too long: at most {2 * MAX_NUMBER_DIGITS} characters")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonNumberError(f"number out of range: {text[:24]}")
    return value


def _no_constant(name: str) -> Any:
    raise JsonNumberError(f"{name} is not JSON (RFC 8259 §6)")


def decode_json(data: bytes) -> Any:
    """The JSON value of a body's bytes; BodyUnreadable says what is wrong with it."""
    try:
        return json.loads(data.decode("utf-8"), parse_int=_bounded_int, parse_float=_bounded_float,
                          parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyUnreadable(f"malformed JSON: {exc}") from None
    except JsonNumberError as exc:
        raise BodyUnreadable(str(exc)) from None
    except RecursionError:
        raise BodyUnreadable("malformed JSON: nested too deeply") from None
