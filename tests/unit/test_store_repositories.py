"""The store modules that took the SQL of web/ and system/: typed rows on a real SQLite store.

appliance/store/{recordings,accounts,quality,reports,dbfile}.py; the pages and the backup that
use them have their own tests (tests/web/, tests/unit/test_backup_db.py).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from appliance.store import accounts, dbfile, quality, recordings, reports
from appliance.store.db import Store
from appliance.store.migrations import MIGRATIONS
from tests.peers.postgres import sqlite_only


def test_a_recording_continued_after_a_media_restart_is_a_new_row_of_the_same_call(store: Store) -> None:
    cdr = store.cdr_open("c1", "1001", "", "1002", "internal", 100.0)
    first = recordings.start(store, "c1", cdr, "2026/a.wav", "stereo", "queue", "sales", "", 100.0)
    recordings.set_party(store, first, "a1", "support")
    second = recordings.continue_in(store, first, 105.0, "died", "2026/b.wav", 106.0, "part 2")
    assert second > first
    recordings.stop(store, second, 130.0, 2.5)
    rows = recordings.for_call(store, "c1")
    assert [(r.id, r.path, r.cdr_id, r.agent, r.queue, r.ended_at, r.note) for r in rows] == [
        (first, "2026/a.wav", cdr, "a1", "support", 105.0, "died"),
        (second, "2026/b.wav", cdr, "a1", "support", 130.0, "part 2"),
    ]
    assert rows[1].paused_s == 2.5 and recordings.get(store, second) == rows[1]
    assert recordings.get(store, 999) is None
    assert recordings.count(store) == 2 and recordings.open_rows(store) == []
    assert recordings.paths(store) == {"2026/a.wav", "2026/b.wav"}


def test_retention_reads_only_closed_rows_and_the_archive_round_trips(store: Store) -> None:
    done = recordings.start(store, "c1", None, "old.wav", "mixed", "always", "", "", 10.0)
    recordings.stop(store, done, 20.0, 0.0)
    writing = recordings.start(store, "c2", None, "open.wav", "mixed", "always", "", "", 5.0)
    assert recordings.closed_before(store, 100.0) == [(done, "old.wav")]
    assert recordings.open_rows(store) == [recordings.OpenRecording(writing, "open.wav", 5.0)]
    archived = [{k: getattr(r, k) for k in recordings.ARCHIVE_COLUMNS} for r in recordings.closed(store)]
    recordings.delete(store, done)
    recordings.add_archived(store, archived)
    [back] = recordings.closed(store)
    assert (back.call_id, back.path, back.started_at, back.ended_at) == ("c1", "old.wav", 10.0, 20.0)


def test_failed_logins_lock_then_a_lapsed_lock_counts_again_from_one(store: Store) -> None:
    accounts.insert_user(store, "ann", "hash", "agent", None, True, 1.0)
    for _ in range(3):
        accounts.count_failed_login(store, "ann", 10.0, 3, 310.0)
    user = accounts.get_user(store, "ann")
    assert user == accounts.WebUser("ann", "agent", None, True, 3, 310.0)
    accounts.count_failed_login(store, "ann", 400.0, 3, 700.0)  # the lock lapsed at 310
    user = accounts.get_user(store, "ann")
    assert user is not None and (user.failed_logins, user.locked_until) == (1, None)
    accounts.update_password(store, "ann", "new", must_change=False)
    assert accounts.password_hash(store, "ann") == "new"
    assert accounts.password_hash(store, "nobody") is None


def test_audit_rows_filter_by_action_prefix_and_count_failures_by_address(store: Store) -> None:
    accounts.add_audit(store, 1.0, "ann", "user.create", "bob", None, '{"role": "agent"}')
    accounts.add_audit(store, 2.0, "ann", "users.export", "", None, None)
    for at in (3.0, 4.0):
        accounts.add_audit(store, at, "bob", "login.failed", "192.0.2.7", None, None)
    assert [r.action for r in accounts.audit_rows(store, action="user")] == ["user.create"]
    assert accounts.audit_rows(store, username="ann", limit=1)[0].at == 2.0
    assert accounts.failed_logins_from(store, "192.0.2.7", 0.0) == 2
    assert accounts.failed_logins_for(store, "bob", "192.0.2.7", 3.5) == 1
    accounts.add_audit(store, 5.0, "bob", "login", "192.0.2.7", None, None)  # a good login ends it
    assert accounts.failed_logins_for(store, "bob", "192.0.2.7", 0.0) == 0
    assert accounts.audit_facets(store) == (["ann", "bob"], ["login", "login.failed", "user.create",
                                                            "users.export"])


def test_a_scorecard_reads_back_typed_with_its_total(store: Store) -> None:
    values = {"recording_id": None, "call_id": "c1", "agent": "a1", "supervisor": "sue", "verification": 5,
              "call_handling": 4, "call_flow": 3, "soft_skills": 5, "resolution": 3, "comment": "ok", "at": 50.0}
    score_id = quality.add_score(store, values)
    [row] = quality.scores(store, 0.0, "a1")
    assert row.id == score_id and row.total == 20 and row.percent == pytest.approx(80.0)
    assert quality.scores(store, 0.0, "a2") == [] and quality.scores(store, 60.0) == []


def test_the_call_search_folds_case_and_takes_wildcards_literally(store: Store) -> None:
    store.cdr_open("c1", "Alice", "", "1002", "inbound", 10.0)
    store.cdr_open("c2", "50%_off", "", "1003", "outbound", 11.0)
    store.cdr_open("c3", "5000", "", "1004", "outbound", 12.0)
    assert [r.call_id for r in reports.search_calls(store, 0.0, 100.0, "aLiCe")] == ["c1"]
    assert [r.call_id for r in reports.search_calls(store, 0.0, 100.0, "0%_")] == ["c2"]
    assert [r.call_id for r in reports.search_calls(store, 0.0, 100.0, limit=2)] == ["c3", "c2"]
    assert reports.volume_by_direction(store, 0.0, 100.0) == {"inbound": 1, "outbound": 2}
    assert reports.volume_by_direction(store, 11.5, 100.0) == {"outbound": 1}


@sqlite_only  # the SQLite file operations of backup and update (store/dbfile.py)
def test_a_database_file_is_inspected_without_being_changed(store: Store, tmp_path: Path) -> None:
    copy = tmp_path / "copy.sqlite"
    dbfile.snapshot_database(store.path, copy)
    version, tables = dbfile.inspect_database(copy)
    assert version == len(MIGRATIONS) == dbfile.schema_version_of(copy)
    assert dbfile.expected_tables(version) <= tables
    assert dbfile.schema_version_of(tmp_path / "missing.sqlite") is None
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(dbfile.DatabaseFileError, match="not a readable SQLite database"):
        dbfile.inspect_database(junk)
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(dbfile.DatabaseFileError, match="no schema_version table"):
        dbfile.inspect_database(empty)
