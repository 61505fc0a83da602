"""Settings are checked by one definition (appliance/schema/settings.py) at every boundary."""
from __future__ import annotations

import pytest

from appliance.schema.settings import (
    COUNTRY_SETTING,
    NUMBER_LIMIT_SETTING,
    RETENTION_SETTING,
    RING_SECONDS_SETTING,
    SETTINGS,
    TIMEZONE_SETTING,
    SettingInvalid,
    setting_error,
)
from appliance.dialer import site
from appliance.store.config_yaml import parse_config
from appliance.store.errors import ConfigError


def test_retention_accepts_days_in_range() -> None:
    assert setting_error(RETENTION_SETTING, "0") is None
    assert setting_error(RETENTION_SETTING, "3650") is None
    assert SETTINGS[RETENTION_SETTING].default == 90


@pytest.mark.parametrize("raw", ["abc", "-1", "3651", "", "9.5"])
def test_retention_refuses_what_the_settings_page_refuses(raw: str) -> None:
    assert setting_error(RETENTION_SETTING, raw) == "a number of days from 0 to 3650"


def test_yaml_import_refuses_a_retention_of_abc() -> None:
    # The settings page refused "abc" while the YAML import stored it: both use one check now.
    with pytest.raises(ConfigError, match=r"recording\.retention_days: a number of days from 0 to 3650"):
        parse_config('version: 1\nsettings:\n  recording.retention_days: "abc"\n')


def test_yaml_import_accepts_a_valid_retention_and_untyped_settings() -> None:
    data = parse_config('version: 1\nsettings:\n  recording.retention_days: "30"\n  site.note: "x"\n')
    assert data.settings == {"recording.retention_days": "30", "site.note": "x"}


def test_the_settings_page_and_the_yaml_import_refuse_the_same_site_values() -> None:

    assert setting_error(NUMBER_LIMIT_SETTING, "51") == "a whole number from 0 to 50"
    assert setting_error(TIMEZONE_SETTING, "Mars/Olympus") == (
        "'Mars/Olympus' is not a time zone (like Europe/Paris, America/New_York)")
    with pytest.raises(ConfigError, match=r"settings\.dialer\.number_limit: a whole number from 0 to 50; "
                                          r"settings\.voicemail\.pin\.1001: 4-8 digits"):
        parse_config('version: 1\nsettings:\n  dialer.number_limit: "abc"\n  voicemail.pin.1001: "12"\n')


def test_the_engine_reads_the_typed_value() -> None:

    retention = SETTINGS[RETENTION_SETTING]
    assert retention.value(None) == 90 and retention.value("30") == 30
    assert SETTINGS[COUNTRY_SETTING].value("gb") == "GB"
    with pytest.raises(SettingInvalid, match="recording.retention_days='ninety': a number of days"):
        retention.number("ninety")


class _StoredSettings:
    """The store's settings port (site.Settings): stored text by name."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get_setting(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)


def test_the_dialer_ring_time_is_a_typed_setting(caplog: pytest.LogCaptureFixture) -> None:
    # The dialer did int(...) on dialer.ring_seconds itself; the YAML import stored any text.
    with pytest.raises(ConfigError, match=r"settings\.dialer\.ring_seconds: a whole number from 1 to 120"):
        parse_config('version: 1\nsettings:\n  dialer.ring_seconds: "abc"\n')
    assert setting_error(RING_SECONDS_SETTING, "0") == "a whole number from 1 to 120"
    assert site.number(_StoredSettings({}), RING_SECONDS_SETTING) == 25
    assert site.number(_StoredSettings({RING_SECONDS_SETTING: "8"}), RING_SECONDS_SETTING) == 8
    # A hand-edited database: the engine says so and keeps dialling with the default.
    assert site.number(_StoredSettings({RING_SECONDS_SETTING: "abc"}), RING_SECONDS_SETTING) == 25
    assert "dialer.ring_seconds='abc'" in caplog.text


def test_a_trunks_transfer_rights_are_checked_by_the_yaml_import() -> None:
    # Read by the engine (Principal.trunk) but stored unchecked: "internl" silently meant "off".
    for raw in ("off", "internal", "internal, national, intl"):
        assert setting_error("trunk.carrier.transfer", raw) is None
    with pytest.raises(ConfigError, match=r"settings\.trunk\.carrier\.transfer: off, internal, or internal "
                                          r".*settings\.trunk\.b\.transfer: outbound routes need internal first"):
        parse_config('version: 1\nsettings:\n  trunk.carrier.transfer: "internl!"\n  trunk.b.transfer: "national"\n')
