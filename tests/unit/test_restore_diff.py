"""What a restore would change (appliance/system/restore_diff.py) and the log of backup runs
(appliance/store/backups.py), on a real store of each backend.

An archive is made of a seeded site, the site is then changed through the store's own API, and
the diff of restoring the archive must name exactly the rows that restoring would undo.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from appliance.store import backups
from appliance.store.db import Store
from appliance.store.demo import seed_demo
from appliance.store.models import Trunk
from appliance.system.backup import check_backup, create_archive
from appliance.system.restore_diff import RowChange, restore_diff

T0 = 1_700_000_000.0


def _archive(store: Store, data: Path, out: Path) -> Path:
    create_archive(out, store, data, "test", now=T0)
    return out


def test_the_diff_names_every_row_a_restore_adds_changes_and_removes(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    seed_demo(store)
    store.cdr_open("c1@x", "+33612345678", "", "1001", "inbound", T0)
    archive = _archive(store, data, tmp_path / "site.tar.gz")

    # After the backup: a new trunk, a renamed extension with a new password, a deleted
    # extension, a changed and a new setting, one more call.
    store.put_trunk(Trunk(name="carrier-2", host="sip.example.net"))
    ext = next(e for e in store.extensions() if e.number == "1002")
    store.put_extension(dataclasses.replace(ext, name="Renamed", secret="Zq8-very-new-secret"))
    assert store.delete_extension("1005")
    store.set_setting("acd.supervisors", "1001, 1003")
    store.set_setting("recording.retention_days", "30")
    store.cdr_open("c2@x", "+33612345679", "", "1001", "inbound", T0 + 60)

    with open(archive, "rb") as fh:
        plan = check_backup(fh, store, data)
    diff = restore_diff(store, plan)

    assert diff.changes == [
        RowChange("extensions", "1005", "added"),
        RowChange("extensions", "1002", "changed", ("name", "secret")),
        RowChange("trunks", "carrier-2", "removed"),
        RowChange("settings", "acd.supervisors", "changed", ("value",)),
        RowChange("settings", "recording.retention_days", "removed"),
    ]
    assert (diff.count("added"), diff.count("changed"), diff.count("removed")) == (1, 2, 2)
    calls = next(d for d in diff.data if d.table == "cdr")
    assert calls.now == 2
    if store.path is not None:  # SQLite: the archive holds the database, counted table by table
        assert diff.has_database and calls.archive == 1
        assert {d.table: d.archive for d in diff.data}["web_users"] == 0
    else:  # PostgreSQL: the archive holds the configuration; the data is pg_dump's
        assert not diff.has_database and calls.archive is None


def test_an_unchanged_site_has_no_differences(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    seed_demo(store)
    archive = _archive(store, data, tmp_path / "site.tar.gz")
    with open(archive, "rb") as fh:
        diff = restore_diff(store, check_backup(fh, store, data))
    assert diff.changes == []
    assert all(d.now == (d.archive if diff.has_database else d.now) for d in diff.data)


def test_backup_runs_are_logged_unfinished_until_they_say(store: Store) -> None:
    assert backups.last_run(store) is None and backups.last_success(store) is None
    good = backups.start_run(store, T0)
    backups.finish_run(store, good, T0 + 5, ok=True, path="/mnt/b/a.tar.gz", size=1234, removed=2)
    bad = backups.start_run(store, T0 + 100)
    backups.finish_run(store, bad, T0 + 101, ok=False, error="No space left on device")
    dead = backups.start_run(store, T0 + 200)  # a run killed half way never finishes its row

    runs = backups.recent_runs(store)
    assert [r.id for r in runs] == [dead, bad, good]
    assert runs[0].finished_at is None and not runs[0].ok
    assert runs[1].error == "No space left on device" and not runs[1].ok
    assert runs[2].ok and runs[2].size == 1234 and runs[2].removed == 2
    assert backups.last_success(store) == T0 + 5
