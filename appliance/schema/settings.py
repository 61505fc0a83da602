"""Settings: their names, types, defaults and checks, shared by the engine and the web UI.

A setting is stored as text. Its `Setting` here is the one definition of what a valid value is:
the YAML import and the settings page refuse the same values with the same words, and the
engine reads the typed value (`Setting.value`) instead of converting the text itself.

This module imports nothing of the runtime, so web/ can read setting names and parse their
values without pulling the PBX into the web process (docs/ARCHITECTURE.md, "web imports no
runtime module").
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.schema.errors import FieldError
from appliance.schema.records import NAME_RE, PIN_RE
from appliance.schema.types import CHECKS

RETENTION_SETTING = "recording.retention_days"
DEFAULT_RETENTION_DAYS = 90
MAX_RETENTION_DAYS = 3650
SUPERVISORS_SETTING = "acd.supervisors"
CALLBACK_ROUTES_SETTING = "acd.callback_routes"
COUNTRY_SETTING = "site.country"
TIMEZONE_SETTING = "site.timezone"
NUMBER_LIMIT_SETTING = "dialer.number_limit"  # calls to one number, all campaigns together...
NUMBER_HOURS_SETTING = "dialer.number_limit_hours"  # ...within this rolling window
RING_SECONDS_SETTING = "dialer.ring_seconds"  # how long a dialer call rings before it is a no-answer
DEFAULT_COUNTRY = "FR"
DEFAULT_NUMBER_LIMIT = 3
DEFAULT_NUMBER_HOURS = 24
DEFAULT_RING_SECONDS = 25
# Scheduled backups (appliance/system/backup_schedule.py, System > Backup).
BACKUP_DIR_SETTING = "backup.dir"
BACKUP_EVERY_SETTING = "backup.every_hours"
BACKUP_KEEP_COUNT_SETTING = "backup.keep_count"
BACKUP_KEEP_DAYS_SETTING = "backup.keep_days"
BACKUP_MOUNT_SETTING = "backup.require_mount"
# A voicemail box's PIN is the setting "voicemail.pin.<extension>".
PIN_SETTING_PREFIX = "voicemail.pin."
# Per-trunk transfer rights (appliance/pbx/permission.py reads them):
#   "off" (the default): a call from that trunk may not transfer at all;
#   "internal": to extensions and queues only;
#   "internal,<route>,...": also out through the named outbound routes.
TRUNK_TRANSFER_SETTING = "trunk.{name}.transfer"
TRUNK_TRANSFER_OFF = "off"
TRUNK_TRANSFER_INTERNAL = "internal"
_TRUNK_TRANSFER_RE = re.compile(r"^trunk\.[^.]+\.transfer$")

# Pause reason codes an agent keys after *63 (Asterisk/VICIdial sites use short numeric codes).
PAUSE_REASONS = {"1": "break", "2": "lunch", "3": "training", "4": "meeting", "5": "back-office", "9": "other"}


def supervisors(raw: str | None) -> set[str]:
    """The extensions of the ``acd.supervisors`` setting ("1004, 1005" -> {"1004", "1005"})."""
    return {part.strip() for part in (raw or "").split(",") if part.strip()}


def names(raw: str | None) -> list[str]:
    """A comma-separated setting as its items, in order ("a, b" -> ["a", "b"])."""
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


class SettingInvalid(ValueError):
    """A stored setting's text is not a valid value; the message says what it should be."""


@dataclass(frozen=True)
class Setting:
    """One typed setting: its stored name, type, default, allowed range and what it is for.

    `error()` is the one check of a raw value (the YAML import, the settings page); `value()`
    is the typed value the engine reads. `check`, for text settings, raises ValueError saying
    what is wrong.
    """

    name: str
    type: type
    default: int | str | None
    description: str
    low: int | None = None
    high: int | None = None
    hint: str = ""
    check: Callable[[str], object] | None = None

    def error(self, raw: str) -> str | None:
        """Why `raw` is not a valid value of this setting, or None when it is."""
        if self.type is int:
            ok = raw.isdigit() and (self.low is None or int(raw) >= self.low) and (
                self.high is None or int(raw) <= self.high)
            if not ok:
                return self.hint or f"a whole number from {self.low} to {self.high}"
        if self.check is not None:
            try:
                self.check(raw)
            except ValueError as exc:
                return str(exc)
        return None

    def value(self, raw: str | None) -> int | str | None:
        """The typed value of stored text `raw` (None or empty: the default); SettingInvalid if bad."""
        if raw is None or raw == "":
            return self.default
        error = self.error(raw)
        if error is not None:
            raise SettingInvalid(f"setting {self.name}={raw!r}: {error}")
        if self.type is int:
            return int(raw)
        # A text setting's check gives its normal form ("gb" -> "GB").
        return str(self.check(raw)) if self.check is not None else raw

    def number(self, raw: str | None) -> int:
        """`value()` of an int setting, typed as one."""
        value = self.value(raw)
        if not isinstance(value, int):
            raise SettingInvalid(f"setting {self.name} has no number")
        return value

    def text(self, raw: str | None) -> str:
        """`value()` of a text setting, typed as one ("" when unset without a default)."""
        value = self.value(raw)
        return "" if value is None else str(value)


