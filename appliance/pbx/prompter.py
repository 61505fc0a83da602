"""A keypad dialogue with one answered channel: say something, ask for digits, wait for the end.

Feature codes (agent login, pause...) and the queue's announcements talk to callers this way.
Flows with menus and branches belong to the IVR interpreter; this is the small imperative
counterpart for the PBX's own short exchanges, driven by the channel's typed events.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from appliance.ivr.tts import PromptCache, TtsError
from appliance.pbx.channel import Channel, DtmfReceived, PlaybackEnded
from appliance.pbx.ports import MediaPort, Scheduler, TimerHandle

log = logging.getLogger("plateau.pbx")


class Prompter:
    """Plays prompts to `chan` and collects keys; one step at a time."""

    def __init__(self, chan: Channel, media: MediaPort, schedule: Scheduler, prompts: PromptCache) -> None:
        self.chan = chan
        self.media = media
        self.schedule = schedule
        self.prompts = prompts
        self.play_id: str | None = None
        self._after_play: Callable[[], None] | None = None
        self._collect: Callable[[str], None] | None = None
        self._max_digits = 0
        self._terminator = "#"
        self._timeout = 0.0
        self.buffer = ""
        self.timer: TimerHandle | None = None
        self.stopped = False

    def say(self, text: str, then: Callable[[], None]) -> None:
        """Speak `text` (rendered once and cached), then call `then`."""
        self.play(self._render(text), then)

    def play(self, path: Path | None, then: Callable[[], None]) -> None:
        """Play a WAV file, then call `then` (at once when there is nothing to play)."""
        if self.stopped:
            return
        if path is None:
            then()
            return
        self._after_play = then
        self.play_id = self.media.play(self.chan.media_leg, str(path), False)

    def ask(self, text: str, max_digits: int, then: Callable[[str], None], timeout: float = 8.0) -> None:
        """Speak `text`, then collect up to `max_digits` keys ('#' ends early); `then("")` on timeout.

        Keys pressed during the question interrupt it and count (callers who know the menu type ahead).
        """
        self._collect, self._max_digits, self._timeout, self.buffer = then, max_digits, timeout, ""
        self.say(text, lambda: self._arm(self._timeout))

    def handle(self, event: DtmfReceived | PlaybackEnded) -> None:
        """Feed the channel's events here while the dialogue runs."""
        if self.stopped:
            return
        if isinstance(event, PlaybackEnded):
            if event.play_id == self.play_id and self._after_play is not None:
                then, self._after_play, self.play_id = self._after_play, None, None
                then()
            return
        if self._collect is None:
            return
        if self._after_play is not None:  # typed ahead: stop the question, keep the key
            self.media.stop_play(self.chan.media_leg)
            self._after_play, self.play_id = None, None
        if event.digit == self._terminator:
            self._finish()
            return
        self.buffer += event.digit
        if len(self.buffer) >= self._max_digits:
            self._finish()
        else:
            self._arm(self._timeout)

    def stop(self) -> None:
        """The caller left or the PBX took the channel back: drop timers and prompts."""
        self.stopped = True
        self._cancel()
        if self._after_play is not None and not self.chan.is_down:
            self.media.stop_play(self.chan.media_leg)
        self._after_play = self._collect = None

    def _finish(self) -> None:
        self._cancel()
        then, digits = self._collect, self.buffer
        self._collect, self.buffer = None, ""
        if then is not None:
            then(digits)

    def _arm(self, seconds: float) -> None:
        self._cancel()
        self.timer = self.schedule(seconds, self._finish)

    def _cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _render(self, text: str) -> Path | None:
        try:
            return self.prompts.path_for(text)
        except (TtsError, OSError) as exc:
            log.error("%s: cannot render prompt %r: %s", self.chan.id, text, exc)
            return None


def spoken_digits(number: str) -> str:
    """"2001" spoken digit by digit, as agents say their numbers (text for `Prompter.say`)."""
    return " ".join(number)
