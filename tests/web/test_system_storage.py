"""The System page shows the engine's storage fault (disk full, writes kept in memory) loudly."""
from __future__ import annotations

from flask.testing import FlaskClient

from appliance.system.health import storage_fault
from tests.web.conftest import FakeEngineApi

_STATUS = {"version": "0.1.0", "uptime": 60.0, "hostname": "pbx1", "calls": 1, "registrations": 2,
           "blocked": 0, "trunks": []}
_FULL = {"ok": False, "fault": "disk full", "since": 1.0, "last_error": "database or disk is full",
         "pending": 12, "limit": 50000, "deferred": 12, "flushed": 0, "dropped": {"queue_log": 3},
         "rejected": 0, "failures": {"disk full": 4}, "write_ms": {}}


def test_a_full_disk_is_an_alert_on_the_health_page_and_in_plateau_health(
        admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    engine_api.responses[("GET", "/v1/status")] = {**_STATUS, "storage": _FULL}
    page = admin.get("/system/").get_data(as_text=True)
    assert 'id="storage-alert"' in page and "Storage fault: disk full" in page
    assert "12 call record write(s) kept in memory" in page and "3 queue_log" in page
    assert storage_fault({**_STATUS, "storage": _FULL}) == "disk full: 12 write(s) deferred, 3 dropped"
    engine_api.responses[("GET", "/v1/status")] = {**_STATUS, "storage": {**_FULL, "ok": True, "fault": None,
                                                                          "pending": 0, "dropped": {}}}
    assert 'id="storage-alert"' not in admin.get("/system/").get_data(as_text=True)
    assert storage_fault(_STATUS) == ""
