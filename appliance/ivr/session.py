"""Drives one answered channel through an IVR flow: prompts to the media engine, keys back.

The interpreter decides; this driver only turns its actions into media requests and timers
and the channel's events into the interpreter's inputs, so a SIP caller and (later) an
analog or ISDN caller walk a flow the same way.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path

from appliance.ivr.contacts import ContactDirectory
from appliance.ivr.flow import Flow, Prompt, RouteTarget
from appliance.ivr.interpreter import (
    Action,
    CollectDigits,
    Digits,
    Hangup,
    Input,
    Interpreter,
    Play,
    PlaybackDone,
    Route,
    SetSensitive,
    Timeout,
)
from appliance.ivr.tts import PromptCache
from appliance.pbx.channel import Channel, DtmfReceived, PlaybackEnded
from appliance.pbx.ports import MediaPort, Scheduler, TimerHandle

log = logging.getLogger("plateau.ivr")


class IvrSession:
    """One caller in one flow; ends by calling `on_route(target, variables)` or `on_hangup()`."""

    def __init__(self, chan: Channel, flow: Flow, media: MediaPort, schedule: Scheduler, prompts: PromptCache,
                 sounds: Path, on_route: Callable[[RouteTarget, dict[str, str]], None],
                 on_hangup: Callable[[], None], contacts: ContactDirectory | None = None,
                 on_sensitive: Callable[[bool], None] | None = None) -> None:
        self.chan = chan
        self.media = media
        self.schedule = schedule
        self.prompts = prompts
        self.sounds = sounds
        self.on_route = on_route
        self.on_hangup = on_hangup
        self.on_sensitive = on_sensitive or (lambda active: None)
        self.interp = Interpreter(flow, chan.caller.number, lambda: dt.datetime.now(dt.UTC), contacts)
        self.playing: Play | None = None
        self.play_id: str | None = None
        self.collecting: CollectDigits | None = None
        self.buffer = ""
        self.timer: TimerHandle | None = None
        self.done = False

    @property
    def variables(self) -> dict[str, str]:
        """What the flow learnt, minus what was collected in sensitive nodes (card numbers)."""
        return {k: v for k, v in self.interp.variables.items() if k not in self.interp.sensitive_variables}

    def start(self) -> None:
        self._run(self.interp.start())

    def stop(self) -> None:
        """The caller left (or the call ended): drop timers and prompts."""
        self.done = True
        self._cancel_timer()

    # -- channel events ------------------------------------------------------------------------
    def handle(self, event: DtmfReceived | PlaybackEnded) -> None:
        if self.done:
            return
        if isinstance(event, PlaybackEnded):
            if self.playing is not None and event.play_id == self.play_id:
                self.playing = None
                self._feed(PlaybackDone())
            return
        if self.playing is not None:
            if not self.playing.interruptible:
                return  # a prompt that must be heard whole ignores keys
            self.media.stop_play(self.chan.media_leg)
            self.playing = None
            self._feed(Digits(event.digit))
            return
        if self.collecting is not None:
            self.buffer += event.digit
            want = self.collecting
            if len(self.buffer) >= want.max_digits or (want.terminator and event.digit == want.terminator):
                self._finish_collect()
            else:
                self._arm_timer(want.timeout)

    # -- actions -------------------------------------------------------------------------------
    def _feed(self, event: Input) -> None:
        self._run(self.interp.feed(event))

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Play):
                self._play(action)
            elif isinstance(action, CollectDigits):
                self.collecting, self.buffer = action, ""
                self._arm_timer(action.timeout)
            elif isinstance(action, Route):
                self._finish()
                log.info("%s: IVR routes to %s", self.chan.id, action.target)
                self.on_route(action.target, self.variables)
            elif isinstance(action, Hangup):
                self._finish()
                self.on_hangup()
            elif isinstance(action, SetSensitive):
                self.on_sensitive(action.active)  # PCI: the call's recording pauses, then resumes

    def _play(self, action: Play) -> None:
        self.playing = action
        try:
            path = self._prompt_path(action.prompt)
        except (OSError, RuntimeError) as exc:
            log.error("%s: prompt %s unavailable (%s): skipped", self.chan.id, action.prompt, exc)
            self.playing = None
            self._feed(PlaybackDone())
            return
        self.play_id = self.media.play(self.chan.media_leg, str(path), False)

    def _prompt_path(self, prompt: Prompt) -> Path:
        if prompt.kind == "say":
            return self.prompts.path_for(prompt.value)
        path = Path(prompt.value)
        return path if path.is_absolute() else self.sounds / path

    def _finish_collect(self) -> None:
        self._cancel_timer()
        digits, self.collecting, self.buffer = self.buffer, None, ""
        self._feed(Digits(digits))

    def _arm_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self.timer = self.schedule(seconds, self._expired)

    def _expired(self) -> None:
        self.timer = None
        if self.done or self.collecting is None:
            return
        if self.buffer:
            self._finish_collect()
        else:
            self.collecting = None
            self._feed(Timeout())

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _finish(self) -> None:
        self.done = True
        self._cancel_timer()
        if self.playing is not None:
            self.media.stop_play(self.chan.media_leg)
            self.playing = None
