"""appliance/store/contacts.py: the contacts table as typed rows, on a real SQLite store."""
from __future__ import annotations

from pathlib import Path


from appliance.store import contacts
from appliance.store.db import Store
from tests.peers.filesystem import fill, small_tmpfs
from tests.peers.polling import wait_until



def test_a_new_number_is_added_once_and_read_back_as_a_typed_row(store: Store) -> None:
    assert contacts.contact_by_number(store, "+33612345678") is None
    assert contacts.add_contact(store, "+33612345678", 100.0) is True
    row = contacts.contact_by_number(store, "+33612345678")
    assert row == contacts.ContactRow(row.id if row else -1, "+33612345678", "", "", "", "")
    assert row is not None and isinstance(row.id, int) and row.id > 0
    # ON CONFLICT DO NOTHING: a caller seen again keeps the contact (and its first-seen time).
    assert contacts.add_contact(store, "+33612345678", 200.0) is True
    assert contacts.contact_by_number(store, "+33612345678") == row
    assert store.query("SELECT COUNT(*), MIN(created_at) FROM contacts")[0] == (1, 100.0)


def test_the_number_must_match_exactly(store: Store) -> None:
    contacts.add_contact(store, "+33612345678", 1.0)
    assert contacts.contact_by_number(store, "33612345678") is None
    assert contacts.contact_by_number(store, "+3361234567") is None


def test_a_full_disk_defers_the_insert_and_loses_nothing(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "4m") as mount:
        store = Store(mount / "c.db")
        try:
            filler = fill(mount)
            assert contacts.add_contact(store, "+441632960000", 5.0) is False  # deferred, not raised
            filler.unlink()
            wait_until(lambda: store.storage_status().pending == 0, timeout=10.0, what="the deferred insert")
            row = contacts.contact_by_number(store, "+441632960000")
            assert row is not None and row.number == "+441632960000"
        finally:
            store.close()
