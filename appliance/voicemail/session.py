"""Voicemail channel drivers: leaving a message (deposit) and listening to one's messages (retrieval).

Like IvrSession, each driver works on an answered channel only through the media engine
(play, record) and the channel's typed events (DtmfReceived, PlaybackEnded), so an analog or
ISDN caller reaches voicemail the same way a SIP caller does. Each is an explicit state
machine; `on_done` is called exactly once, whether the session finished or the caller hung
up (`stop()`), so the owner can always refresh the message-waiting indicator (RFC 3842).
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from pathlib import Path

from appliance.ivr.tts import PromptCache
from appliance.media.protocol import MediaError
from appliance.media.tones import ToneSpec
from appliance.pbx.channel import Channel, DtmfReceived, PlaybackEnded
from appliance.pbx.ports import MediaPort, Scheduler, TimerHandle
from appliance.pbx.pin_guard import PinGuard
from appliance.voicemail.mailbox import Mailboxes, MailboxError, Message

log = logging.getLogger("plateau.voicemail")

BEEP = ToneSpec("voicemail beep", (1000.0,))
BEEP_SECONDS = 0.5
DIGIT_TIMEOUT_S = 5.0  # after a prompt asking for digits, and between digits
MENU_TIMEOUT_S = 6.0  # silence after the message menu counts as "next"
MAX_DIGITS = 16
MAX_TRIES = 3


class _Driver:
    """What both drivers share: prompts with their play id, one timer, a tolerant stop."""

    def __init__(self, chan: Channel, media: MediaPort, schedule: Scheduler, prompts: PromptCache) -> None:
        self.chan = chan
        self.media = media
        self.schedule = schedule
        self.prompts = prompts
        self.play_id: str | None = None
        self.timer: TimerHandle | None = None

    def _play(self, source: Path | str | ToneSpec, loop: bool = False) -> bool:
        """Play a WAV, a TTS text (str) or a tone; False if it could not be played."""
        try:
            if isinstance(source, str):
                source = self.prompts.path_for(source)
            self.play_id = self.media.play(self.chan.media_leg,
                                           source if isinstance(source, ToneSpec) else str(source), loop)
        except (OSError, RuntimeError) as exc:  # TtsError, MediaError, missing file
            log.error("%s: cannot play %s (%s): skipped", self.chan.id, source, exc)
            self.play_id = None
            return False
        return True

    def _stop_play(self) -> None:
        if self.play_id is None:
            return
        self.play_id = None
        try:
            self.media.stop_play(self.chan.media_leg)
        except MediaError as exc:  # the leg may already be gone when the caller hung up
            log.debug("%s: stop_play: %s", self.chan.id, exc)

    def _is_current(self, event: PlaybackEnded) -> bool:
        """A stale end (of a prompt we already stopped) is ignored."""
        if self.play_id is not None and event.play_id == self.play_id:
            self.play_id = None
            return True
        return False

    def _arm(self, seconds: float, fn: Callable[[], None]) -> None:
        self._cancel_timer()

        def fire() -> None:
            self.timer = None  # fired: nothing left to cancel
            fn()

        self.timer = self.schedule(seconds, fire)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


# -- deposit -----------------------------------------------------------------------------------
class DepositState(enum.Enum):
    IDLE = "idle"
    GREETING = "greeting"
    BEEP = "beep"
    RECORDING = "recording"
    DONE = "done"


class DepositSession(_Driver):
    """A caller leaves a message in `mailbox`; ends with `on_done(message_id | None)`.

    The channel is already answered. Greeting ('#' skips it), beep, then the caller's leg is
    recorded until '#', hang-up (`stop()`, the message is kept) or `max_seconds`.
    """

    def __init__(self, chan: Channel, mailbox: str, mailboxes: Mailboxes, media: MediaPort, schedule: Scheduler,
                 prompts: PromptCache, on_done: Callable[[int | None], None], max_seconds: float = 120.0) -> None:
        super().__init__(chan, media, schedule, prompts)
        self.mailbox = mailbox
        self.mailboxes = mailboxes
        self.on_done = on_done
        self.max_seconds = max_seconds
        self.state = DepositState.IDLE
        self.rec_id: str | None = None
        self.path: Path | None = None
        self.message_id: int | None = None

    def start(self) -> None:
        """Play the greeting: the owner's recording, else a spoken default."""
        self.state = DepositState.GREETING
        greeting: Path | str | None = self.mailboxes.greeting_path(self.mailbox)
        if greeting is None:
            greeting = (f"The person at extension {self.mailbox} is not available. "
                        "Please leave a message after the tone.")
        if not self._play(greeting):
            self._beep()

    def handle(self, event: DtmfReceived | PlaybackEnded) -> None:
        """Channel events: prompt ends and keys."""
        if isinstance(event, PlaybackEnded):
            if self._is_current(event) and self.state == DepositState.GREETING:
                self._beep()
            return
        if event.digit != "#":
            return
        if self.state == DepositState.GREETING:
            self._stop_play()
            self._beep()
        elif self.state == DepositState.RECORDING:
            self._finish()

    def stop(self) -> None:
        """The caller hung up: a recording under way is kept (if long enough)."""
        if self.state == DepositState.DONE:
            return
        if self.state == DepositState.RECORDING:
            self._finish()
            return
        self._cancel_timer()
        self._stop_play()
        self._done(None)

    # -- transitions ---------------------------------------------------------------------------
    def _beep(self) -> None:
        self.state = DepositState.BEEP
        if not self._play(BEEP, loop=True):
            self._record()
            return
        self._arm(BEEP_SECONDS, self._record)

    def _record(self) -> None:
        if self.state != DepositState.BEEP:
            return
        self._stop_play()
        try:
            self.path = self.mailboxes.new_path(self.mailbox)
            # Only the caller's voice, mono: the beep and prompts must not be in the message.
            self.rec_id = str(self.media.record_parties(str(self.path), [self.chan.media_leg], stereo=False))
        except (OSError, MediaError, MailboxError) as exc:
            log.error("%s: cannot record voicemail for %s: %s", self.chan.id, self.mailbox, exc)
            self._done(None)
            return
        self.state = DepositState.RECORDING
        self._arm(self.max_seconds, self._finish)

    def _finish(self) -> None:
        """Close the recording, then index it (the file is complete before the row exists)."""
        self._cancel_timer()
        if self.rec_id is not None:
            try:
                self.media.stop_record(self.rec_id)
            except MediaError as exc:
                log.error("%s: stop_record %s: %s", self.chan.id, self.rec_id, exc)
            self.rec_id = None
        message_id = None
        if self.path is not None:
            caller = self.chan.caller
            message_id = self.mailboxes.add(self.mailbox, caller.number, caller.name, self.path)
            if message_id is None:
                log.info("%s: message for %s under a second: discarded", self.chan.id, self.mailbox)
            else:
                log.info("%s: voicemail %d left for %s", self.chan.id, message_id, self.mailbox)
        self._done(message_id)

    def _done(self, message_id: int | None) -> None:
        self.state = DepositState.DONE
        self.message_id = message_id
        self.on_done(message_id)


