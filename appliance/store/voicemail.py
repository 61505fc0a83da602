"""The voicemail index (migration 5): one row per message, as typed rows.

appliance/voicemail/mailbox.py owns the files and the rules (a row is written only once its
recording is closed; a deleted message keeps its row with ``deleted_at``); this module is its
SQL. Module functions over a `Store`, like acd.py; the SQL is written for SQLite and
PostgreSQL alike (booleans as TRUE/FALSE, the new id by RETURNING).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.store.db import Store

_COLUMNS = "id, mailbox, caller, caller_name, received_at, duration_s, path, heard"


@dataclass(frozen=True)
class VoicemailRow:
    id: int
    mailbox: str
    caller: str
    caller_name: str
    received_at: float
    duration_s: float
    path: str
    heard: bool


def _row(r: Any) -> VoicemailRow:
    return VoicemailRow(int(r[0]), r[1], r[2], r[3], float(r[4]), float(r[5]), r[6], bool(r[7]))


def add_message(store: Store, mailbox: str, caller: str, caller_name: str, received_at: float,
                duration_s: float, path: str) -> int:
    """Index a new, unheard message; returns its id. Committed durably before it returns."""
    with store.transaction():
        cur = store.execute(
            "INSERT INTO voicemail (mailbox, caller, caller_name, received_at, duration_s, path, heard)"
            " VALUES (?, ?, ?, ?, ?, ?, FALSE) RETURNING id",
            (mailbox, caller, caller_name, received_at, duration_s, path))
        row = cur.fetchone()
    return int(row[0]) if row else 0


def mailbox_messages(store: Store, mailbox: str, include_heard: bool = True) -> list[VoicemailRow]:
    """Messages not deleted: new ones first, each group oldest first (the order they are played)."""
    sql = f"SELECT {_COLUMNS} FROM voicemail WHERE mailbox = ? AND deleted_at IS NULL"
    if not include_heard:
        sql += " AND NOT heard"
    return [_row(r) for r in store.query(sql + " ORDER BY heard, received_at, id", (mailbox,))]


def message_by_id(store: Store, message_id: int) -> VoicemailRow | None:
    """One message by id (None if unknown or deleted)."""
    rows = store.query(f"SELECT {_COLUMNS} FROM voicemail WHERE id = ? AND deleted_at IS NULL",
                       (message_id,))
    return _row(rows[0]) if rows else None


def message_counts(store: Store, mailbox: str) -> tuple[int, int]:
    """(new, old): the mailbox's messages not deleted, unheard and heard."""
    rows = store.query(
        "SELECT heard, COUNT(*) FROM voicemail WHERE mailbox = ? AND deleted_at IS NULL GROUP BY heard",
        (mailbox,))
    by_heard = {bool(h): int(n) for h, n in rows}
    return by_heard.get(False, 0), by_heard.get(True, 0)


def mark_heard(store: Store, message_id: int) -> None:
    """The message becomes an old one (not fsynced: losing it to a power cut only replays it)."""
    with store.transaction(durable=False):
        store.execute("UPDATE voicemail SET heard = TRUE WHERE id = ?", (message_id,))


def mark_deleted(store: Store, message_id: int, at: float) -> None:
    """The owner deleted the message at `at`: it is no longer listed; the row stays as history."""
    with store.transaction():
        store.execute("UPDATE voicemail SET deleted_at = ? WHERE id = ?", (at, message_id))
