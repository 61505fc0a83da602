"""UDP port pairs for legs: an even RTP port and RTCP on the next port (RFC 3550 section 11)."""

from __future__ import annotations

import socket


class PortError(RuntimeError):
    """No free port pair in the configured range."""


class PortPool:
    """Allocates bound, non-blocking (rtp, rtcp) socket pairs from an even-aligned port range."""

    def __init__(self, bind_ip: str, port_min: int, port_max: int) -> None:
        if port_min < 1 or port_max > 65535 or port_max - port_min < 1:
            raise ValueError(f"bad RTP port range {port_min}-{port_max}")
        self.bind_ip = bind_ip
        first = port_min + (port_min % 2)
        self._free = list(range(first, port_max, 2))  # port+1 <= port_max
        self._free.reverse()
        self._used: set[int] = set()

    def allocate(self) -> tuple[int, socket.socket, socket.socket]:
        """Bind the next free pair; ports taken by other processes are skipped."""
        tried: list[int] = []
        try:
            while self._free:
                port = self._free.pop()
                try:
                    rtp = self._bind(port)
                except OSError:
                    tried.append(port)
                    continue
                try:
                    rtcp = self._bind(port + 1)
                except OSError:
                    rtp.close()
                    tried.append(port)
                    continue
                self._used.add(port)
                return port, rtp, rtcp
            raise PortError("no free RTP port pair in range")
        finally:
            # ports busy elsewhere go to the back of the queue, to be retried later
            self._free[:0] = reversed(tried)

    def claim(self, port: int) -> tuple[socket.socket, socket.socket]:
        """Bind this exact pair (re-creating a leg on its port); PortError if it is taken."""
        if port in self._used:
            raise PortError(f"RTP port {port} is in use")
        try:
            rtp = self._bind(port)
        except OSError as exc:
            raise PortError(f"RTP port {port}: {exc}") from exc
        try:
            rtcp = self._bind(port + 1)
        except OSError as exc:
            rtp.close()
            raise PortError(f"RTCP port {port + 1}: {exc}") from exc
        if port in self._free:
            self._free.remove(port)
        self._used.add(port)
        return rtp, rtcp

    def release(self, port: int) -> None:
        """Return a pair to the pool (the caller closes the sockets)."""
        if port in self._used:
            self._used.discard(port)
            self._free.insert(0, port)

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
            sock.bind((self.bind_ip, port))
        except OSError:
            sock.close()
            raise
        return sock
