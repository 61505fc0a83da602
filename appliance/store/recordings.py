"""The recordings index (migration 5): one row per recorded file, as typed rows.

appliance/pbx/recording.py owns the files and the rules (policy, PCI pauses, retention, repair
after a crash); this module is their SQL, and the read side the web pages, the backup and the
health page use. Writes the engine must not lose go through `Store.record_write` / `insert_row`
(kept in order in memory while the disk is full). Module functions over a `Store`, like
contacts.py; the SQL is written for SQLite and PostgreSQL alike (docs/ARCHITECTURE.md).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.store.db import Store

COLUMNS = ("id", "call_id", "cdr_id", "path", "mode", "reason", "queue", "agent", "started_at", "ended_at",
           "paused_s", "note")
# What a backup archive keeps of a row (recordings.json): everything but the ids of this database.
ARCHIVE_COLUMNS = ("call_id", "path", "mode", "reason", "queue", "agent", "started_at", "ended_at",
                   "paused_s", "note")


@dataclass(frozen=True)
class RecordingRow:
    id: int
    call_id: str
    cdr_id: int | None
    path: str  # relative to <data>/recordings
    mode: str
    reason: str
    queue: str
    agent: str
    started_at: float
    ended_at: float | None
    paused_s: float
    note: str


@dataclass(frozen=True)
class OpenRecording:
    """A row whose file was still being written when the engine stopped."""

    id: int
    path: str
    started_at: float


def _row(r: Sequence[Any]) -> RecordingRow:
    return RecordingRow(*r)


# -- the engine's writes (pbx/recording.py) --------------------------------------------------------
def start(store: Store, call_id: str, cdr_id: int | None, path: str, mode: str, reason: str, queue: str,
          agent: str, started_at: float) -> int:
    """Index a file being written; its row id (handed out even when the insert is deferred)."""
    return store.insert_row(
        "recording", "recordings",
        ("call_id", "cdr_id", "path", "mode", "reason", "queue", "agent", "started_at"),
        (call_id, cdr_id, path, mode, reason, queue, agent, started_at), durable=True)


def set_party(store: Store, row_id: int, agent: str, queue: str) -> None:
    """The agent who answered (from `queue`) joins a recording started before the answer."""
    store.record_write("recording", [
        ("UPDATE recordings SET agent = ?, queue = ? WHERE id = ?", (agent, queue, row_id))])


def continue_in(store: Store, row_id: int, died_at: float, died_note: str, new_path: str, started_at: float,
                note: str) -> int:
    """The row `row_id` ends at `died_at`; a new row for the same call and CDR goes on in
    `new_path` (media process restart). Returns the new row's id."""
    with store.transaction():
        store.execute("UPDATE recordings SET ended_at = ?, note = ? WHERE id = ? AND ended_at IS NULL",
                      (died_at, died_note, row_id))
        cur = store.execute(
            "INSERT INTO recordings (call_id, cdr_id, path, mode, reason, queue, agent, started_at, note)"
            " SELECT call_id, cdr_id, ?, mode, reason, queue, agent, ?, ? FROM recordings WHERE id = ?"
            " RETURNING id",
            (new_path, started_at, note, row_id))
        row = cur.fetchone()
    return int(row[0]) if row else 0


def stop(store: Store, row_id: int, ended_at: float, paused_s: float) -> None:
    """Close the row of a finished file (durably: the index must match the files)."""
    store.record_write("recording", [(
        "UPDATE recordings SET ended_at = ?, paused_s = ? WHERE id = ? AND ended_at IS NULL",
        (ended_at, paused_s, row_id))], durable=True)


def stopped_early(store: Store, path: str, seconds: float, note: str) -> None:
    """The media engine stopped the file at `path` after `seconds` (the disk refused it)."""
    store.record_write("recording", [(
        "UPDATE recordings SET ended_at = started_at + ?, note = ? WHERE path = ?",
        (seconds, note, path))], durable=True)


def open_rows(store: Store) -> list[OpenRecording]:
    """Rows never closed: their files were being written when the engine was killed."""
    return [OpenRecording(int(i), str(p), float(s))
            for i, p, s in store.query("SELECT id, path, started_at FROM recordings WHERE ended_at IS NULL")]


def close_repaired(store: Store, row_id: int, ended_at: float, note: str) -> None:
    with store.transaction():
        store.execute("UPDATE recordings SET ended_at = ?, note = ? WHERE id = ?", (ended_at, note, row_id))


def closed_before(store: Store, cutoff: float) -> list[tuple[int, str]]:
    """(id, path) of the closed recordings started before `cutoff` (retention)."""
    return [(int(i), str(p)) for i, p in store.query(
        "SELECT id, path FROM recordings WHERE ended_at IS NOT NULL AND started_at < ?", (cutoff,))]


def delete(store: Store, row_id: int) -> None:
    """Forget a recording whose file is gone (not fsynced: a lost delete is redone next purge)."""
    with store.transaction(durable=False):
        store.execute("DELETE FROM recordings WHERE id = ?", (row_id,))


# -- reading ----------------------------------------------------------------------------------------
def for_call(store: Store, call_id: str) -> list[RecordingRow]:
    """The recordings of one call (SIP Call-ID of its first leg), oldest first."""
    return [_row(r) for r in store.query(
        f"SELECT {', '.join(COLUMNS)} FROM recordings WHERE call_id = ? ORDER BY id", (call_id,))]


def get(store: Store, recording_id: int) -> RecordingRow | None:
    rows = store.query(f"SELECT {', '.join(COLUMNS)} FROM recordings WHERE id = ?", (recording_id,))
    return _row(rows[0]) if rows else None


def with_agent_since(store: Store, since: float, limit: int) -> list[RecordingRow]:
    """Recordings with an agent started since `since`, newest first (what a supervisor can score)."""
    return [_row(r) for r in store.query(
        f"SELECT {', '.join(COLUMNS)} FROM recordings WHERE agent <> '' AND started_at >= ?"
        " ORDER BY started_at DESC, id DESC LIMIT ?", (since, limit))]


def count(store: Store) -> int:
    return int(store.query("SELECT COUNT(*) FROM recordings")[0][0])


def closed(store: Store) -> list[RecordingRow]:
    """Every closed recording, oldest first (what a backup archives)."""
    return [_row(r) for r in store.query(
        f"SELECT {', '.join(COLUMNS)} FROM recordings WHERE ended_at IS NOT NULL ORDER BY id")]


def paths(store: Store) -> set[str]:
    """The path of every indexed recording."""
    return {str(r[0]) for r in store.query("SELECT path FROM recordings")}


def add_archived(store: Store, rows: Iterable[dict[str, Any]]) -> None:
    """Index recordings restored from a backup (`ARCHIVE_COLUMNS` each), in one transaction."""
    sql = (f"INSERT INTO recordings ({', '.join(ARCHIVE_COLUMNS)})"
           f" VALUES ({', '.join('?' * len(ARCHIVE_COLUMNS))})")
    with store.transaction():
        for row in rows:
            store.execute(sql, [row[k] for k in ARCHIVE_COLUMNS])
