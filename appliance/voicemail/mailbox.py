"""Voicemail boxes: each message a WAV file under ``<root>/<mailbox>/``, indexed in the store.

The index row is written only once the recording is closed, so a listed message always has a
complete file; a message deleted by its owner is removed from disk and kept in the index with
``deleted_at`` (an audit trail of what was received, like the CDR). A recording under
``MIN_MESSAGE_SECONDS`` is a caller who hung up at the beep: it is discarded, not indexed.
"""
from __future__ import annotations

import hmac
import re
import secrets
import time
import wave
from dataclasses import dataclass
from pathlib import Path

from appliance.schema.settings import PIN_SETTING_PREFIX as PIN_SETTING_PREFIX
from appliance.store import voicemail as index
from appliance.store.db import Store

# The voicemail table is migration 5 (appliance/store/migrations.py); its SQL is store/voicemail.py.


MIN_MESSAGE_SECONDS = 1.0
GREETING_FILE = "greeting.wav"
# A mailbox name becomes a directory name: no separators, no dots (no "..").
_MAILBOX_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class MailboxError(ValueError):
    """A mailbox name or message id that cannot be used."""


@dataclass(frozen=True)
class Message:
    """One voicemail message as listed to its owner."""

    id: int
    mailbox: str
    caller: str
    caller_name: str
    received_at: float
    duration_s: float
    path: Path
    heard: bool

    @classmethod
    def from_row(cls, row: index.VoicemailRow) -> Message:
        return cls(row.id, row.mailbox, row.caller, row.caller_name, row.received_at, row.duration_s,
                   Path(row.path), row.heard)


def wav_duration(path: Path) -> float:
    """Length of a WAV file in seconds; 0.0 when it is missing or not a readable WAV."""
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            return w.getnframes() / rate if rate else 0.0
    except (OSError, EOFError, wave.Error):
        return 0.0


def check_mailbox(mailbox: str) -> str:
    """Return ``mailbox`` if it is a usable mailbox name (it names a directory), else raise."""
    if not isinstance(mailbox, str) or not _MAILBOX_RE.match(mailbox):
        raise MailboxError(f"{mailbox!r} is not a mailbox name (letters, digits, '_' or '-')")
    return mailbox


class Mailboxes:
    """All mailboxes of the appliance: files under ``root``, index in ``store``."""

    def __init__(self, store: Store, root: Path) -> None:
        self.store = store
        self.root = Path(root)

    def directory(self, mailbox: str) -> Path:
        """The mailbox's directory (not created)."""
        return self.root / check_mailbox(mailbox)

    def new_path(self, mailbox: str) -> Path:
        """A fresh file name for a message being recorded (the directory is created)."""
        folder = self.directory(mailbox)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"msg-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}.wav"

    def add(self, mailbox: str, caller: str, caller_name: str, path: Path,
            duration_s: float | None = None, at: float | None = None) -> int | None:
        """Index a finished recording; returns its id, or None if it was too short (file removed).

        ``duration_s`` None measures the WAV itself.
        """
        check_mailbox(mailbox)
        path = Path(path)
        duration = wav_duration(path) if duration_s is None else float(duration_s)
        if duration < MIN_MESSAGE_SECONDS:
            path.unlink(missing_ok=True)
            return None
        return index.add_message(self.store, mailbox, caller, caller_name,
                                 time.time() if at is None else at, duration, str(path))

    def messages(self, mailbox: str, include_heard: bool = True) -> list[Message]:
        """Messages not deleted: new ones first, each group oldest first (the order they are played)."""
        return [Message.from_row(r)
                for r in index.mailbox_messages(self.store, check_mailbox(mailbox), include_heard)]

    def message(self, message_id: int) -> Message | None:
        """One message by id (None if unknown or deleted)."""
        row = index.message_by_id(self.store, message_id)
        return Message.from_row(row) if row is not None else None

    def counts(self, mailbox: str) -> tuple[int, int]:
        """(new, old) message counts, as RFC 3842's Voice-Message line reports them."""
        return index.message_counts(self.store, check_mailbox(mailbox))

    def mark_heard(self, message_id: int) -> None:
        """The owner listened to the message: it becomes an old message."""
        index.mark_heard(self.store, message_id)

    def delete(self, message_id: int) -> bool:
        """Delete a message and its file; returns whether it existed."""
        msg = self.message(message_id)
        if msg is None:
            return False
        index.mark_deleted(self.store, message_id, time.time())
        msg.path.unlink(missing_ok=True)
        return True

    def greeting_path(self, mailbox: str) -> Path | None:
        """The owner's recorded greeting, if there is one."""
        path = self.directory(mailbox) / GREETING_FILE
        return path if path.is_file() else None

    # -- access ------------------------------------------------------------------------------
    def pin(self, mailbox: str) -> str | None:
        """The mailbox PIN (setting ``voicemail.pin.<mailbox>``), None when unset."""
        value = self.store.get_setting(PIN_SETTING_PREFIX + check_mailbox(mailbox))
        return value or None

    def check_pin(self, mailbox: str, entered: str) -> bool:
        """Whether ``entered`` is the mailbox's PIN; a mailbox without a PIN accepts no PIN."""
        try:
            pin = self.pin(mailbox)
        except MailboxError:
            return False
        # Constant-time compare: the time of a wrong guess must not tell how many digits matched.
        return pin is not None and hmac.compare_digest(pin.encode(), entered.encode())