def _country(raw: str) -> str:
    # Imported here: appliance.dialer.numbers loads libphonenumber's metadata (slow at start-up).
    from appliance.dialer.numbers import check_country
    return check_country(raw)


def _zone(raw: str) -> str:
    try:
        return ZoneInfo(raw).key
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{raw!r} is not a time zone (like Europe/Paris, America/New_York)") from None


def _backup_dir(raw: str) -> str:
    if raw and (not raw.startswith("/") or "\0" in raw or "/../" in f"{raw}/"):
        raise ValueError("an absolute directory, like /media/usb or /mnt/backups")
    return raw.rstrip("/") or raw


def _yes_no(raw: str) -> str:
    if raw.lower() not in ("yes", "no"):
        raise ValueError("yes or no")
    return raw.lower()


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting(RETENTION_SETTING, int, DEFAULT_RETENTION_DAYS, "days a call recording is kept (0: forever)",
            low=0, high=MAX_RETENTION_DAYS, hint=f"a number of days from 0 to {MAX_RETENTION_DAYS}"),
    Setting(NUMBER_LIMIT_SETTING, int, DEFAULT_NUMBER_LIMIT,
            "calls to one number, all campaigns together (0: no limit)", low=0, high=50),
    Setting(NUMBER_HOURS_SETTING, int, DEFAULT_NUMBER_HOURS, "hours the per-number limit counts over",
            low=1, high=720),
    Setting(RING_SECONDS_SETTING, int, DEFAULT_RING_SECONDS,
            "seconds a dialer call rings before it counts as no answer", low=1, high=120),
    Setting(COUNTRY_SETTING, str, DEFAULT_COUNTRY, "how national numbers in prospect lists are read",
            check=_country),
    Setting(TIMEZONE_SETTING, str, None, "the site's time zone (empty: the system's)", check=_zone),
    Setting(SUPERVISORS_SETTING, str, "", "extensions that may listen, whisper and barge (comma-separated)"),
    Setting(BACKUP_DIR_SETTING, str, "", "where scheduled backups go: a directory, a USB disk or a network"
            " share's mount point (empty: no scheduled backups)", check=_backup_dir),
    Setting(BACKUP_EVERY_SETTING, int, 24, "hours between scheduled backups", low=1, high=720),
    Setting(BACKUP_KEEP_COUNT_SETTING, int, 7, "scheduled backups kept (0: no limit by count)", low=0, high=1000),
    Setting(BACKUP_KEEP_DAYS_SETTING, int, 30, "days a scheduled backup is kept (0: no limit by age)",
            low=0, high=MAX_RETENTION_DAYS),
    Setting(BACKUP_MOUNT_SETTING, str, "no", "the backup directory must be mounted (yes for a USB disk or a"
            " network share, so an unmounted one fails instead of filling the system disk)", check=_yes_no),
    Setting(CALLBACK_ROUTES_SETTING, str, "", "outbound routes queue callbacks may use (comma-separated)"),
)}


def trunk_transfer_error(raw: str) -> str | None:
    """Why `raw` is not a trunk's transfer rights ("off", "internal", "internal,<route>,...")."""
    rights = names(raw)
    bad = [r for r in rights if r not in (TRUNK_TRANSFER_OFF, TRUNK_TRANSFER_INTERNAL) and not NAME_RE.match(r)]
    if bad or not rights:
        return "off, internal, or internal followed by outbound route names (comma-separated)"
    if TRUNK_TRANSFER_INTERNAL not in rights and set(rights) != {TRUNK_TRANSFER_OFF}:
        return "outbound routes need internal first: internal, <route>, ..."
    return None


def setting_error(name: str, raw: str) -> str | None:
    """Why `raw` is not a valid value of setting `name` (None when it is, or the name is untyped)."""
    if name.startswith(PIN_SETTING_PREFIX):
        return None if PIN_RE.match(raw) else "4-8 digits (typed on the phone keypad)"
    if _TRUNK_TRANSFER_RE.match(name):
        return trunk_transfer_error(raw)
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
