"""The site settings the dialer reads, in one place for the engine and the web UI.

National numbers in prospect files are read in the site's country; call-back times typed on the
agent desk, and leads whose number spans several zones, use the site's time zone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

# The settings' names, defaults and checks are defined once, in appliance/schema/settings.py.
from appliance.schema.settings import COUNTRY_SETTING as COUNTRY_SETTING
from appliance.schema.settings import DEFAULT_COUNTRY as DEFAULT_COUNTRY
from appliance.schema.settings import DEFAULT_NUMBER_HOURS as DEFAULT_NUMBER_HOURS
from appliance.schema.settings import DEFAULT_NUMBER_LIMIT as DEFAULT_NUMBER_LIMIT
from appliance.schema.settings import NUMBER_HOURS_SETTING as NUMBER_HOURS_SETTING
from appliance.schema.settings import NUMBER_LIMIT_SETTING as NUMBER_LIMIT_SETTING
from appliance.schema.settings import SETTINGS
from appliance.schema.settings import TIMEZONE_SETTING as TIMEZONE_SETTING


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
    return (SETTINGS[NUMBER_LIMIT_SETTING].number(store.get_setting(NUMBER_LIMIT_SETTING)),
            SETTINGS[NUMBER_HOURS_SETTING].number(store.get_setting(NUMBER_HOURS_SETTING)))
