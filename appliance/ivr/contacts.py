"""The contacts boundary the `lookup_caller` node uses, and an in-memory twin of it.

The engine passes `StoreContacts` (the store's contacts table); tests and the simulator use
`InMemoryContacts`. Both speak `ContactDirectory`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from appliance.store.db import Store


@dataclass(frozen=True)
class Contact:
    """A known caller; `fields` become ``contact_<key>`` variables for the agent's screen pop."""

    id: str
    number: str
    name: str = ""
    fields: dict[str, str] = field(default_factory=dict)


class ContactDirectory(Protocol):
    """Find a contact by caller ID, or create one for a new caller."""

    def find_by_number(self, number: str) -> Contact | None: ...

    def create(self, number: str) -> Contact: ...


class InMemoryContacts:
    """A `ContactDirectory` held in a dict: the twin of the store-backed one."""

    def __init__(self, contacts: list[Contact] | None = None) -> None:
        self.by_number: dict[str, Contact] = {c.number: c for c in contacts or []}

    def find_by_number(self, number: str) -> Contact | None:
        """The contact whose number is exactly `number`, if any."""
        return self.by_number.get(number)

    def create(self, number: str) -> Contact:
        """Record a new contact for `number` and return it."""
        contact = Contact(id=f"c{len(self.by_number) + 1}", number=number)
        self.by_number[number] = contact
        return contact


_FIELDS = ("company", "email", "notes")


class StoreContacts:
    """A `ContactDirectory` over the store's contacts table (what the engine gives the IVR)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def find_by_number(self, number: str) -> Contact | None:
        rows = self.store.query(
            "SELECT id, number, name, company, email, notes FROM contacts WHERE number = ?", (number,))
        if not rows:
            return None
        cid, num, name, *extra = rows[0]
        return Contact(id=str(cid), number=num, name=name,
                       fields={k: v for k, v in zip(_FIELDS, extra, strict=True) if v})

    def create(self, number: str) -> Contact:
        """Record a new caller (an existing number keeps its contact).

        While the database refuses writes (disk full, locked) the insert is deferred
        (Store.record_write) and the contact has no id yet: the call goes on unlinked."""
        if not self.store.record_write("contact", [("INSERT INTO contacts (number, created_at) VALUES (?, ?)"
                                                    " ON CONFLICT (number) DO NOTHING", (number, time.time()))],
                                       durable=True):
            return Contact(id="", number=number, name="", fields={})
        contact = self.find_by_number(number)
        if contact is None:
            raise RuntimeError(f"contact {number} was not stored")
        return contact
