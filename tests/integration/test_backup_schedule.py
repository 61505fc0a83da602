"""Scheduled backups (appliance/system/backup_schedule.py) over days of a real site: runs when due,
retention by count and by age, failures logged and never left as a good archive.

The site is a real SQLite store and data directory; the schedule is asked with the clock moved
on by days. The disk that fills up half way is real too: `plateau backup scheduled` runs as its
own process under RLIMIT_FSIZE, so the archive's write fails with EFBIG after some megabytes,
as it fails with ENOSPC on a full USB disk.
"""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from appliance.store import backups
from appliance.store.db import Store
from appliance.store.demo import seed_demo
from appliance.system import backup_schedule as sched
from appliance.system.backup import DB_NAME, check_backup
from tests.peers.engine import REPO_ROOT

T0 = 1_790_000_000.0  # 2026-09-21, a Monday
DAY = 86400.0


def _site(tmp_path: Path) -> tuple[Store, Path, Path]:
    data = tmp_path / "data"
    (data / "sounds").mkdir(parents=True)
    target = tmp_path / "usb"
    target.mkdir()
    store = Store(data / DB_NAME)
    seed_demo(store)
    return store, data, target


def _configure(store: Store, target: Path, **values: str) -> None:
    store.set_setting("backup.dir", str(target))
    for name, value in values.items():
        store.set_setting(f"backup.{name}", value)


def _ours(target: Path) -> list[str]:
    return [p.name for _, p in sched.archives(target)]


def test_the_schedule_runs_when_due_and_keeps_what_retention_says(tmp_path: Path) -> None:
    store, data, target = _site(tmp_path)
    try:
        assert sched.run_if_due(store, data, "test", T0) is None  # no directory set: no schedule
        _configure(store, target, every_hours="24", keep_count="3", keep_days="0")
        (target / "notes.txt").write_text("not ours")  # retention removes only the files it named
        (target / "plateau-backup-mine.tar.gz").write_bytes(b"someone else's")

        first = sched.run_if_due(store, data, "test", T0)
        assert first is not None and first.ok and first.removed == 0
        assert sched.run_if_due(store, data, "test", T0 + 3600) is None  # not due for a day
        for day in (1, 2, 3):
            result = sched.run_if_due(store, data, "test", T0 + day * DAY)
            assert result is not None and result.ok
        names = _ours(target)
        assert names == [sched.archive_name(T0 + d * DAY) for d in (1, 2, 3)]  # the oldest went
        assert (target / "notes.txt").exists() and (target / "plateau-backup-mine.tar.gz").exists()
        assert not list(target.glob(".*"))  # no temporary file left behind

        # By age: what is two days old or newer is kept, however many there are.
        _configure(store, target, keep_count="0", keep_days="2")
        result = sched.run_if_due(store, data, "test", T0 + 4 * DAY)
        assert result is not None and result.ok and result.removed == 1
        assert _ours(target) == [sched.archive_name(T0 + d * DAY) for d in (2, 3, 4)]

        runs = backups.recent_runs(store)
        assert len(runs) == 5 and all(r.ok and r.finished_at is not None for r in runs)
        assert runs[0].path == str(target / sched.archive_name(T0 + 4 * DAY)) and runs[0].removed == 1
        assert sched.status(store, T0 + 4 * DAY) is None

        # The newest archive restores a site: its database passes the whole check.
        with open(runs[0].path, "rb") as fh:
            plan = check_backup(fh, None, tmp_path / "elsewhere", keep_database=True)
        try:
            assert plan.database is not None and plan.database_counts is not None
            assert {e.number for e in plan.config.extensions} == {e.number for e in store.extensions()}
        finally:
            plan.discard()
    finally:
        store.close()


def test_an_unmounted_share_fails_visibly_and_keeps_the_old_backups(tmp_path: Path) -> None:
    store, data, target = _site(tmp_path)
    try:
        _configure(store, target, every_hours="24", keep_count="1")
        good = sched.run_if_due(store, data, "test", T0)
        assert good is not None and good.ok
        # The USB disk is unplugged: its mount point is an empty directory of the system disk.
        _configure(store, target, require_mount="yes")
        failed = sched.run_if_due(store, data, "test", T0 + DAY)
        assert failed is not None and not failed.ok and "is not mounted" in failed.error
        assert _ours(target) == [sched.archive_name(T0)]  # a failed run removes nothing
        assert "the last scheduled backup failed" in (sched.status(store, T0 + DAY) or "")
        assert sched.run_if_due(store, data, "test", T0 + DAY + 600) is None  # retried an hour later,
        again = sched.run_if_due(store, data, "test", T0 + DAY + 3600)  # not at every tick
        assert again is not None and not again.ok
        assert [r.ok for r in backups.recent_runs(store)] == [False, False, True]
    finally:
        store.close()


def _limit_file_size(limit: int) -> None:
    # EFBIG instead of the default SIGXFSZ kill: a write past the limit fails as on a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_disk_full_half_way_leaves_no_archive_and_a_failed_run(tmp_path: Path) -> None:
    store, data, target = _site(tmp_path)
    try:
        _configure(store, target)
        # Incompressible audio, so the archive outgrows the limit while the database does not.
        (data / "sounds" / "noise.wav").write_bytes(os.urandom(6 * 2**20))
    finally:
        store.close()
    limit = (data / DB_NAME).stat().st_size + 3 * 2**20
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    res = subprocess.run([sys.executable, "-m", "appliance.cli", "backup", "scheduled", "--data-dir", str(data)],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
                         preexec_fn=lambda: _limit_file_size(limit))  # noqa: PLW1509 - no threads in the test
    assert res.returncode == 1, res.stdout + res.stderr
    assert "scheduled backup failed" in res.stderr and "File too large" in res.stderr
    assert list(target.iterdir()) == []  # neither an archive nor its temporary name
    with Store(data / DB_NAME) as store:
        run = backups.last_run(store)
        assert run is not None and run.finished_at is not None and not run.ok and "File too large" in run.error

    # With room again, the next run (forced: the failure's retry hour has not passed) succeeds.
    res = subprocess.run([sys.executable, "-m", "appliance.cli", "backup", "scheduled", "--now", "--data-dir",
                          str(data)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert len(_ours(target)) == 1