# -- retrieval ---------------------------------------------------------------------------------
class RetrievalState(enum.Enum):
    IDLE = "idle"
    ASK_MAILBOX = "ask_mailbox"
    ASK_PIN = "ask_pin"
    INTRO = "intro"
    MESSAGE = "message"  # a message is playing
    MENU = "menu"  # after a message: the options prompt, then waiting for a key
    NOTICE = "notice"  # a short announcement, then `then`
    GOODBYE = "goodbye"
    DONE = "done"


ASK_MAILBOX_TEXT = "Please enter the mailbox number, followed by the pound key."
ASK_PIN_TEXT = "Please enter your PIN, followed by the pound key."
WRONG_PIN_TEXT = "Incorrect PIN."
LOCKED_TEXT = "Too many incorrect PINs. Please try again later."
MENU_TEXT = "Press 1 to replay, 2 for the next message, 7 to delete."
DELETED_TEXT = "Message deleted."
NO_MORE_TEXT = "No more messages. Goodbye."
GOODBYE_TEXT = "Goodbye."


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def intro_text(new: int, old: int) -> str:
    """What a mailbox owner hears first, e.g. "You have 2 new messages and 1 saved message."."""
    if new == 0 and old == 0:
        return "You have no messages. Goodbye."
    text = f"You have {_plural(new, 'new message')}"
    return text + (f" and {_plural(old, 'saved message')}." if old else ".")


