"""The web UI on PostgreSQL (`plateau web --db URL`): tests of the SQLite suite, run again on a
database of the test's own on the session's server (tests/peers/postgres.py).

The `app` fixture below replaces tests/web/conftest.py's for this module only; the tests are the
suite's own, imported, so the same assertions hold on both backends.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask import Flask

from appliance.store.db import Store
from tests.web.conftest import PASSWORD, FakeEngineApi
from tests.web.test_admin_config import (  # noqa: F401 (collected here, on PostgreSQL)
    seeded,
    test_every_bad_field_is_shown_at_once,
    test_section_create_bad_edit_delete,
)
from tests.web.test_auth import (  # noqa: F401
    test_logout,
    test_password_change_shows_every_bad_field_beside_it,
    test_wrong_password_then_lockout_after_five,
)
from tests.web.test_reports import (  # noqa: F401
    test_call_search_with_playback,
    test_kpis_match_the_queue_log,
    test_recording_path_escape_is_refused,
    test_recording_streams_and_is_audited,
)
from web import accounts, create_app


@pytest.fixture
def app(data_dir: Path, engine_api: FakeEngineApi, postgres_url: str) -> Flask:
    data_dir.mkdir(parents=True, exist_ok=True)
    with Store(postgres_url) as store:
        for name, role in (("admin", "admin"), ("super", "supervisor"), ("agent1", "agent")):
            accounts.create_user(store, name, PASSWORD, role, time.time(), must_change=False,
                                 agent_id="2001" if role == "agent" else None)
    return create_app(data_dir, testing=True, api_client=engine_api, secret_key="test-secret", db=postgres_url)


def test_the_app_reads_and_writes_postgresql_only(app: Flask, data_dir: Path, postgres_url: str) -> None:
    from tests.web.conftest import login

    admin = login(app.test_client(), "admin")
    assert admin.get("/system/").status_code == 200  # health: no SQLite file to measure
    assert not (data_dir / "plateau.db").exists()
    with Store(postgres_url) as store:
        assert store.query("SELECT COUNT(*) FROM web_sessions")[0][0] == 1
