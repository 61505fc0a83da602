"""The directory of live calls (docs/ARCHITECTURE.md, "Where call state lives").

Call state lives in each `Call` (its state machine, legs, fork, transfer, service); the directory
only lists the calls under way, by id, and finds their channels. The call factory adds a call
when it is made; the call leaves when it ends. Event subscribers look calls up here by the
`call_id` an event carries.
"""
from __future__ import annotations

from appliance.pbx.call import Call
from appliance.pbx.channel import Channel


class CallDirectory(dict[str, Call]):
    """call id -> live call, and the channels of those calls."""

    def channels(self) -> list[Channel]:
        """Every channel of a live call: its two parties, and the legs its forks are ringing."""
        seen: list[Channel] = []
        for call in self.values():
            for chan in (call.a, call.b):
                if chan is not None and chan not in seen:
                    seen.append(chan)
            for fork in (call.fork, call.transfer.fork if call.transfer else None):
                if fork is not None:
                    seen.extend(c for c in fork.pending if c not in seen)
        return seen

    def channel(self, channel_id: str) -> Channel | None:
        return next((c for c in self.channels() if c.id == channel_id), None)

    def channel_by_dialog(self, dialog_key: str) -> Channel | None:
        """The channel whose technology-level id (SIP Call-ID) is `dialog_key` (RFC 3891 Replaces)."""
        return next((c for c in self.channels() if c.dialog_key() == dialog_key), None)
