"""appliance/store/voicemail.py: the voicemail index as typed rows, on a real SQLite store."""
from __future__ import annotations



from appliance.store import voicemail as index
from appliance.store.db import Store



def test_add_returns_the_new_id_and_the_row_reads_back_typed(store: Store) -> None:
    first = index.add_message(store, "1001", "1002", "Bob", 10.0, 3.5, "/vm/1001/a.wav")
    second = index.add_message(store, "1001", "1003", "", 11.0, 2.0, "/vm/1001/b.wav")
    assert first > 0 and second > first
    assert index.message_by_id(store, first) == index.VoicemailRow(
        first, "1001", "1002", "Bob", 10.0, 3.5, "/vm/1001/a.wav", False)
    assert index.message_by_id(store, 999) is None


def test_listing_order_counts_heard_and_deleted(store: Store) -> None:
    old = index.add_message(store, "1001", "a", "", 1.0, 2.0, "old.wav")
    new_late = index.add_message(store, "1001", "b", "", 3.0, 2.0, "late.wav")
    new_early = index.add_message(store, "1001", "c", "", 2.0, 2.0, "early.wav")
    other = index.add_message(store, "1002", "d", "", 1.0, 2.0, "other.wav")
    index.mark_heard(store, old)
    # New first, each group oldest first: the order the owner hears them.
    assert [r.id for r in index.mailbox_messages(store, "1001")] == [new_early, new_late, old]
    assert [r.id for r in index.mailbox_messages(store, "1001", include_heard=False)] == [new_early, new_late]
    assert index.message_counts(store, "1001") == (2, 1)
    assert index.message_counts(store, "1002") == (1, 0)
    assert index.message_counts(store, "1009") == (0, 0)
    index.mark_deleted(store, new_late, 50.0)
    assert [r.id for r in index.mailbox_messages(store, "1001")] == [new_early, old]
    assert index.message_by_id(store, new_late) is None
    assert index.message_counts(store, "1001") == (1, 1)
    # The deleted row stays as history, with when it was deleted.
    assert store.query("SELECT deleted_at FROM voicemail WHERE id = ?", (new_late,)) == [(50.0,)]
    assert index.message_by_id(store, other) is not None
