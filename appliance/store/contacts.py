"""The contacts table: callers known by their number (migration 3), as typed rows.

The IVR's `lookup_caller` node and the distributor find a caller here by caller ID and add a
new caller (appliance/ivr/contacts.py, `StoreContacts`). Module functions over a `Store`,
like acd.py; the SQL is written for SQLite and PostgreSQL alike.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from appliance.store.db import Store

_COLUMNS = "id, number, name, company, email, notes"


@dataclass(frozen=True)
class ContactRow:
    id: int
    number: str
    name: str
    company: str
    email: str
    notes: str


def _row(r: Any) -> ContactRow:
    cid, num, name, company, email, notes = r
    return ContactRow(int(cid), str(num), name, company, email, notes)


def contact_by_number(store: Store, number: str) -> ContactRow | None:
    """The contact whose number is exactly `number` (numbers are unique), or None."""
    rows = store.query(f"SELECT {_COLUMNS} FROM contacts WHERE number = ?", (number,))
    return _row(rows[0]) if rows else None


def names_by_number(store: Store, numbers: Collection[str]) -> dict[str, str]:
    """The contact name of each of `numbers` that has one, in one query (the wallboard's waiting
    callers, read every second on the engine's loop)."""
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    marks = ", ".join("?" * len(wanted))
    rows = store.query(f"SELECT number, name FROM contacts WHERE number IN ({marks}) AND name <> ''", wanted)
    return {str(r[0]): str(r[1]) for r in rows}


def contact_by_id(store: Store, contact_id: int) -> ContactRow | None:
    """The contact with id `contact_id`, or None."""
    rows = store.query(f"SELECT {_COLUMNS} FROM contacts WHERE id = ?", (contact_id,))
    return _row(rows[0]) if rows else None


def add_contact(store: Store, number: str, now: float) -> bool:
    """Record a caller first seen at `now`; an existing number keeps its contact.

    True once committed; False when the database refuses writes (disk full, locked) and the
    insert is deferred (Store.record_write), to be replayed in order later.
    """
    return store.record_write(
        "contact",
        [("INSERT INTO contacts (number, created_at) VALUES (?, ?) ON CONFLICT (number) DO NOTHING",
          (number, now))],
        durable=True)
