"""Early overload shedding: refuse new INVITEs in the transport thread, before sippy parses them.

Beyond its signalling capacity the engine's single ED2 loop falls behind; every message then
waits longer, clients retransmit (RFC 3261 §17.1.1.2: INVITE after 500 ms), which adds load,
and goodput collapses: measured at 2x capacity, a third of the calls completed (issue 12,
finding 9).  The cure is to refuse new work while it is cheap to refuse and to keep serving
the work already accepted:

* the loop reports how late it handles each message (``handled``) and the transports count
  what they post (``posted``), so ``overloaded()`` is known without a lock;
* while overloaded, the transport's receive thread answers a *new* INVITE (no To tag,
  RFC 3261 §12.2) that carries no credentials with a stateless ``503 Service Unavailable``
  and ``Retry-After`` (§21.5.4), from the raw bytes, never parsing it;
* everything else flows: in-dialog requests, ACK, BYE, CANCEL, responses, and the second
  INVITE of a call whose first one was challenged (it carries Proxy-Authorization, and the
  call has already cost us a challenge).  ``SipRouter`` keeps a later, parsed backstop.
"""

from __future__ import annotations

import itertools
import random
import re
import secrets
import time
from collections.abc import Callable

from appliance.sip.errors import build_error_response
from appliance.sip.malformed import EdgeCounters

__all__ = ["GATE_KEY", "SHED_TAG", "OverloadGate", "is_new_unauthenticated_invite"]

#: sippy's ``global_config`` key of the engine's gate (sippy builds the UDP servers).
GATE_KEY = "_plateau_overload"

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TO_TAG = re.compile(rb"\n(?:to|t)[ \t]*:[^\r\n]*;[ \t]*tag[ \t]*=", re.IGNORECASE)
#: To tag of our early 503s: an ACK or BYE for one names it, and is settled in the
#: transport thread too (there is no transaction or dialog behind a stateless 503).
SHED_TAG = "pshed"
_SHED_TO = re.compile(rb"\n(?:to|t)[ \t]*:[^\r\n]*;[ \t]*tag[ \t]*=[ \t]*" + SHED_TAG.encode(), re.IGNORECASE)
_CREDENTIALS = re.compile(rb"\n(?:proxy-)?authorization[ \t]*:", re.IGNORECASE)


def is_new_unauthenticated_invite(data: bytes) -> bool:
    """True for an INVITE outside any dialog (no To tag) that carries no credentials."""
    if not data.startswith(b"INVITE "):
        return False
    m = _HEAD_END.search(data)
    head = data[: m.start()] if m else data
    return _TO_TAG.search(head) is None and _CREDENTIALS.search(head) is None


class OverloadGate:
    """Decides, in a transport thread, whether a new INVITE is refused with 503 at once.

    The signal is the loop's queueing delay (how late it starts on a message after its
    receipt), smoothed over the last few dozen messages.  Below ``low`` nothing is shed;
    between ``low`` and ``high`` a growing share of new INVITEs is (as RED does for packet
    queues), so the admitted load settles near capacity instead of oscillating between
    "all" and "none"; above ``high`` every new INVITE is shed.  ``high`` stays well under
    RFC 3261's T1 (500 ms), the delay at which clients start retransmitting.
    """

    def __init__(self, counters: EdgeCounters, low: float = 0.2, high: float = 0.45,
                 max_pending: int = 500, retry_after: tuple[int, int] = (2, 5),
                 clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random) -> None:
        if not 0 <= low < high:
            raise ValueError("need 0 <= low < high")
        self.low = low
        self.high = high
        #: Shed every new INVITE while more than this many messages wait for the loop
        #: (the loop may be stuck on one long job and report no delay meanwhile).
        self.max_pending = max_pending
        self.retry_after = retry_after
        self.counters = counters
        self._clock = clock
        self._rng = rng
        # Each counter is advanced by one side only, so no lock is needed: itertools.count
        # is atomic under the GIL, and the readers only need an approximate difference.
        self._posted_seq = itertools.count(1)
        self._posted = 0
        self._handled = 0
        self._delay = 0.0  # smoothed queueing delay, seconds
        self._shed_tag_seen = False  # no follow-up to look for before the first early 503
        self._delay_at = 0.0

    # -- reported by the transports and the loop ----------------------------------------------
    def posted(self) -> None:
        """A transport thread hands one message to the loop."""
        self._posted = next(self._posted_seq)

    def handled(self, received_at: float) -> None:
        """The loop starts on a message received at ``received_at`` (monotonic seconds)."""
        self._handled += 1
        now = self._clock()
        self._delay += 0.05 * (max(0.0, now - received_at) - self._delay)
        self._delay_at = now

    # -- decided in the transport threads -------------------------------------------------------
    def pending(self) -> int:
        return max(0, self._posted - self._handled)

    def delay(self) -> float:
        """The smoothed loop delay; a value measured over a second ago counts as 0 (no traffic)."""
        return self._delay if self._clock() - self._delay_at < 1.0 else 0.0

    def shed_fraction(self) -> float:
        """Share of new INVITEs to refuse now, 0..1."""
        if self.pending() > self.max_pending:
            return 1.0
        d = self.delay()
        if d <= self.low:
            return 0.0
        return min(1.0, (d - self.low) / (self.high - self.low))

    def overloaded(self) -> bool:
        return self.shed_fraction() > 0.0

    def refuse(self, data: bytes, source: tuple[str, int], send: Callable[[bytes, tuple], None]) -> bool:
        """Answer ``data`` 503 and return True if it is a new INVITE picked for shedding.

        Also True (settled here) for a request in the "dialog" of one of our early 503s:
        the ACK of the 503 (RFC 3261 §17.1.1.3) is dropped, anything else (a client's BYE
        after aborting) gets a stateless 481; neither is worth the loop's time.
        """
        if self._shed_tag_seen and b"tag=" + SHED_TAG.encode() in data[:4096] and not data.startswith(b"SIP/2.0 "):
            m = _HEAD_END.search(data)
            if _SHED_TO.search(data[: m.start()] if m else data):
                if not data.startswith(b"ACK "):
                    reply = build_error_response(data, 481, "Call/Transaction Does Not Exist", source)
                    if reply is not None:
                        send(reply, source)
                self.counters.add("shed_followups")
                return True
        if not data.startswith(b"INVITE "):
            return False
        share = self.shed_fraction()
        if share <= 0.0 or (share < 1.0 and self._rng() >= share):
            return False
        if not is_new_unauthenticated_invite(data):
            return False
        retry = random.randint(*self.retry_after)  # spread the retries (RFC 3261 §21.5.4)
        reply = build_error_response(data, 503, "Service Unavailable (overloaded)", source,
                                     extra=(f"Retry-After: {retry}",),
                                     to_tag=SHED_TAG + secrets.token_hex(6))
        self._shed_tag_seen = True
        self.counters.add("invites_shed_early")
        if reply is not None:
            send(reply, source)
        return True

    def status(self) -> dict[str, float | int]:
        """For /v1/status: the loop delay (ms), messages waiting, share shed now."""
        return {"loop_delay_ms": round(self.delay() * 1000, 1), "pending": self.pending(),
                "shedding": round(self.shed_fraction(), 2)}
