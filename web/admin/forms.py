"""Form plumbing shared by the admin sections: field specs, parsing a posted form into record
values, showing the validation layer's field errors beside their fields (every one at once,
from appliance/schema: no error text is parsed), audit dicts without secrets, and asking the
engine to reload.

The request layer stays thin: a section declares its fields once and `crud.py` does the rest.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import flash

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.schema.errors import ConfigError, FieldError, RecordInvalid
from web.context import engine

# Field kinds: how a value is shown and read back.
TEXT, OPTIONAL, INT, BOOL, SELECT, LINES, MULTI, SECRET, DESTINATION = (
    "text", "optional", "int", "bool", "select", "lines", "multi", "secret", "destination")
MASK = "****"


@dataclass
class Field:
    """One form field of a record.

    `choices` (SELECT, MULTI, DESTINATION: the pick list of what exists) and `suggest` (datalist for
    TEXT/OPTIONAL, or the ordered-list widget for LINES) are callables so they read the database at
    request time.
    """

    name: str
    label: str
    kind: str = TEXT
    help: str = ""
    choices: Callable[[], list[tuple[str, str]]] | None = None
    suggest: Callable[[], list[tuple[str, str]]] | None = None
    placeholder: str = ""
    ordered: bool = False  # LINES whose order matters (queue members): the JS list widget
    optional: bool = False  # SECRET or DESTINATION that may stay unset (a trunk without authentication)
    wide: bool = False


@dataclass
class FormState:
    """What a form page shows: raw values as typed, and errors by field ('' for the form)."""

    raw: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def fail(self, name: str, message: str) -> None:
        """Every error of a field is shown beside it (two bad lines of a list: both)."""
        old = self.errors.get(name)
        if not old:
            self.errors[name] = message
        elif message not in old.split("; "):
            self.errors[name] = f"{old}; {message}"

    def fail_form(self, message: str) -> None:
        """An error of the whole record: every one is shown, at the top of the form."""
        self.errors[""] = f"{self.errors['']}; {message}" if self.errors.get("") else message


def raw_of(record: Any, fields: list[Field]) -> dict[str, Any]:
    """A record's values as form strings (secrets never go back to the browser)."""
    raw: dict[str, Any] = {}
    for f in fields:
        value = getattr(record, f.name, None)
        if f.kind == SECRET:
            raw[f.name] = ""
        elif f.kind == BOOL:
            raw[f.name] = bool(value)
        elif f.kind == MULTI:
            raw[f.name] = list(value or [])
        elif f.kind == LINES:
            raw[f.name] = "\n".join(value or [])
        else:
            raw[f.name] = "" if value is None else str(value)
    return raw


def defaults_of(record_type: type) -> dict[str, Any]:
    """The dataclass defaults of `record_type` (required fields are absent)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record_type):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def read_form(form: Mapping[str, Any], fields: list[Field], state: FormState,
              existing: Any = None) -> dict[str, Any]:
    """Typed values of `fields` from a posted form; type errors go to `state.errors`.

    A blank SECRET keeps the existing record's value (admins should not retype a trunk password
    to change its port).
    """
    values: dict[str, Any] = {}
    for f in fields:
        if f.kind == BOOL:
            state.raw[f.name] = values[f.name] = f.name in form
            continue
        if f.kind == MULTI:
            picked = form.getlist(f.name) if hasattr(form, "getlist") else list(form.get(f.name) or [])
            state.raw[f.name] = values[f.name] = [str(p) for p in picked]
            continue
        text = str(form.get(f.name, ""))
        # A secret typed in this request comes back in a refused form (a generated SIP password
        # is not lost); a stored one never reaches the page (raw_of).
        state.raw[f.name] = text
        if f.kind == SECRET:
            if text:
                values[f.name] = text
            elif existing is not None:
                values[f.name] = getattr(existing, f.name)
            elif f.optional:
                values[f.name] = None
            else:
                state.fail(f.name, "required")
                values[f.name] = ""
        elif f.kind == INT:
            try:
                values[f.name] = int(text.strip())
            except ValueError:
                state.fail(f.name, f"{text!r} is not a whole number" if text.strip() else "required")
                values[f.name] = 0
        elif f.kind == OPTIONAL or (f.kind == DESTINATION and f.optional):
            values[f.name] = text.strip() or None
        elif f.kind == LINES:
            values[f.name] = [line.strip() for line in text.splitlines() if line.strip()]
        else:
            values[f.name] = text.strip()
    return values


def show_errors(state: FormState, errors: Sequence[FieldError], fields: list[Field],
                under: tuple[str | int, ...] = ()) -> None:
    """Put every validation error beside the field it names, or at the top of the form.

    `under` is the record's own path in the errors (the store names a record "extension"); an
    error on a list item (``skills[1]``) goes beside the list, "line 2:" in front.
    """
    shown = {f.name for f in fields}
    # A field the form could not even read (a port of "fifty") keeps that error alone: the model
    # saw a stand-in value, and its range error would be about a number nobody typed.
    unreadable = set(state.errors)
    for error in errors:
        loc = error.loc[len(under):] if error.loc[:len(under)] == under else error.loc
        name = loc[0] if loc and isinstance(loc[0], str) else None
        if name in unreadable:
            continue
        if name is None or name not in shown:
            state.fail_form(str(error))
        elif len(loc) > 1 and isinstance(loc[1], int):
            state.fail(name, f"line {loc[1] + 1}: {error.msg}")
        else:
            state.fail(name, error.msg)


def show_refusal(state: FormState, exc: ConfigError, fields: list[Field], under: tuple[str | int, ...]) -> None:
    """A store refusal: its field errors beside their fields, a refusal of the whole record on top."""
    if isinstance(exc, RecordInvalid):
        show_errors(state, exc.errors, fields, under)
    else:
        state.fail_form(str(exc))


def audit_dict(record: Any, secrets: tuple[str, ...] = (), before: Any = None) -> dict[str, Any] | None:
    """`dataclasses.asdict(record)` with secrets masked (a changed secret says so, never its value)."""
    if record is None:
        return None
    data = dataclasses.asdict(record)
    for name in secrets:
        if data.get(name):
            changed = before is not None and getattr(before, name, None) != data[name]
            data[name] = f"{MASK} (changed)" if changed else MASK
    return data


def reload_engine() -> None:
    """Ask the engine to read the configuration again; say so plainly if it is not running."""
    try:
        engine().request("POST", "/v1/reload")
    except ApiUnavailable:
        flash("The engine is not running: it will read this configuration when it starts.")
    except ApiError as exc:
        flash(f"Saved, but the engine refused to reload: {exc.message}")


def engine_status() -> dict[str, Any] | None:
    """The engine's status, or None when it is not running."""
    try:
        status = engine().request("GET", "/v1/status")
    except ApiError:
        return None
    return status if isinstance(status, dict) else {}
