"""Validation errors as data: where (a path of keys and indexes) and what is wrong."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from appliance.store.errors import ConfigError


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


def field_errors(exc: ValidationError, prefix: Sequence[str | int] = ()) -> list[FieldError]:
    """Every error of a pydantic ValidationError as FieldErrors, their paths under `prefix`."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        msg = str(err.get("msg", "invalid"))
        # pydantic prefixes messages of custom validators with "Value error, "; the field says enough.
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        loc = tuple(p for p in err.get("loc", ()) if isinstance(p, (str, int)))
        out.append(FieldError(tuple(prefix) + loc, msg))
    return out
