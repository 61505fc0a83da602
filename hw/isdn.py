"""ISDN BRI: one basic-rate port of the line board, as a TE (user side) on a carrier's S/T bus.

The board carries the port's D channel as `DCHAN` frames (one Q.921 LAPD frame each, without
flags or FCS) and its B-channel audio as `AUDIO`. Q.921 and the Q.931 protocol machine run in
libpri (hw/libpri.py); this module keeps, per call, the user-side call state the PBX needs
(Q.931 clause 2.1.1, states U0-U19), turns libpri's events into typed ones, and maps clearing
causes between Q.850 and our SIP-style `Cause` (RFC 3398).

Frames in: `BriPort.feed(frame)`. Frames out: the `send` callable given to the port. Timers:
call `poll()` when `next_timer()` is due. Everything runs in the caller's thread (the engine's
call-control loop); the listener is called from inside `feed`/`poll`/requests, after libpri has
returned, so it may make further requests.
"""
from __future__ import annotations

import enum
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from appliance.pbx.channel import (
    BUSY,
    CONGESTION,
    DECLINED,
    NO_ANSWER,
    NORMAL_CLEARING,
    NOT_FOUND,
    Cause,
)
from hw import libpri
from hw.libpri import EventType, Node, Pri, PriError, PriEvent

log = logging.getLogger("plateau.hw")

# -- Q.850 <-> SIP (RFC 3398) ---------------------------------------------------------------------
# RFC 3398 clause 8.2.6.1 (ISUP cause -> SIP response). Two deliberate departures, decided for
# Plateau: 18 "no user responding" -> 480 (the RFC says 408, which a SIP phone shows as a network
# timeout rather than "no answer"), and 21 "call rejected" -> 603 Decline (the RFC says 403; 603 is
# what our PBX itself uses for a declined call, and what a SIP caller should see).
_Q850_TO_SIP: dict[int, Cause] = {
    1: NOT_FOUND,  # unallocated (unassigned) number
    2: Cause(404, "No route to network"),
    3: Cause(404, "No route to destination"),
    16: NORMAL_CLEARING,  # normal call clearing: a BYE, not an error response
    17: BUSY,  # user busy
    18: NO_ANSWER,  # no user responding (RFC: 408, see above)
    19: NO_ANSWER,  # no answer from user (user alerted)
    20: Cause(480, "Subscriber absent"),
    21: DECLINED,  # call rejected (RFC: 403, see above)
    22: Cause(410, "Number changed"),
    23: Cause(410, "Redirected to new destination"),
    26: Cause(404, "Non-selected user clearing"),
    27: Cause(502, "Destination out of order"),
    28: Cause(484, "Address Incomplete"),  # invalid number format (address incomplete)
    29: Cause(501, "Facility rejected"),
    31: Cause(480, "Normal, unspecified"),
    34: CONGESTION,  # no circuit/channel available
    38: Cause(503, "Network out of order"),
    41: Cause(503, "Temporary failure"),
    42: Cause(503, "Switching equipment congestion"),
    47: Cause(503, "Resource unavailable"),
    55: Cause(403, "Incoming calls barred within CUG"),
    57: Cause(403, "Bearer capability not authorized"),
    58: Cause(503, "Bearer capability not presently available"),
    65: Cause(488, "Bearer capability not implemented"),
    70: Cause(488, "Only restricted digital information available"),
    79: Cause(501, "Service or option not implemented"),
    87: Cause(403, "User not member of CUG"),
    88: Cause(503, "Incompatible destination"),
    102: Cause(504, "Recovery on timer expiry"),
    111: Cause(500, "Protocol error"),
    127: Cause(500, "Interworking"),
}
# RFC 3398 clause 7.2.4.1 (SIP response -> ISUP cause), with the pairs above kept symmetric:
# 480 -> 18 and 603 -> 21 as in the RFC, and 503 -> 34 (the RFC says 41) so that "no circuit"
# survives a round trip. 200 (a BYE) and 487 (the caller cancelled) are normal clearing.
_SIP_TO_Q850: dict[int, int] = {
    200: 16, 400: 41, 401: 21, 402: 21, 403: 21, 404: 1, 405: 63, 406: 79, 407: 21, 408: 102, 410: 22,
    413: 127, 414: 127, 415: 79, 416: 127, 420: 127, 421: 127, 423: 127, 480: 18, 481: 41, 482: 25,
    483: 25, 484: 28, 485: 1, 486: 17, 487: 16, 488: 88, 500: 41, 501: 79, 502: 38, 503: 34, 504: 102,
    505: 127, 513: 127, 600: 17, 603: 21, 604: 1, 606: 88,
}


