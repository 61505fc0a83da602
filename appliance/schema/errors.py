"""Validation errors as data: where (a path of keys and indexes) and what is wrong.

`ConfigError` lives here, beside the errors built on it, so the schema layer imports nothing of
the store: appliance.store re-exports it (docs/ARCHITECTURE.md, "Validation").
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


class ConfigError(ValueError):
    """A configuration item is invalid; the message names section, item and field.

    Example: ``extensions[3].number: '10a1' is not 2-8 digits``.
    """


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: `loc` is the path to it, e.g. ("extensions", 3, "number")."""

    loc: tuple[str | int, ...]
    msg: str

    @property
    def field(self) -> str:
        """The field's own name (the last key of the path), as a form names its input."""
        for part in reversed(self.loc):
            if isinstance(part, str):
                return part
        return ""

    def under(self, prefix: Sequence[str | int]) -> FieldError:
        """The same error with its path under `prefix`."""
        return FieldError(tuple(prefix) + self.loc, self.msg)

    def __str__(self) -> str:
        return f"{dotted(self.loc)}: {self.msg}" if self.loc else self.msg


def dotted(loc: Sequence[str | int]) -> str:
    """("extensions", 3, "number") -> "extensions[3].number"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class RecordInvalid(ConfigError):
    """A record failed validation; `errors` lists every field error at once.

    It is a ConfigError, so callers that catch bad configuration keep working; its message is
    every error joined, each prefixed with the path of its field.
    """

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class Problems(ValueError):
    """Raised inside a validator for errors whose path goes deeper than the field (a list item):
    `field_errors` puts each under the validator's own path. With `of_record`, the paths are
    the record's fields (a field validator naming another field: "min_digits is more than").
    """

    def __init__(self, errors: Sequence[FieldError], *, of_record: bool = False) -> None:
        self.errors = tuple(errors)
        self.of_record = of_record
        super().__init__("; ".join(str(e) for e in self.errors))


def problem(msg: str, *loc: str | int) -> Problems:
    """One error at `loc`, relative to the validator raising it."""
    return Problems([FieldError(tuple(loc), msg)])


def field_errors(exc: ValidationError, prefix: Sequence[str | int] = (),
                 known: Sequence[str] = (), missing: str = "is required", unknown: str = "") -> list[FieldError]:
    """Every error of a pydantic ValidationError as FieldErrors, their paths under `prefix`.

    `known` are the record's field names, quoted when a key is not one of them; `missing` is
    what a required field that is absent is told, `unknown` (if set) what a key that is not a
    field is told, at its own path (each file format keeps its own words).
    """
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err.get("loc", ()) if isinstance(p, (str, int)))
        cause: Any = (err.get("ctx") or {}).get("error")
        if isinstance(cause, Problems):
            base = loc[:-1] if cause.of_record and loc else loc
            out.extend(e.under(tuple(prefix) + base) for e in cause.errors)
            continue
        kind = err.get("type", "")
        if kind == "extra_forbidden" and unknown:
            out.append(FieldError(tuple(prefix) + loc, unknown))
            continue
        if kind == "extra_forbidden" and loc:
            # The record is wrong, not the key: the error sits on the record's own path.
            msg = f"unknown field {loc[-1]!r}" + (f" (known: {', '.join(known)})" if known else "")
            out.append(FieldError(tuple(prefix) + loc[:-1], msg))
            continue
        msg = missing if kind == "missing" else str(err.get("msg", "invalid"))
        # pydantic prefixes messages of custom validators with "Value error, "; the field says enough.
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        out.append(FieldError(tuple(prefix) + loc, msg))
    return out


def invalid(msg: str, *loc: str | int) -> RecordInvalid:
    """RecordInvalid with one error at `loc` (a check that needs the database: a reference)."""
    return RecordInvalid([FieldError(tuple(loc), msg)])
