"""The one place calls are made (docs/ARCHITECTURE.md, "Where call state lives").

Every call, whatever starts it (a phone or trunk INVITE, a queue callback, click-to-call, the
outbound dialer, preview dialing), is built here and listed in the directory of live calls, which
the call itself leaves when it ends (`CallContext.call_ended`).
"""
from __future__ import annotations

from appliance.pbx.call import Call
from appliance.pbx.call_context import CallContext
from appliance.pbx.channel import Channel
from appliance.pbx.permission import Principal
from appliance.store.models import Extension


class CallFactory:
    """Builds calls in one context and lists them in `directory` (call id -> call)."""

    def __init__(self, context: CallContext[Call], directory: dict[str, Call]) -> None:
        self.context = context
        self.directory = directory

    def new_call(self, a: Channel, dialed: str, direction: str, caller_ext: Extension | None = None,
                 via_trunk: str | None = None, principal: Principal | None = None) -> Call:
        """A call from `a` to `dialed` ("inbound", "internal" or "outbound"), not started yet: the
        caller starts it (`start`, `start_to`, `adopt_answered`, `ring_originator`)."""
        call = Call(self.context, a, dialed, caller_ext, direction, via_trunk, principal)
        self.directory[call.id] = call
        return call