class RetrievalSession(_Driver):
    """A mailbox owner listens to messages; ends with `on_done(mailbox | None)`.

    `mailbox` None (*98): the number is asked and a PIN is always required. `pin_required`
    True: the mailbox's PIN must be entered, so a mailbox without a PIN cannot be opened
    (every attempt fails, which also keeps unknown and PIN-less mailboxes indistinguishable).
    False (*97 from the owner's own authenticated phone): no PIN asked. `on_done` gets the
    mailbox that was opened (its counts may have changed) or None if access was refused.
    """

    def __init__(self, chan: Channel, mailbox: str | None, mailboxes: Mailboxes, pin_required: bool,
                 media: MediaPort, schedule: Scheduler, prompts: PromptCache,
                 on_done: Callable[[str | None], None], pin_guard: PinGuard | None = None,
                 source: str = "") -> None:
        super().__init__(chan, media, schedule, prompts)
        self.pin_guard = pin_guard
        self.source = source or f"leg:{chan.id}"  # who is trying PINs (pin_guard.py)
        self.mailbox = mailbox
        self.mailboxes = mailboxes
        self.pin_required = pin_required or mailbox is None
        self.on_done = on_done
        self.state = RetrievalState.IDLE
        self.opened = False
        self.buffer = ""
        self.tries = 0
        self.queue: list[Message] = []
        self.current: Message | None = None
        self.then: Callable[[], None] | None = None

    def start(self) -> None:
        if self.pin_required and self._lockout([self.source]):
            return
        if self.mailbox is None:
            self._ask(RetrievalState.ASK_MAILBOX, ASK_MAILBOX_TEXT)
        elif self.pin_required:
            self._ask(RetrievalState.ASK_PIN, ASK_PIN_TEXT)
        else:
            self._open()

    def stop(self) -> None:
        """The caller hung up (or the call ended)."""
        if self.state == RetrievalState.DONE:
            return
        self._cancel_timer()
        self._stop_play()
        self._done()

    def handle(self, event: DtmfReceived | PlaybackEnded) -> None:
        """Channel events: prompt ends and keys."""
        if self.state == RetrievalState.DONE:
            return
        if isinstance(event, PlaybackEnded):
            if self._is_current(event):
                self._played()
            return
        digit = event.digit
        if self.state in (RetrievalState.ASK_MAILBOX, RetrievalState.ASK_PIN):
            self._stop_play()  # typing ahead interrupts the prompt
            if digit == "#":
                self._submit()
                return
            self.buffer += digit
            if len(self.buffer) >= MAX_DIGITS:
                self._submit()
            else:
                self._arm(DIGIT_TIMEOUT_S, self._submit)
        elif self.state in (RetrievalState.MESSAGE, RetrievalState.MENU):
            self._menu_key(digit)

    # -- prompt ends and timers --------------------------------------------------------------
    def _played(self) -> None:
        state = self.state
        if state in (RetrievalState.ASK_MAILBOX, RetrievalState.ASK_PIN):
            self._arm(DIGIT_TIMEOUT_S, self._submit)
        elif state == RetrievalState.INTRO:
            if self.queue:
                self._next_message()
            else:
                self._done()
        elif state == RetrievalState.MESSAGE:
            self.state = RetrievalState.MENU
            if not self._play(MENU_TEXT):
                self._played()
        elif state == RetrievalState.MENU:
            self._arm(MENU_TIMEOUT_S, lambda: self._menu_key("2"))
        elif state == RetrievalState.NOTICE:
            then, self.then = self.then, None
            if then is not None:
                then()
        elif state == RetrievalState.GOODBYE:
            self._done()

    def _say(self, state: RetrievalState, text: str) -> None:
        self.state = state
        if not self._play(text):
            self._played()

    def _ask(self, state: RetrievalState, text: str) -> None:
        self.buffer = ""
        self._say(state, text)

    def _notice(self, text: str, then: Callable[[], None]) -> None:
        self.then = then
        self._say(RetrievalState.NOTICE, text)

    # -- mailbox and PIN ----------------------------------------------------------------------
    def _submit(self) -> None:
        self._cancel_timer()
        entered, self.buffer = self.buffer, ""
        if self.state == RetrievalState.ASK_MAILBOX:
            if entered:
                self.mailbox = entered
                self._ask(RetrievalState.ASK_PIN, ASK_PIN_TEXT)
            else:
                self._failed_try(lambda: self._ask(RetrievalState.ASK_MAILBOX, ASK_MAILBOX_TEXT), None)
        elif self.state == RetrievalState.ASK_PIN:
            keys = [self.source, f"mailbox:{self.mailbox}"]
            if self._lockout(keys):
                return  # locked: the PIN is not even checked, right or wrong
            if self.mailbox is not None and self.mailboxes.check_pin(self.mailbox, entered):
                if self.pin_guard is not None:
                    self.pin_guard.succeeded(keys)
                self._open()
            else:
                log.info("%s: wrong voicemail PIN for %s", self.chan.id, self.mailbox)
                if self.pin_guard is not None and self.pin_guard.failed(keys, "voicemail PIN"):
                    self._say(RetrievalState.GOODBYE, f"{WRONG_PIN_TEXT} {LOCKED_TEXT} {GOODBYE_TEXT}")
                    return  # this failure started a lockout
                self._failed_try(lambda: self._ask(RetrievalState.ASK_PIN, ASK_PIN_TEXT), WRONG_PIN_TEXT)

    def _lockout(self, keys: list[str]) -> bool:
        """Say goodbye when the caller or the mailbox is locked out (pin_guard.py)."""
        entry = self.pin_guard.locked(keys) if self.pin_guard is not None else None
        if entry is None or self.pin_guard is None:
            return False
        self.pin_guard.refuse(entry)
        self._say(RetrievalState.GOODBYE, f"{LOCKED_TEXT} {GOODBYE_TEXT}")
        return True

    def _failed_try(self, retry: Callable[[], None], notice: str | None) -> None:
        self.tries += 1
        if self.tries >= MAX_TRIES:
            # Three strikes and the call ends (a PIN guesser must redial each time).
            self._say(RetrievalState.GOODBYE, f"{notice} {GOODBYE_TEXT}" if notice else GOODBYE_TEXT)
        elif notice:
            self._notice(notice, retry)
        else:
            retry()

    def _open(self) -> None:
        if self.mailbox is None:
            self._say(RetrievalState.GOODBYE, GOODBYE_TEXT)
            return
        try:
            self.queue = self.mailboxes.messages(self.mailbox)
            new, old = self.mailboxes.counts(self.mailbox)
        except MailboxError:
            self._say(RetrievalState.GOODBYE, GOODBYE_TEXT)
            return
        self.opened = True
        log.info("%s: mailbox %s opened (%d new, %d old)", self.chan.id, self.mailbox, new, old)
        self._say(RetrievalState.INTRO, intro_text(new, old))

    # -- messages ------------------------------------------------------------------------------
    def _next_message(self) -> None:
        self._cancel_timer()
        if not self.queue:
            self.current = None
            self._say(RetrievalState.GOODBYE, NO_MORE_TEXT)
            return
        self.current = self.queue.pop(0)
        self._play_current()

    def _play_current(self) -> None:
        self._cancel_timer()
        self.state = RetrievalState.MESSAGE
        if self.current is None or not self._play(self.current.path):
            self._played()

    def _menu_key(self, digit: str) -> None:
        """1 replay, 2 next (heard), 7 delete, # skip (stays new)."""
        msg = self.current
        if msg is None or digit not in ("1", "2", "7", "#"):
            return
        self._cancel_timer()
        self._stop_play()
        if digit == "1":
            self._play_current()
        elif digit == "2":
            self.mailboxes.mark_heard(msg.id)
            self._next_message()
        elif digit == "7":
            self.mailboxes.delete(msg.id)
            self.current = None
            self._notice(DELETED_TEXT, self._next_message)
        else:
            self._next_message()

    def _done(self) -> None:
        self._cancel_timer()
        self.state = RetrievalState.DONE
        self.on_done(self.mailbox if self.opened else None)
