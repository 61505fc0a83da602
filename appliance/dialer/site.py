"""The site settings the dialer reads, in one place for the engine and the web UI.

National numbers in prospect files are read in the site's country; call-back times typed on the
agent desk, and leads whose number spans several zones, use the site's time zone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

COUNTRY_SETTING = "site.country"
TIMEZONE_SETTING = "site.timezone"
NUMBER_LIMIT_SETTING = "dialer.number_limit"  # calls to one number, all campaigns together...
NUMBER_HOURS_SETTING = "dialer.number_limit_hours"  # ...within this rolling window
DEFAULT_COUNTRY = "FR"
DEFAULT_NUMBER_LIMIT = 3
DEFAULT_NUMBER_HOURS = 24


class Settings(Protocol):
    def get_setting(self, name: str, default: str | None = None) -> str | None: ...


def site_country(store: Settings) -> str:
    """`site.country`, upper-cased, else FR."""
    return (store.get_setting(COUNTRY_SETTING) or DEFAULT_COUNTRY).upper()


def site_timezone(store: Settings) -> str:
    """`site.timezone`, else the system's zone (/etc/timezone), else UTC."""
    zone = store.get_setting(TIMEZONE_SETTING)
    if zone:
        return zone
    try:
        return Path("/etc/timezone").read_text().strip() or "UTC"
    except OSError:
        return "UTC"


def number_limit(store: Settings) -> tuple[int, int]:
    """(calls allowed to one number, per this many hours); 0 calls: no limit."""
    return (int(store.get_setting(NUMBER_LIMIT_SETTING) or DEFAULT_NUMBER_LIMIT),
            int(store.get_setting(NUMBER_HOURS_SETTING) or DEFAULT_NUMBER_HOURS))
