"""Backups as the store sees them: the log of scheduled runs and the row counts of the site's data.

A run is a row written when it starts and finished when it ends, so a run that died half way
(the box lost power, the process was killed) stays visible as "not finished", never as good.
The counts are what System > Backup shows beside a restore's differences: how many calls,
queue-log events, users... the site holds now and the archive holds (`dbfile.table_counts`).

Module functions over a `Store` (like acd.py); every write is committed before they return.
"""
from __future__ import annotations

from dataclasses import dataclass

from appliance.store.db import Store

# The table is migration 13 in migrations.py (backup_runs).

# The site's data (not configuration) a backup carries, with the words the UI uses for them.
DATA_TABLES: dict[str, str] = {
    "cdr": "calls (CDRs)",
    "queue_log": "queue-log events",
    "interactions": "interactions",
    "web_users": "users",
    "audit_log": "audit-log entries",
    "quality_scores": "scorecards",
    "leads": "leads",
    "dial_attempts": "dialer attempts",
    "dnc": "do-not-call numbers",
    "contacts": "contacts",
    "survey_results": "survey answers",
    "voicemail": "voicemail messages",
    "recordings": "recordings",
}


@dataclass(frozen=True)
class BackupRun:
    id: int
    started_at: float
    finished_at: float | None  # None: still running, or died before it could say
    ok: bool
    path: str
    size: int
    removed: int  # old archives the retention removed after this one was written
    error: str


def start_run(store: Store, now: float) -> int:
    """Log the start of a run; returns its id for `finish_run`."""
    with store.transaction():
        cur = store.execute("INSERT INTO backup_runs (started_at) VALUES (?) RETURNING id", (now,))
        return int(cur.fetchone()[0])


def finish_run(store: Store, run_id: int, now: float, *, ok: bool, path: str = "", size: int = 0,
               removed: int = 0, error: str = "") -> None:
    with store.transaction():
        store.execute("UPDATE backup_runs SET finished_at = ?, ok = ?, path = ?, size = ?, removed = ?, error = ?"
                      " WHERE id = ?", (now, ok, path, size, removed, error[:2000], run_id))


def recent_runs(store: Store, limit: int = 20) -> list[BackupRun]:
    """The latest runs, newest first."""
    rows = store.query("SELECT id, started_at, finished_at, ok, path, size, removed, error FROM backup_runs"
                       " ORDER BY started_at DESC, id DESC LIMIT ?", (limit,))
    return [BackupRun(int(r[0]), float(r[1]), None if r[2] is None else float(r[2]), bool(r[3]), r[4], int(r[5]),
                      int(r[6]), r[7]) for r in rows]


def last_run(store: Store) -> BackupRun | None:
    runs = recent_runs(store, 1)
    return runs[0] if runs else None


def last_success(store: Store) -> float | None:
    """When the latest good run finished (the schedule counts from it)."""
    row = store.query("SELECT MAX(finished_at) FROM backup_runs WHERE ok = TRUE")[0]
    return None if row[0] is None else float(row[0])


def data_counts(store: Store) -> dict[str, int]:
    """Rows of each table of DATA_TABLES in the live database."""
    # The names are this module's constants, never input.
    return {table: int(store.query(f"SELECT COUNT(*) FROM {table}")[0][0]) for table in DATA_TABLES}
