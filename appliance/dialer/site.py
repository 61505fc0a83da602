"""The site settings the dialer reads, in one place for the engine and the web UI.

National numbers in prospect files are read in the site's country; call-back times typed on the
agent desk, and leads whose number spans several zones, use the site's time zone.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

# The settings' names, defaults and checks are defined once, in appliance/schema/settings.py.
from appliance.schema.settings import COUNTRY_SETTING as COUNTRY_SETTING
from appliance.schema.settings import DEFAULT_COUNTRY as DEFAULT_COUNTRY
from appliance.schema.settings import DEFAULT_NUMBER_HOURS as DEFAULT_NUMBER_HOURS
from appliance.schema.settings import DEFAULT_NUMBER_LIMIT as DEFAULT_NUMBER_LIMIT
from appliance.schema.settings import NUMBER_HOURS_SETTING as NUMBER_HOURS_SETTING
from appliance.schema.settings import NUMBER_LIMIT_SETTING as NUMBER_LIMIT_SETTING
from appliance.schema.settings import SETTINGS, SettingInvalid
from appliance.schema.settings import TIMEZONE_SETTING as TIMEZONE_SETTING


log = logging.getLogger("plateau.dialer")


class Settings(Protocol):
    def get_setting(self, name: str, default: str | None = None) -> str | None: ...


def site_country(store: Settings) -> str:
    """`site.country` in its normal form (upper case), else FR."""
    raw = store.get_setting(COUNTRY_SETTING)
    try:
        return str(SETTINGS[COUNTRY_SETTING].value(raw))
    except SettingInvalid as exc:
        # Read as before (the code upper-cased): a stored code the check refuses still says which.
        log.error("%s: read as %r", exc, (raw or DEFAULT_COUNTRY).upper())
        return (raw or DEFAULT_COUNTRY).upper()


def site_timezone(store: Settings) -> str:
    """`site.timezone`, else the system's zone (/etc/timezone), else UTC."""
    raw = store.get_setting(TIMEZONE_SETTING)
    try:
        zone = SETTINGS[TIMEZONE_SETTING].value(raw)
    except SettingInvalid as exc:
        log.error("%s: read as is", exc)
        zone = raw
    if zone:
        return str(zone)
    try:
        return Path("/etc/timezone").read_text().strip() or "UTC"
    except OSError:
        return "UTC"


def number(store: Settings, name: str) -> int:
    """The whole-number setting `name` by its definition; a stored value it refuses is logged and
    the default used (the engine keeps dialling on a hand-edited database)."""
    setting = SETTINGS[name]
    try:
        return setting.number(store.get_setting(name))
    except SettingInvalid as exc:
        log.error("%s: using %s", exc, setting.default)
        return setting.number(None)


def number_limit(store: Settings) -> tuple[int, int]:
    """(calls allowed to one number, per this many hours); 0 calls: no limit."""
    return number(store, NUMBER_LIMIT_SETTING), number(store, NUMBER_HOURS_SETTING)
