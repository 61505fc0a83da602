"""The contacts boundary the `lookup_caller` node uses, and an in-memory twin of it.

The engine will pass an adapter over the store's contacts table; tests and the simulator use
`InMemoryContacts`. Both speak `ContactDirectory`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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
