"""System health as one record: engine, registrations, trunks, calls, disk, database, version."""
from __future__ import annotations

import importlib.metadata
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.store import recordings
from appliance.store.db import Store
from appliance.system import backup_schedule

LOW_DISK_FRACTION = 0.10  # under 10 % free for recordings is a warning


@dataclass
class DiskUsage:
    path: str
    total: int
    free: int

    @property
    def used_fraction(self) -> float:
        return 1.0 - self.free / self.total if self.total else 0.0

    @property
    def low(self) -> bool:
        return self.total > 0 and self.free < LOW_DISK_FRACTION * self.total


@dataclass
class Health:
    """What the System page shows; `engine_error` is set (and the engine fields empty) when it is down."""

    web_version: str
    engine_up: bool
    engine_error: str = ""
    engine_version: str = ""
    uptime: float | None = None
    hostname: str = ""
    calls: int | None = None
    registrations: int | None = None
    blocked: int | None = None
    trunks: list[dict[str, Any]] = field(default_factory=list)
    disk: DiskUsage | None = None
    database_bytes: int = 0
    recordings: int = 0
    storage: dict[str, Any] | None = None  # the engine's deferred writes (disk full, database locked)

    # the engine's supervisor: every thread and child process, its deaths and restarts
    supervision: dict[str, Any] | None = None
    backup_problem: str | None = None  # the scheduled backups' (backup_schedule.status)


def web_version() -> str:
    try:
        return importlib.metadata.version("plateau")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def database_bytes(db_path: Path) -> int:
    """The database with its write-ahead log (SQLite WAL mode keeps recent writes in -wal)."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        path = db_path.with_name(db_path.name + suffix)
        if path.exists():
            total += path.stat().st_size
    return total


def disk_usage(files_dir: Path) -> DiskUsage:
    """Room left where recordings are written (recordings/ of the data or shared dir, else that dir)."""
    target = files_dir / "recordings"
    if not target.is_dir():
        target = files_dir
    usage = shutil.disk_usage(target)
    return DiskUsage(str(target), usage.total, usage.free)


def collect(files_dir: Path, store: Store, engine: Any) -> Health:
    """Ask the engine for its status (it may be down: that is a state, not an error) and read the disk."""
    health = Health(web_version=web_version(), engine_up=False)
    try:
        status = engine.request("GET", "/v1/status")
    except ApiUnavailable as exc:
        health.engine_error = f"The engine is not running ({exc.message})."
    except ApiError as exc:
        health.engine_error = f"The engine answered with an error: {exc.message}"
    else:
        health.engine_up = True
        health.engine_version = str(status.get("version", ""))
        health.uptime = status.get("uptime")
        health.hostname = str(status.get("hostname", ""))
        health.calls = status.get("calls")
        health.registrations = status.get("registrations")
        health.blocked = status.get("blocked")
        health.trunks = list(status.get("trunks") or [])
        storage = status.get("storage")
        health.storage = storage if isinstance(storage, dict) else None

        sup = status.get("supervision")
        health.supervision = dict(sup) if isinstance(sup, dict) else None
    health.disk = disk_usage(files_dir)  # where recordings are written: the data or shared dir
    # A PostgreSQL store's files are the server's, not in this box's data directory.
    health.database_bytes = database_bytes(store.path) if store.path is not None else 0
    health.recordings = recordings.count(store)
    health.backup_problem = backup_schedule.status(store, time.time())
    return health
