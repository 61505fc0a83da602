"""Scheduled backups: to a directory (a USB disk's or a network share's mount point), with retention.

The schedule is settings (schema/settings.py `backup.*`, set on System > Backup); a run is
`plateau backup scheduled`, started every 15 minutes by plateau-backup.timer
(image/systemd/), which does nothing unless a backup is due. A systemd timer and not a thread of
the engine: gzipping a 1 GB database is a minute of CPU that would hold the GIL against the SIP
loop (ED2), and a separate process runs at idle I/O and CPU priority, has its own journal, and
cannot take the engine down when a share hangs.

Each run is logged (store/backups.py) when it starts and when it ends, with its error; the
archive is written under a temporary name and renamed (backup_archive.create_archive), so a
full disk or a share that went away leaves no file that looks good; old archives are removed
only after a new one is safely written, and only the files this schedule names.
"""
from __future__ import annotations

import calendar
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.schema.settings import (
    BACKUP_DIR_SETTING,
    BACKUP_EVERY_SETTING,
    BACKUP_KEEP_COUNT_SETTING,
    BACKUP_KEEP_DAYS_SETTING,
    BACKUP_MOUNT_SETTING,
    SETTINGS,
)
from appliance.store import backups
from appliance.store.db import Store
from appliance.store.errors import StoreError
from appliance.system.backup_archive import create_archive

RETRY_AFTER = 3600.0  # a failed run is tried again an hour later, not at every tick of the timer
# plateau-backup-<host>-20261207T181500Z.tar.gz: the only files retention may remove.
_NAME = re.compile(r"^plateau-backup-(?P<host>[A-Za-z0-9.-]+)-(?P<stamp>\d{8}T\d{6}Z)\.tar\.gz$")
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Schedule:
    directory: str  # "": no scheduled backups
    every_hours: int
    keep_count: int  # 0: no limit by count
    keep_days: int  # 0: no limit by age
    require_mount: bool  # the directory must be a mount point (an unmounted share is a failure)

    @property
    def enabled(self) -> bool:
        return bool(self.directory)


def schedule(store: Store) -> Schedule:
    """The schedule the settings say (their defaults where unset)."""
    raw = store.settings()
    return Schedule(
        directory=SETTINGS[BACKUP_DIR_SETTING].text(raw.get(BACKUP_DIR_SETTING)),
        every_hours=SETTINGS[BACKUP_EVERY_SETTING].number(raw.get(BACKUP_EVERY_SETTING)),
        keep_count=SETTINGS[BACKUP_KEEP_COUNT_SETTING].number(raw.get(BACKUP_KEEP_COUNT_SETTING)),
        keep_days=SETTINGS[BACKUP_KEEP_DAYS_SETTING].number(raw.get(BACKUP_KEEP_DAYS_SETTING)),
        require_mount=SETTINGS[BACKUP_MOUNT_SETTING].text(raw.get(BACKUP_MOUNT_SETTING)) == "yes",
    )


def due(plan: Schedule, now: float, last_success: float | None, last_run: backups.BackupRun | None) -> bool:
    """Whether a run should start now."""
    if not plan.enabled:
        return False
    if last_run is not None and not last_run.ok and now - last_run.started_at < RETRY_AFTER:
        return False
    return last_success is None or now - last_success >= plan.every_hours * 3600 - 60  # the timer's jitter


def archive_name(now: float, host: str | None = None) -> str:
    host = re.sub(r"[^A-Za-z0-9.-]", "-", host or socket.gethostname()) or "plateau"
    return f"plateau-backup-{host}-{time.strftime(_STAMP, time.gmtime(now))}.tar.gz"


def archives(directory: Path) -> list[tuple[float, Path]]:
    """The archives this schedule wrote in `directory`, oldest first, with when each was made."""
    found = []
    for path in directory.iterdir():
        m = _NAME.match(path.name)
        if m and path.is_file():
            made = float(calendar.timegm(time.strptime(m.group("stamp"), _STAMP)))
            found.append((made, path))
    return sorted(found)


def prune(directory: Path, plan: Schedule, now: float, keep: Path) -> int:
    """Remove the archives beyond keep_count or older than keep_days (never `keep`, the new one)."""
    found = archives(directory)
    doomed = set()
    if plan.keep_count > 0:
        doomed |= {p for _, p in found[:-plan.keep_count]}
    if plan.keep_days > 0:
        doomed |= {p for made, p in found if now - made > plan.keep_days * 86400}
    doomed.discard(keep)
    for path in doomed:
        path.unlink(missing_ok=True)
    return len(doomed)


def _check_target(plan: Schedule) -> Path:
    target = Path(plan.directory)
    if not target.is_absolute():
        raise OSError(f"{target}: the backup directory must be an absolute path")
    if plan.require_mount and not os.path.ismount(target):
        raise OSError(f"{target} is not mounted (the USB disk or network share is missing)")
    if not target.is_dir():
        raise OSError(f"{target}: no such directory")
    return target


@dataclass(frozen=True)
class RunResult:
    ok: bool
    path: str = ""
    size: int = 0
    removed: int = 0
    error: str = ""


def run_backup(store: Store, data_dir: Path, version: str, now: float, files_dir: Path | None = None) -> RunResult:
    """One logged run now, due or not: the archive into the schedule's directory, then retention."""
    plan = schedule(store)
    run = backups.start_run(store, now)
    began = time.monotonic()
    try:
        target = _check_target(plan)
        for stale in target.glob(".plateau-backup-*.partial"):  # a run killed before its rename
            stale.unlink(missing_ok=True)
        dest = target / archive_name(now)
        create_archive(dest, store, data_dir, version, files_dir=files_dir, now=now)
        result = RunResult(True, str(dest), dest.stat().st_size, prune(target, plan, now, dest))
    except (OSError, StoreError) as exc:
        result = RunResult(False, error=str(exc) or type(exc).__name__)
    # `now` plus the run's own duration: the clock the schedule was asked about, moved on.
    backups.finish_run(store, run, now + (time.monotonic() - began), ok=result.ok, path=result.path,
                       size=result.size, removed=result.removed, error=result.error)
    return result


def run_if_due(store: Store, data_dir: Path, version: str, now: float,
               files_dir: Path | None = None) -> RunResult | None:
    """What plateau-backup.timer runs: a backup when one is due, else None."""
    if not due(schedule(store), now, backups.last_success(store), backups.last_run(store)):
        return None
    return run_backup(store, data_dir, version, now, files_dir)


def status(store: Store, now: float) -> str | None:
    """A problem of the schedule for the health page, or None: the last run failed, or none
    succeeded for twice the interval."""
    plan = schedule(store)
    if not plan.enabled:
        return None
    last = backups.last_run(store)
    if last is not None and last.finished_at is not None and not last.ok:
        return f"the last scheduled backup failed: {last.error}"
    success = backups.last_success(store)
    if success is None:
        return None if last is None else "no scheduled backup has succeeded yet"
    if now - success > 2 * plan.every_hours * 3600:
        return f"no scheduled backup has succeeded for {int((now - success) // 3600)} hours"
    return None
