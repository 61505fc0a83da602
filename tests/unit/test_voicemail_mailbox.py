"""Mailboxes: WAV files under <root>/<mailbox>/ indexed in SQLite (the voicemail table of migration 5)."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.store.db import Store
from appliance.voicemail.mailbox import (
    MailboxError,
    Mailboxes,
    wav_duration,
)
from tests.audio import write_tone_wav


def voicemail_store(path: Path) -> Store:
    """A fresh Store: its migrations create the voicemail table."""
    return Store(path)


@pytest.fixture
def boxes(tmp_path: Path):
    store = voicemail_store(tmp_path / "vm.db")
    try:
        yield Mailboxes(store, tmp_path / "voicemail")
    finally:
        store.close()


def _record(boxes: Mailboxes, mailbox: str, seconds: float) -> Path:
    return write_tone_wav(boxes.new_path(mailbox), 440, seconds, rate=16000)


def test_add_lists_and_counts_new_before_old(boxes: Mailboxes) -> None:
    first = boxes.add("1001", "1002", "Bob", _record(boxes, "1001", 1.5), None, at=100.0)
    second = boxes.add("1001", "0612345678", "", _record(boxes, "1001", 2.0), None, at=200.0)
    other = boxes.add("1003", "1002", "Bob", _record(boxes, "1003", 1.2), None, at=150.0)
    assert first and second and other
    msgs = boxes.messages("1001")
    assert [m.id for m in msgs] == [first, second]
    assert msgs[0].caller == "1002" and msgs[0].caller_name == "Bob"
    assert msgs[0].duration_s == pytest.approx(1.5, abs=0.01)  # measured from the WAV
    assert msgs[0].path.parent == boxes.root / "1001" and msgs[0].path.is_file()
    assert boxes.counts("1001") == (2, 0)
    boxes.mark_heard(first)
    assert boxes.counts("1001") == (1, 1)
    # New first, then old: the order RetrievalSession plays them in.
    assert [m.id for m in boxes.messages("1001")] == [second, first]
    assert [m.id for m in boxes.messages("1001", include_heard=False)] == [second]
    assert boxes.counts("1003") == (1, 0)
    assert boxes.counts("1009") == (0, 0)


def test_message_under_a_second_is_discarded_with_its_file(boxes: Mailboxes) -> None:
    path = _record(boxes, "1001", 0.6)
    assert boxes.add("1001", "1002", "Bob", path, None) is None
    assert not path.exists()
    assert boxes.messages("1001") == [] and boxes.counts("1001") == (0, 0)
    # A truncated file (the caller hung up before anything was written) counts as empty.
    broken = boxes.new_path("1001")
    broken.write_bytes(b"RIFF")
    assert wav_duration(broken) == 0.0
    assert boxes.add("1001", "1002", "", broken, None) is None and not broken.exists()


def test_delete_removes_the_file_and_the_listing(boxes: Mailboxes) -> None:
    path = _record(boxes, "1001", 1.1)
    mid = boxes.add("1001", "1002", "", path, None)
    assert mid is not None
    assert boxes.delete(mid) is True
    assert not path.exists()
    assert boxes.messages("1001") == [] and boxes.counts("1001") == (0, 0)
    assert boxes.message(mid) is None
    assert boxes.delete(mid) is False
    # The index keeps the row as an audit trail, marked deleted.
    rows = boxes.store.query("SELECT deleted_at FROM voicemail WHERE id = ?", (mid,))
    assert rows[0][0] is not None


def test_index_survives_reopening_the_store(tmp_path: Path) -> None:
    store = voicemail_store(tmp_path / "vm.db")
    boxes = Mailboxes(store, tmp_path / "vm")
    mid = boxes.add("1001", "1002", "", write_tone_wav(boxes.new_path("1001"), 440, 1.3, rate=16000), None)
    store.close()
    with Store(tmp_path / "vm.db") as again:
        msgs = Mailboxes(again, tmp_path / "vm").messages("1001")
        assert [m.id for m in msgs] == [mid]


def test_greeting_and_pin(boxes: Mailboxes) -> None:
    assert boxes.greeting_path("1001") is None
    greeting = write_tone_wav(boxes.new_path("1001").parent / "greeting.wav", 440, 1.0)
    assert boxes.greeting_path("1001") == greeting
    assert boxes.pin("1001") is None
    assert boxes.check_pin("1001", "") is False  # no PIN set: nothing opens it
    boxes.store.set_setting("voicemail.pin.1001", "4321")
    assert boxes.pin("1001") == "4321"
    assert boxes.check_pin("1001", "4321") is True
    assert boxes.check_pin("1001", "432") is False
    assert boxes.check_pin("../etc", "4321") is False


@pytest.mark.parametrize("name", ["", "../1001", "10/01", ".", "a" * 33, "10 01"])
def test_mailbox_names_cannot_escape_the_root(boxes: Mailboxes, name: str) -> None:
    with pytest.raises(MailboxError):
        boxes.new_path(name)
    with pytest.raises(MailboxError):
        boxes.counts(name)
