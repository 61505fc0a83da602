"""The contacts boundary the `lookup_caller` node uses, and an in-memory twin of it.

The engine passes `StoreContacts` (the store's contacts table); tests and the simulator use
`InMemoryContacts`. Both speak `ContactDirectory`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from appliance.store import contacts as table
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


class StoreContacts:
    """A `ContactDirectory` over the store's contacts table (what the engine gives the IVR)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def find_by_number(self, number: str) -> Contact | None:
        row = table.contact_by_number(self.store, number)
        if row is None:
            return None
        extra = {"company": row.company, "email": row.email, "notes": row.notes}
        return Contact(id=str(row.id), number=row.number, name=row.name,
                       fields={k: v for k, v in extra.items() if v})

    def create(self, number: str) -> Contact:
        """Record a new caller (an existing number keeps its contact).

        While the database refuses writes (disk full, locked) the insert is deferred
        (Store.record_write) and the contact has no id yet: the call goes on unlinked."""
        if not table.add_contact(self.store, number, time.time()):
            return Contact(id="", number=number, name="", fields={})
        contact = self.find_by_number(number)
        if contact is None:
            raise RuntimeError(f"contact {number} was not stored")
        return contact
