"""The store-backed contact directory the engine gives the IVR's lookup_caller node."""
from __future__ import annotations

from pathlib import Path

from appliance.ivr.contacts import StoreContacts
from appliance.store.db import Store


def test_create_find_and_keep_existing(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    try:
        contacts = StoreContacts(store)
        assert contacts.find_by_number("+33612345678") is None
        created = contacts.create("+33612345678")
        assert contacts.find_by_number("+33612345678") == created
        assert contacts.create("+33612345678").id == created.id  # a second call keeps the contact
        store.execute("UPDATE contacts SET name = 'Ada', company = 'ACME' WHERE number = '+33612345678'")
        found = contacts.find_by_number("+33612345678")
        assert found is not None and found.name == "Ada" and found.fields == {"company": "ACME"}
    finally:
        store.close()