def q850_to_sip(cause: int) -> Cause:
    """The SIP-style Cause for a Q.850 cause value received in DISCONNECT/RELEASE (RFC 3398 8.2.6.1)."""
    known = _Q850_TO_SIP.get(cause)
    if known is not None:
        return known
    # Unlisted values: by Q.850 class (clause 2.2.5): normal events read as "unavailable",
    # resource unavailable as 503, anything else (service, invalid message, protocol) as 500.
    if 0 <= cause <= 31:
        return Cause(480, f"Q.850 cause {cause}")
    if 32 <= cause <= 47:
        return Cause(503, f"Q.850 cause {cause}")
    return Cause(500, f"Q.850 cause {cause}")


def sip_to_q850(code: int) -> int:
    """The Q.850 cause value to clear an ISDN call with, for a SIP-style status (RFC 3398 7.2.4.1)."""
    known = _SIP_TO_Q850.get(code)
    if known is not None:
        return known
    if 200 <= code < 300:
        return 16  # normal call clearing
    if 400 <= code < 500 or 600 <= code < 700:
        return 21  # call rejected: a final refusal we have no closer cause for
    return 41  # temporary failure (5xx, or nonsense)


# -- per-call state (Q.931 user side) --------------------------------------------------------------
class CallState(enum.Enum):
    """Q.931 clause 2.1.1 user-side call states (the ones a BRI TE passes through here)."""

    NULL = "U0 null"
    CALL_INITIATED = "U1 call initiated"  # SETUP sent
    OUTGOING_PROCEEDING = "U3 outgoing call proceeding"  # CALL PROCEEDING received
    CALL_DELIVERED = "U4 call delivered"  # ALERTING received
    CALL_PRESENT = "U6 call present"  # SETUP received
    CALL_RECEIVED = "U7 call received"  # ALERTING sent
    CONNECT_REQUEST = "U8 connect request"  # CONNECT sent
    INCOMING_PROCEEDING = "U9 incoming call proceeding"  # CALL PROCEEDING sent
    ACTIVE = "U10 active"
    DISCONNECT_REQUEST = "U11 disconnect request"  # we cleared; waiting for RELEASE
    DISCONNECT_INDICATION = "U12 disconnect indication"  # DISCONNECT received


_CLEARING = {CallState.DISCONNECT_REQUEST, CallState.DISCONNECT_INDICATION, CallState.NULL}
_ALLOWED: dict[CallState, set[CallState]] = {
    CallState.CALL_INITIATED: {CallState.OUTGOING_PROCEEDING, CallState.CALL_DELIVERED, CallState.ACTIVE} | _CLEARING,
    CallState.OUTGOING_PROCEEDING: {CallState.CALL_DELIVERED, CallState.ACTIVE} | _CLEARING,
    CallState.CALL_DELIVERED: {CallState.ACTIVE} | _CLEARING,
    CallState.CALL_PRESENT: {CallState.INCOMING_PROCEEDING, CallState.CALL_RECEIVED, CallState.CONNECT_REQUEST}
    | _CLEARING,
    CallState.INCOMING_PROCEEDING: {CallState.CALL_RECEIVED, CallState.CONNECT_REQUEST} | _CLEARING,
    CallState.CALL_RECEIVED: {CallState.CONNECT_REQUEST} | _CLEARING,
    CallState.CONNECT_REQUEST: {CallState.ACTIVE} | _CLEARING,
    CallState.ACTIVE: _CLEARING,
    CallState.DISCONNECT_REQUEST: {CallState.NULL},
    CallState.DISCONNECT_INDICATION: {CallState.NULL},
    CallState.NULL: set(),
}


class IllegalCallTransition(RuntimeError):
    """A BRI call was asked to do something its Q.931 state does not allow."""


