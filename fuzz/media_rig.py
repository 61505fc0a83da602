"""An in-process media engine with two bridged legs and an in-memory wire, for the RTP targets.

The engine is the one the media process runs (appliance.media.engine); the socket layer is
replaced by lists that record what would be sent, so a datagram goes the same way as from the
network: ``rtp_received`` / ``rtcp_received``, then the 20 ms tick.
"""

from __future__ import annotations

from typing import Any

from appliance.media.engine import MediaEngine

PEER = ("192.0.2.10", 4000)
TICK_EVERY = 16  # inputs between ticks: a tick decodes and mixes, the costly part


class MediaRig:
    def __init__(self) -> None:
        self.now = 100.0
        self.events: list[Any] = []
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.engine = MediaEngine(self.events.append, rtp_timeout_s=5.0, clock=lambda: self.now)
        for leg_id, remote in (("caller", PEER), ("callee", ("192.0.2.20", 5000))):
            self.engine.add_leg(leg_id, 0, self._send, self._send)
            self.engine.configure_leg(leg_id, remote, "PCMU", 0, 101)
        self.engine.bridge("bridge", ["caller", "callee"])
        self.leg = self.engine.legs["caller"]
        self._inputs = 0

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(self.sent) < 64:
            self.sent.append((data, addr))

    def rtp(self, data: bytes) -> None:
        self.engine.rtp_received(self.leg, data, PEER, self.now)
        self._after()

    def rtcp(self, data: bytes) -> None:
        self.engine.rtcp_received(self.leg, data, (PEER[0], PEER[1] + 1), self.now)
        self._after()

    def _after(self) -> None:
        self._inputs += 1
        self.now += 0.001
        if self._inputs % TICK_EVERY == 0:
            self.now += 0.02
            self.engine.tick(self.now)
            self.sent.clear()
            self.events.clear()
