"""A call's detail record: its CDR row, opened when the call starts routing, answered once, and
closed with the Asterisk-style disposition call-centre reports count. The row goes to the
`CdrSink` port (the store); `Call` (call.py) says when.
"""
from __future__ import annotations

from appliance.pbx.channel import Cause, Channel
from appliance.pbx.ports import CdrSink


def disposition_for(cause: Cause, answered: bool, caller_gave_up: bool) -> str:
    """Asterisk-style CDR disposition, what call-centre reports count."""
    if answered:
        return "ANSWERED"
    if caller_gave_up:
        return "CANCELLED"
    if cause.code in (486, 600):
        return "BUSY"
    if cause.code in (408, 480):
        return "NO ANSWER"
    return "FAILED"


class CallDetailRecord:
    """The CDR row of one call (`row_id` while it is open)."""

    def __init__(self, sink: CdrSink) -> None:
        self.sink = sink
        self.row_id: int | None = None

    def open(self, a: Channel, dialed: str, direction: str, trunk: str | None) -> None:
        """The call from `a` to `dialed` starts routing (its start is when `a` was created)."""
        self.row_id = self.sink.cdr_open(a.dialog_key(), a.caller.number, a.caller.name, dialed, direction,
                                         a.created, trunk=trunk)

    def answer(self, at: float) -> None:
        if self.row_id is not None:
            self.sink.cdr_answer(self.row_id, at)

    def close(self, at: float, cause: Cause, answered: bool, caller_gave_up: bool, by: str | None) -> None:
        """The call ended at `at`; `by` is who hung up ("caller", "callee"), None the PBX."""
        if self.row_id is None:
            return
        if (answered or caller_gave_up) and by is not None:
            hangup_cause = f"{by} hung up"
        else:
            hangup_cause = str(cause)
        self.sink.cdr_close(self.row_id, at, disposition_for(cause, answered, caller_gave_up), hangup_cause)
        self.row_id = None
