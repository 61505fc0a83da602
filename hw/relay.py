"""Line-board audio to and from the media engine as RTP/PCMU over loopback UDP (RFC 3550, RFC 3551).

Each hw channel owns a media-engine leg like any SIP channel; the relay is the "phone" on the
other end of that leg: the board's 20 ms µ-law AUDIO frames go out as RTP packets (PT 0,
160 samples each) to the leg's port, and what the leg sends back becomes AUDIO frames. So
bridges, recording, IVR and supervision work unchanged on analog calls.

One thread waits on every relay socket; board -> leg is sent on the caller's thread (the link
reader), never through the call-control loop.
"""
from __future__ import annotations

import logging
import random
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from appliance.media import rtp
from appliance.system.liveness import Heartbeat, PartHealth

log = logging.getLogger("plateau.hw")
PCMU_PT = 0
SAMPLES_PER_FRAME = 160


@dataclass
class _Endpoint:
    sock: socket.socket
    leg_addr: tuple[str, int]
    to_board: Callable[[bytes], None]
    seq: int
    timestamp: int
    ssrc: int
    marker: bool = True
    packets_out: int = 0
    packets_in: int = 0
    dropped_in: int = 0


class AudioRelay:
    """RTP endpoints, one per hw channel's media leg, keyed by the leg id."""

    def __init__(self, bind_host: str = "127.0.0.1") -> None:
        self.bind_host = bind_host
        self._sel = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Endpoint] = {}
        self._stop = threading.Event()
        self.beat = Heartbeat()
        self._thread = threading.Thread(target=self._supervised, name="hw-audio-relay", daemon=True)
        self._thread.start()

    def open(self, key: str, leg_addr: tuple[str, int], to_board: Callable[[bytes], None]) -> int:
        """Start relaying for `key` towards the leg at `leg_addr`; returns our local RTP port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.bind_host, 0))
        sock.setblocking(False)
        ep = _Endpoint(sock, leg_addr, to_board, random.getrandbits(16), random.getrandbits(32),
                       random.getrandbits(32))
        with self._lock:
            old = self._endpoints.pop(key, None)
            self._endpoints[key] = ep
            self._sel.register(sock, selectors.EVENT_READ, key)
        if old is not None:
            self._drop(old)
        return int(sock.getsockname()[1])

    def close(self, key: str) -> None:
        """Stop relaying for `key`; idempotent."""
        with self._lock:
            ep = self._endpoints.pop(key, None)
        if ep is not None:
            self._drop(ep)

    def _drop(self, ep: _Endpoint) -> None:
        try:
            self._sel.unregister(ep.sock)
        except (KeyError, ValueError):
            pass  # already gone
        ep.sock.close()

    def from_board(self, key: str, ulaw: bytes) -> None:
        """One 20 ms frame from the board: send it to the leg as an RTP packet."""
        ep = self._endpoints.get(key)
        if ep is None:
            return
        pkt = rtp.build(PCMU_PT, ep.seq, ep.timestamp, ep.ssrc, ulaw, marker=ep.marker)
        ep.marker = False
        ep.seq = (ep.seq + 1) & 0xFFFF
        ep.timestamp = (ep.timestamp + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        try:
            ep.sock.sendto(pkt, ep.leg_addr)
            ep.packets_out += 1
        except OSError as exc:  # closed under us by close(), or the leg port went away
            log.debug("relay %s: send failed: %s", key, exc)

    def stats(self, key: str) -> dict[str, int] | None:
        ep = self._endpoints.get(key)
        if ep is None:
            return None
        return {"packets_out": ep.packets_out, "packets_in": ep.packets_in, "dropped_in": ep.dropped_in}

    def stop(self) -> None:
        """Close every endpoint and the relay thread."""
        self._stop.set()
        self._thread.join(2.0)
        with self._lock:
            eps = list(self._endpoints.values())
            self._endpoints.clear()
        for ep in eps:
            self._drop(ep)
        self._sel.close()

    def health(self) -> PartHealth:
        return self.beat.health("hw-audio-relay", self._thread.is_alive() or self._stop.is_set())

    def _supervised(self) -> None:
        """Run the loop until stop(); a death is logged and counted, and the loop runs again (the
        endpoints and their sockets live on, so calls keep their audio)."""
        while not self._stop.is_set():
            try:
                self._loop()
                return
            except Exception as exc:  # e.g. a board callback's bug: the other calls' audio must go on
                self.beat.died(exc)
                log.exception("hw audio relay thread died; restarting it")
            if self._stop.wait(0.05):
                return
            self.beat.restarted()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.beat.beat()
            try:
                events = self._sel.select(0.2)
            except (OSError, ValueError):
                continue  # a socket closed between select calls
            for sel_key, _mask in events:
                key = sel_key.data
                ep = self._endpoints.get(key)
                if ep is None:
                    continue
                self._receive(ep)

    @staticmethod
    def _receive(ep: _Endpoint) -> None:
        while True:
            try:
                data, _addr = ep.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # closed meanwhile
            try:
                pkt = rtp.parse(data)
            except rtp.RtpError:
                ep.dropped_in += 1
                continue
            if pkt.payload_type != PCMU_PT or len(pkt.payload) != SAMPLES_PER_FRAME:
                # The leg is configured PCMU with 20 ms packets and no telephone-event PT.
                ep.dropped_in += 1
                continue
            ep.packets_in += 1
            ep.to_board(pkt.payload)