class BriUnavailable(RuntimeError):
    """A call was attempted while the D channel is down or the port closed."""


_ids = itertools.count(1)


class IsdnCall:
    """One call on the BRI: its numbers, B channel and Q.931 state."""

    def __init__(self, port: BriPort, handle: int, direction: str, calling: str, called: str,
                 calling_name: str = "", channel: int | None = None) -> None:
        self.id = f"{port.name}-call-{next(_ids)}"
        self.port = port
        self.handle = handle  # libpri's q931_call pointer
        self.direction = direction  # "inbound" (SETUP received) or "outbound"
        self.calling = calling
        self.calling_name = calling_name
        self.called = called
        self.channel = channel  # the B channel (1 or 2) once known
        self.state = CallState.CALL_PRESENT if direction == "inbound" else CallState.CALL_INITIATED
        self.q850: int | None = None  # the clearing cause, once cleared
        self.cause: Cause | None = None

    def _to(self, new: CallState) -> None:
        if new not in _ALLOWED[self.state]:
            raise IllegalCallTransition(f"{self.id}: {self.state.value} -> {new.value}")
        log.debug("%s: %s -> %s", self.id, self.state.value, new.value)
        self.state = new

    def _learn_channel(self, channel: int) -> None:
        # libpri's channel word: bits 0-7 the B channel, 0xFF (or -1) "any"/none yet.
        b = channel & 0xFF if channel >= 0 else 0xFF
        if b not in (0, 0xFF):
            self.channel = b

    @property
    def is_cleared(self) -> bool:
        return self.state in _CLEARING

    def __repr__(self) -> str:
        return f"IsdnCall({self.id} {self.direction} {self.calling}->{self.called} {self.state.value})"


# -- events the port posts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkUp:
    port: BriPort


@dataclass(frozen=True)
class LinkDown:
    port: BriPort


@dataclass(frozen=True)
class IncomingCall:
    """A SETUP arrived: `call.calling` / `call.called` carry the numbers."""

    call: IsdnCall


@dataclass(frozen=True)
class CallProceeding:
    call: IsdnCall


@dataclass(frozen=True)
class CallAlerting:
    call: IsdnCall


@dataclass(frozen=True)
class CallProgress:
    """PROGRESS with in-band information: tones or announcements on the B channel."""

    call: IsdnCall


@dataclass(frozen=True)
class CallConnected:
    call: IsdnCall


@dataclass(frozen=True)
class CallCleared:
    """The far end cleared (DISCONNECT or RELEASE received): `q850` as sent, `cause` mapped."""

    call: IsdnCall
    q850: int
    cause: Cause


IsdnEvent = (LinkUp | LinkDown | IncomingCall | CallProceeding | CallAlerting | CallProgress | CallConnected
             | CallCleared)


