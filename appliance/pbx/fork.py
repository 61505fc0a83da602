"""Ringing several devices at once on behalf of one waiting party; the first answer wins.

This is what "all registered devices of the callee ring" means (RFC 3261 §16.7 forking
done by a B2BUA): the others are cancelled with "call completed elsewhere" (RFC 3326).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from appliance.pbx.channel import (
    ANSWERED_ELSEWHERE,
    BUSY,
    CANCELLED,
    CONGESTION,
    NO_ANSWER,
    UNAVAILABLE,
    Answered,
    Cause,
    Channel,
    ChannelEvent,
    HungUp,
    Progress,
    Ringing,
)
from appliance.pbx.ports import Scheduler, TimerHandle

log = logging.getLogger("plateau.pbx")


def combined_cause(causes: list[Cause]) -> Cause:
    """One cause for a set of failed devices: busy wins, as a caller would expect."""
    if any(c.code in (486, 600) for c in causes):
        return BUSY
    if any(c.code == 603 for c in causes):
        return Cause(603, "Decline")
    if causes and all(c.code == causes[0].code for c in causes):
        return causes[0]
    return UNAVAILABLE


class Fork:
    """Dial `channels` together; report ringing, the winner, or why nobody answered."""

    def __init__(
        self,
        channels: list[Channel],
        timeout: float,
        schedule: Scheduler,
        on_ringing: Callable[[Channel], None],
        on_answer: Callable[[Channel], None],
        on_fail: Callable[[Cause], None],
        on_early_media: Callable[[Channel], None] | None = None,
    ) -> None:
        self.pending = list(channels)
        self.timeout = timeout
        self.schedule = schedule
        self.on_ringing = on_ringing
        self.on_answer = on_answer
        self.on_fail = on_fail
        self.on_early_media = on_early_media
        self.early: Channel | None = None  # the device whose early media the caller hears
        self.causes: list[Cause] = []
        self.timer: TimerHandle | None = None
        self.done = False
        self.ringing = False

    def start(self) -> None:
        if not self.pending:
            self._finish_failed(UNAVAILABLE)
            return
        if self.timeout > 0:
            self.timer = self.schedule(self.timeout, self._expired)
        for chan in list(self.pending):
            chan.listener = self._event
            try:
                chan.dial()
            except Exception:
                log.exception("could not dial %s", chan.id)
                chan.listener = None
                chan.hangup(CONGESTION)
                self.pending.remove(chan)
                self.causes.append(CONGESTION)
        if not self.pending and not self.done:
            self._finish_failed(combined_cause(self.causes))

    def cancel(self, cause: Cause = CANCELLED) -> None:
        """Stop ringing everywhere (the caller hung up, or a transfer was abandoned)."""
        self.done = True
        self._stop_timer()
        for chan in self.pending:
            chan.listener = None
            chan.hangup(cause)
        self.pending.clear()

    def _event(self, event: ChannelEvent) -> None:
        if self.done:
            return
        chan = event.channel
        if isinstance(event, Progress) and self.early is None and self.on_early_media is not None:
            # The first device to open early media (a carrier's ringback or announcement) is heard.
            self.early = chan
            self.on_early_media(chan)
        if isinstance(event, (Ringing, Progress)):
            if not self.ringing:
                self.ringing = True
                self.on_ringing(chan)
        elif isinstance(event, Answered):
            self.done = True
            self._stop_timer()
            self.pending.remove(chan)
            for other in self.pending:
                other.listener = None
                other.hangup(ANSWERED_ELSEWHERE)
            self.pending.clear()
            chan.listener = None
            self.on_answer(chan)
        elif isinstance(event, HungUp):
            if chan in self.pending:
                self.pending.remove(chan)
                self.causes.append(event.cause)
            if not self.pending:
                self._finish_failed(combined_cause(self.causes))

    def _expired(self) -> None:
        self.timer = None
        if self.done:
            return
        self.cancel(CANCELLED)
        self.on_fail(NO_ANSWER)

    def _finish_failed(self, cause: Cause) -> None:
        self.done = True
        self._stop_timer()
        self.on_fail(cause)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
