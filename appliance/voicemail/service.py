"""Voicemail as a PBX service with explicit inputs: leaving messages and listening to them.

The PBX decides when a caller reaches voicemail (no answer, a `voicemail:` destination, *97,
*98); this service builds the caller's session from the ports it was given, never from the
switchboard, and tells `message_waiting(mailbox)` whenever a mailbox's counts may have changed,
so the technology layer can refresh the phones' lamps (RFC 3842, sip/mwi.py).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from appliance.ivr.tts import PromptCache
from appliance.pbx.channel import Channel
from appliance.pbx.pin_guard import PinGuard
from appliance.pbx.ports import MediaPort, Scheduler
from appliance.voicemail.mailbox import Mailboxes
from appliance.voicemail.session import DepositSession, RetrievalSession

log = logging.getLogger("plateau.voicemail")


class Voicemail:
    """Builds deposit and retrieval sessions; each ends with `hang_up()` unless the caller left.

    The owner routes the channel's events to the returned session, then calls its `start()`.
    """

    def __init__(self, mailboxes: Mailboxes, media: MediaPort, schedule: Scheduler, prompts: PromptCache,
                 pins: PinGuard, message_waiting: Callable[[str], None]) -> None:
        self.mailboxes = mailboxes
        self.media = media
        self.schedule = schedule
        self.prompts = prompts
        self.pins = pins  # wrong PINs across calls lock the caller and the mailbox (pin_guard.py)
        self.message_waiting = message_waiting

    def deposit(self, chan: Channel, mailbox: str, call_id: str, hang_up: Callable[[], None]) -> DepositSession:
        """The answered caller on `chan` leaves a message for `mailbox` (an existing one)."""

        def done(message_id: int | None) -> None:
            log.info("%s: voicemail for %s %s", call_id, mailbox,
                     f"message {message_id}" if message_id is not None else "left empty")
            self.message_waiting(mailbox)
            if not chan.is_down:
                hang_up()

        return DepositSession(chan, mailbox, self.mailboxes, self.media, self.schedule, self.prompts, done)

    def retrieval(self, chan: Channel, mailbox: str | None, pin_required: bool, source: str,
                  hang_up: Callable[[], None]) -> RetrievalSession:
        """A mailbox owner on `chan` listens: `mailbox` None asks for it (*98), always with a PIN.

        `source` is who is entering PINs, as the PIN guard counts them (an extension, a trunk and
        caller ID).
        """

        def done(opened: str | None) -> None:
            if opened:
                self.message_waiting(opened)
            if not chan.is_down:
                hang_up()

        return RetrievalSession(chan, mailbox, self.mailboxes, pin_required, self.media, self.schedule,
                                self.prompts, done, pin_guard=self.pins, source=source)
