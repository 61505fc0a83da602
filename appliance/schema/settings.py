"""Setting names and their pure helpers, shared by the engine and the web UI.

This module imports nothing of the runtime, so web/ can read setting names and parse their
values without pulling the PBX into the web process (docs/ARCHITECTURE.md, "web imports no
runtime module").
"""
from __future__ import annotations

from dataclasses import dataclass

from appliance.schema.errors import FieldError
from appliance.schema.records import NAME_RE
from appliance.schema.types import CHECKS

RETENTION_SETTING = "recording.retention_days"
DEFAULT_RETENTION_DAYS = 90
SUPERVISORS_SETTING = "acd.supervisors"
CALLBACK_ROUTES_SETTING = "acd.callback_routes"

# Pause reason codes an agent keys after *63 (Asterisk/VICIdial sites use short numeric codes).
PAUSE_REASONS = {"1": "break", "2": "lunch", "3": "training", "4": "meeting", "5": "back-office", "9": "other"}


def supervisors(raw: str | None) -> set[str]:
    """The extensions of the ``acd.supervisors`` setting ("1004, 1005" -> {"1004", "1005"})."""
    return {part.strip() for part in (raw or "").split(",") if part.strip()}


@dataclass(frozen=True)
class Setting:
    """One typed setting: its stored name, type, default, allowed range and what it is for.

    Settings are stored as text; `error()` is the one check of a raw value, used by the YAML
    import (store/validation.check_setting) and the settings page alike.
    """

    name: str
    type: type
    default: int | str | None
    description: str
    low: int | None = None
    high: int | None = None
    hint: str = ""

    def error(self, raw: str) -> str | None:
        """Why `raw` is not a valid value of this setting, or None when it is."""
        if self.type is int:
            ok = raw.isdigit() and (self.low is None or int(raw) >= self.low) and (
                self.high is None or int(raw) <= self.high)
            if not ok:
                return self.hint or f"a whole number from {self.low} to {self.high}"
        return None


MAX_RETENTION_DAYS = 3650

SETTINGS: dict[str, Setting] = {
    RETENTION_SETTING: Setting(
        RETENTION_SETTING, int, DEFAULT_RETENTION_DAYS, "days a call recording is kept (0: forever)",
        low=0, high=MAX_RETENTION_DAYS, hint=f"a number of days from 0 to {MAX_RETENTION_DAYS}"),
}


def setting_error(name: str, raw: str) -> str | None:
    """Why `raw` is not a valid value of setting `name` (None when it is, or the name is untyped)."""
    setting = SETTINGS.get(name)
    return setting.error(raw) if setting is not None else None


MAX_SETTING_LENGTH = 4096


def setting_errors(name: object, raw: object, where: str = "settings", *, typed: bool = False) -> list[FieldError]:
    """Every error of one stored setting: its name, its text, and (``typed``) its typed value.

    The store keeps any well-formed text (the engine reads a bad value loudly, as its default);
    the YAML import and the settings page also apply the typed check, so both refuse alike.
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        return [FieldError((where,), f"{name!r} is not a setting name")]
    try:
        CHECKS[str](raw)
    except ValueError as exc:
        return [FieldError((where, name), str(exc))]
    text = str(raw)
    if len(text) > MAX_SETTING_LENGTH:
        return [FieldError((where, name), f"is longer than {MAX_SETTING_LENGTH} characters")]
    error = setting_error(name, text) if typed else None
    return [FieldError((where, name), error)] if error is not None else []
