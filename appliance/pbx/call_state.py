"""The states of a call and the transitions between them (call.py's `Call` enforces them).

A call is routed (ROUTING), may talk to the PBX itself (IVR: a flow, a feature code, voicemail,
the post-call survey), wait in a queue (QUEUED), ring a callee (RINGING), be up between two
parties (UP), let the caller hear why it failed (FAILING), and ends once (ENDED).
"""
from __future__ import annotations

import enum


class CallState(enum.Enum):
    ROUTING = "routing"
    IVR = "ivr"  # answered by a flow or a feature code: the caller is talking to the PBX
    QUEUED = "queued"  # waiting in an ACD queue for an agent
    RINGING = "ringing"
    UP = "up"
    FAILING = "failing"  # the caller hears a busy/congestion tone before release
    ENDED = "ended"


TRANSITIONS: dict[CallState, set[CallState]] = {
    CallState.ROUTING: {CallState.RINGING, CallState.UP, CallState.FAILING, CallState.ENDED, CallState.ROUTING,
                        CallState.IVR, CallState.QUEUED},
    CallState.IVR: {CallState.ROUTING, CallState.FAILING, CallState.ENDED},
    CallState.QUEUED: {CallState.UP, CallState.ROUTING, CallState.FAILING, CallState.ENDED},
    CallState.RINGING: {CallState.ROUTING, CallState.UP, CallState.FAILING, CallState.ENDED},
    CallState.UP: {CallState.FAILING, CallState.ENDED, CallState.IVR},  # IVR: the post-call survey
    CallState.FAILING: {CallState.ENDED},
    CallState.ENDED: set(),
}
