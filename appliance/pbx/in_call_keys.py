"""Keys pressed during a conversation: for the other party, or an in-call code for the PBX.

A digit keyed during the call is for the other party (RFC 4733 / SIP INFO / the board's key
events are re-sent on its leg; in-band tones already reach it as audio), except the in-call
codes of our own phones (never a trunk's: a caller must not stop the recording), whose ``*`` is
held back briefly (``feature_digits``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from appliance.media.dtmf import clamp_duration
from appliance.pbx.channel import Channel, DtmfReceived
from appliance.pbx.feature_digits import FeatureDigits, Key
from appliance.pbx.ports import MediaPort, Scheduler

log = logging.getLogger("plateau.pbx")
IN_CALL_CODES = frozenset({"*1", "*2", "*3"})  # recording on/off, pause, resume (InCallCode: call_recording.py)


class InCallKeys:
    """One call's keys: `partner(chan)` is who hears them while `talking()`; `on_code(chan, code)`
    runs an in-call code keyed on one of our phones."""

    def __init__(self, call_id: str, media: MediaPort, schedule: Scheduler,
                 partner: Callable[[Channel], Channel | None], talking: Callable[[], bool],
                 on_code: Callable[[Channel, str], None]) -> None:
        self.call_id = call_id
        self.media = media
        self.schedule = schedule
        self.partner = partner
        self.talking = talking
        self.on_code = on_code
        self._digits: dict[str, FeatureDigits] = {}  # channel id -> its digits (codes held back)

    def key(self, chan: Channel, event: DtmfReceived) -> None:
        if not self.talking():
            return
        key = Key(event.digit, clamp_duration(event.duration_ms), event.source)
        if chan.extension is None:
            self._pass(chan, key)
            return
        digits = self._digits.get(chan.id)
        if digits is None:
            digits = self._digits[chan.id] = FeatureDigits(
                IN_CALL_CODES, self.schedule, lambda k: self._pass(chan, k), lambda code: self.on_code(chan, code))
        digits.key(key)

    def cancel(self) -> None:
        """The call ended: keys held back are dropped."""
        for digits in self._digits.values():
            digits.cancel()

    def _pass(self, chan: Channel, key: Key) -> None:
        other = self.partner(chan)
        if key.source == "inband" or not self.talking() or other is None or other.is_down:
            return
        try:
            self.media.send_dtmf(other.media_leg, key.digit, key.duration_ms)
        except Exception as exc:  # noqa: BLE001 - a media error must not end the call
            log.warning("%s: DTMF %s not relayed to %s: %s", self.call_id, key.digit, other.id, exc,
                        extra={"CALL_ID": self.call_id})
