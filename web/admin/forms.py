"""Form plumbing shared by the admin sections: field specs, parsing a posted form into record
values, mapping a store ConfigError onto the field it names, audit dicts without secrets, and
asking the engine to reload.

The request layer stays thin: a section declares its fields once and `crud.py` does the rest.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import flash

from appliance.api.facade import ApiError, ApiUnavailable
from web.context import engine

# Field kinds: how a value is shown and read back.
TEXT, OPTIONAL, INT, BOOL, SELECT, LINES, MULTI, SECRET = (
    "text", "optional", "int", "bool", "select", "lines", "multi", "secret")
MASK = "****"


@dataclass
class Field:
    """One form field of a record.

    `choices` (SELECT, MULTI) and `suggest` (datalist for TEXT/OPTIONAL, or the ordered-list widget
    for LINES) are callables so they read the database at request time.
    """

    name: str
    label: str
    kind: str = TEXT
    help: str = ""
    choices: Callable[[], list[tuple[str, str]]] | None = None
    suggest: Callable[[], list[tuple[str, str]]] | None = None
    placeholder: str = ""
    ordered: bool = False  # LINES whose order matters (queue members): the JS list widget
    optional: bool = False  # SECRET that may stay unset (a trunk without authentication)
    wide: bool = False


@dataclass
class FormState:
    """What a form page shows: raw values as typed, and errors by field ('' for the form)."""

    raw: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)


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
        state.raw[f.name] = "" if f.kind == SECRET else text
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
        elif f.kind == OPTIONAL:
            values[f.name] = text.strip() or None
        elif f.kind == LINES:
            values[f.name] = [line.strip() for line in text.splitlines() if line.strip()]
        else:
            values[f.name] = text.strip()
    return values


_INDEXED = re.compile(r"^(?P<name>[A-Za-z_]+)\[(?P<i>\d+)\]$")


def split_config_error(message: str) -> tuple[str | None, str]:
    """``"extension.number: '10a1' is not 2-8 digits"`` -> ``("number", "'10a1' is not 2-8 digits")``.

    A list item (``skills[1]``) maps to its field with "line 2" in front; a message that names no
    field (``"extension 1001: inbound route(s) 0800 point at it"``) gives None.
    """
    where, sep, text = message.partition(": ")
    if not sep or "." not in where or " " in where:
        return None, message
    name = where.split(".", 1)[1]
    m = _INDEXED.match(name)
    if m:
        return m.group("name"), f"line {int(m.group('i')) + 1}: {text}"
    return name, text


def apply_config_error(state: FormState, message: str, fields: list[Field]) -> None:
    """Put a store refusal beside the field it names, or at the top of the form."""
    name, text = split_config_error(message)
    if name is not None and any(f.name == name for f in fields):
        state.fail(name, text)
    else:
        state.fail("", message)


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