class BriPort:
    """A BRI port in TE mode: Q.921/Q.931 through libpri, frames through `send` and `feed`."""

    def __init__(self, name: str, send: Callable[[bytes], None],
                 listener: Callable[[IsdnEvent], None] | None = None, *, ptp: bool = True,
                 layer1: int = libpri.PRI_LAYER_1_ALAW, debug: int = 0) -> None:
        self.name = name
        self.listener = listener
        self.layer1 = layer1  # bearer capability layer 1: A-law in Europe (ETSI EN 300 102)
        self.link_up = False
        self.calls: dict[int, IsdnCall] = {}  # by libpri call handle
        self._closed = False
        self._pri = Pri(Node.CPE, send, bri=True, ptp=ptp, debug=debug, name=name, manual_connect_ack=True)

    # -- frames and time ---------------------------------------------------------------------------
    def feed(self, frame: bytes) -> None:
        """One LAPD frame from the line (a DCHAN payload)."""
        self._dispatch(self._pri.feed(frame))

    def poll(self) -> None:
        """Run the Q.921/Q.931 timers that are due."""
        self._dispatch(self._pri.run_timers())

    def next_timer(self) -> float | None:
        """When `poll()` is next needed (a `time.time()` value), or None."""
        return self._pri.next_timer()

    # -- requests ----------------------------------------------------------------------------------
    def dial(self, called: str, calling: str = "", calling_name: str = "") -> IsdnCall:
        """Send a SETUP for `called`, presenting `calling`; the network picks the B channel."""
        if self._closed or not self.link_up:
            raise BriUnavailable(f"{self.name}: D channel down")
        handle, events = self._pri.setup(called, calling, calling_name, layer1=self.layer1)
        call = IsdnCall(self, handle, "outbound", calling, called, calling_name)
        self.calls[handle] = call
        self._dispatch(events)
        return call

    def _request(self, call: IsdnCall, new: CallState, action: Callable[[int, int], list[PriEvent]]) -> None:
        if call.handle not in self.calls:
            raise IllegalCallTransition(f"{call.id}: no longer on {self.name}")
        call._to(new)
        self._dispatch(action(call.handle, call.channel or 0))

    def proceeding(self, call: IsdnCall) -> None:
        """Inbound: CALL PROCEEDING: the number is complete, we are routing it."""
        self._request(call, CallState.INCOMING_PROCEEDING, self._pri.proceeding)

    def alert(self, call: IsdnCall) -> None:
        """Inbound: ALERTING: the called party is being alerted."""
        self._request(call, CallState.CALL_RECEIVED, self._pri.acknowledge)

    def progress(self, call: IsdnCall) -> None:
        """Inbound: PROGRESS (in-band information available): the caller hears our B channel."""
        # Q.931 allows PROGRESS in U9/U7 without a state change; through the state machine
        # anyway so PROGRESS on a cleared call is an error.
        if call.state not in (CallState.CALL_PRESENT, CallState.INCOMING_PROCEEDING, CallState.CALL_RECEIVED):
            raise IllegalCallTransition(f"{call.id}: PROGRESS in {call.state.value}")
        if call.state == CallState.CALL_PRESENT:
            self._request(call, CallState.INCOMING_PROCEEDING, self._pri.proceeding)
        self._dispatch(self._pri.progress(call.handle, call.channel or 0))

    def answer(self, call: IsdnCall) -> None:
        """Inbound: CONNECT. The call is active once the network's CONNECT ACKNOWLEDGE arrives."""
        self._request(call, CallState.CONNECT_REQUEST, self._pri.answer)

    def hangup(self, call: IsdnCall, cause: Cause | int = NORMAL_CLEARING) -> None:
        """Clear (or reject) the call; `cause` is a SIP-style Cause or a Q.850 value."""
        if call.is_cleared:
            return
        q850 = cause if isinstance(cause, int) else sip_to_q850(cause.code)
        call.q850, call.cause = q850, q850_to_sip(q850)
        try:
            if call.state == CallState.CALL_PRESENT:
                # Rejecting a SETUP we have not answered at all: libpri 1.6 sends RELEASE COMPLETE
                # (Q.931 5.2.5.1) only for causes 1/34/44/82 and silently drops a DISCONNECT for a
                # call it has not yet seen us take, so take it first with CALL PROCEEDING, then clear.
                call._to(CallState.INCOMING_PROCEEDING)
                self._dispatch(self._pri.proceeding(call.handle, call.channel or 0))
            call._to(CallState.DISCONNECT_REQUEST)
            self._dispatch(self._pri.hangup(call.handle, q850))
        except PriError as exc:
            # libpri no longer knows the call (the link reset under it): nothing left to clear.
            log.info("%s: %s", call.id, exc)
            self._forget(call)

    def close(self) -> None:
        """Stop: the port's calls are dropped without signalling (the link is going away)."""
        self._closed = True
        self._pri.close()
        for call in list(self.calls.values()):
            self._forget(call)
        self.link_up = False

    # -- libpri events -----------------------------------------------------------------------------
    def _post(self, event: IsdnEvent) -> None:
        if self.listener is not None:
            self.listener(event)

    def _forget(self, call: IsdnCall) -> None:
        self.calls.pop(call.handle, None)
        if call.state != CallState.NULL:
            call.state = CallState.NULL

    def _dispatch(self, events: list[PriEvent]) -> None:
        for ev in events:
            log.debug("%s: %s", self.name, ev)
            self._on_event(ev)

    def _on_event(self, ev: PriEvent) -> None:
        if isinstance(ev, libpri.DchanUp):
            if not self.link_up:
                self.link_up = True
                self._post(LinkUp(self))
            return
        if isinstance(ev, libpri.DchanDown):
            # Calls survive a short layer-2 outage (T309, Q.931 5.8.9); libpri clears them if not.
            if self.link_up:
                self.link_up = False
                self._post(LinkDown(self))
            return
        if isinstance(ev, libpri.Ring):
            self._on_setup(ev)
            return
        handle = getattr(ev, "call", 0)
        call = self.calls.get(handle) if handle else None
        if call is None:
            if isinstance(ev, libpri.Hangup) and ev.kind == EventType.HANGUP and handle:
                self._clear(handle, ev.cause)  # free libpri's record of a call we never took
            elif not isinstance(ev, libpri.OtherEvent):
                log.debug("%s: %s for no call of ours", self.name, ev)
            return
        if isinstance(ev, libpri.Proceeding):
            call._learn_channel(ev.channel)
            if ev.kind == EventType.PROCEEDING and call.state == CallState.CALL_INITIATED:
                call._to(CallState.OUTGOING_PROCEEDING)
                self._post(CallProceeding(call))
            elif ev.kind == EventType.PROGRESS and not call.is_cleared:
                self._post(CallProgress(call))
        elif isinstance(ev, libpri.Ringing):
            call._learn_channel(ev.channel)
            if call.state in (CallState.CALL_INITIATED, CallState.OUTGOING_PROCEEDING):
                call._to(CallState.CALL_DELIVERED)
                self._post(CallAlerting(call))
        elif isinstance(ev, libpri.Answer):
            call._learn_channel(ev.channel)
            if call.state in (CallState.CALL_INITIATED, CallState.OUTGOING_PROCEEDING, CallState.CALL_DELIVERED):
                # Q.931 5.1.8: on CONNECT the user enters Active and may acknowledge it.
                call._to(CallState.ACTIVE)
                self._dispatch(self._pri.connect_ack(call.handle))
                self._post(CallConnected(call))
        elif isinstance(ev, libpri.ConnectAck):
            # Q.931 5.2.8: the network's CONNECT ACKNOWLEDGE makes our answered call Active.
            if call.state == CallState.CONNECT_REQUEST:
                call._to(CallState.ACTIVE)
        elif isinstance(ev, libpri.Hangup):
            self._on_clearing(call, ev)
        else:
            log.debug("%s: %s on %s ignored", self.name, ev, call.id)

    def _on_setup(self, ev: libpri.Ring) -> None:
        if self._closed:
            return
        call = IsdnCall(self, ev.call, "inbound", ev.calling_number, ev.called_number, ev.calling_name)
        call._learn_channel(ev.channel)
        self.calls[ev.call] = call
        self._post(IncomingCall(call))

    def _on_clearing(self, call: IsdnCall, ev: libpri.Hangup) -> None:
        if ev.kind == EventType.HANGUP_REQ:
            # DISCONNECT received (Q.931 5.3.4): answer with RELEASE, carrying their cause back.
            if call.state == CallState.DISCONNECT_REQUEST:
                return  # clear collision (5.3.5): our DISCONNECT crossed theirs; libpri finishes it
            self._far_end_cleared(call, ev.cause, CallState.DISCONNECT_INDICATION)
            self._clear(call.handle, ev.cause)
            return
        # HANGUP: RELEASE or RELEASE COMPLETE received, libpri waits for us to free the record;
        # HANGUP_ACK: our clearing completed and libpri freed it already.
        if not call.is_cleared:
            self._far_end_cleared(call, ev.cause, CallState.NULL)
        self._forget(call)
        if ev.kind == EventType.HANGUP:
            self._clear(call.handle, ev.cause)

    def _clear(self, handle: int, q850: int) -> None:
        """pri_hangup on libpri's initiative (RELEASE, or freeing the record): a refusal is only logged."""
        try:
            self._dispatch(self._pri.hangup(handle, q850))
        except PriError as exc:
            log.info("%s: %s", self.name, exc)

    def _far_end_cleared(self, call: IsdnCall, q850: int, new: CallState) -> None:
        call.q850, call.cause = q850, q850_to_sip(q850)
        call._to(new)
        self._post(CallCleared(call, q850, call.cause))
