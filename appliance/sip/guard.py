"""SIP scanner guard: block source addresses that keep failing authentication.

Scanners (sipvicious, friendly-scanner, ...) walk extension numbers and passwords
with REGISTER/INVITE. Every failed digest check is reported here; after
``max_failures`` within ``window`` seconds the address is blocked for
``block_seconds`` and the transports drop its traffic without an answer.

Thread-safe: the registrar calls it from the ED2 loop, transports may ask
``is_blocked`` from their reader threads to drop traffic early.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["BlockedEntry", "ScannerGuard"]


@dataclass(frozen=True)
class BlockedEntry:
    """One blocked source address (a record the store may persist).

    Field order follows the store's ``BlockedAddress`` (address, until, reason, failures),
    which the engine converts positionally in both directions.
    """

    address: str
    until: float
    reason: str
    failures: int
    blocked_at: float = 0.0

    @property
    def ip(self) -> str:
        """The blocked address (older name)."""
        return self.address


class ScannerGuard:
    """Count authentication failures per source IP and block repeat offenders."""

    #: Bound on the number of addresses with pending failure counts, so a
    #: spoofed-source flood cannot grow memory without limit.
    MAX_TRACKED = 65536

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 60.0,
        block_seconds: float = 900.0,
        on_block: Callable[[BlockedEntry], None] | None = None,
        clock: Callable[[], float] = time.time,
        allowlist: Iterable[str] = (),
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be >= 1")
        if window <= 0 or block_seconds <= 0:
            raise ValueError("window and block_seconds must be > 0")
        self.max_failures = max_failures
        self.window = window
        self.block_seconds = block_seconds
        self.on_block = on_block
        self._clock = clock
        self._allow = [ipaddress.ip_network(n, strict=False) for n in allowlist]
        self._failures: dict[str, deque[float]] = {}
        self._blocked: dict[str, BlockedEntry] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _norm(ip: str) -> str:
        # sippy writes IPv6 sources as "[::1]"; key on the bare address.
        return ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip

    def is_allowed(self, ip: str) -> bool:
        """True when ``ip`` is on the allowlist (never counted nor blocked)."""
        try:
            addr = ipaddress.ip_address(self._norm(ip))
        except ValueError:
            return False
        return any(addr in net for net in self._allow)

    def record_failure(self, ip: str, reason: str) -> BlockedEntry | None:
        """Count one failure from ``ip``; return the new block if this one caused it."""
        ip = self._norm(ip)
        if self.is_allowed(ip):
            return None
        now = self._clock()
        with self._lock:
            if self._active(ip, now) is not None:
                return None
            q = self._failures.get(ip)
            if q is None:
                if len(self._failures) >= self.MAX_TRACKED:
                    self._prune(now)
                q = self._failures[ip] = deque()
            q.append(now)
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) < self.max_failures:
                return None
            entry = BlockedEntry(ip, now + self.block_seconds, reason, len(q), blocked_at=now)
            self._blocked[ip] = entry
            del self._failures[ip]
        log.warning(
            "SIP guard: blocking %s for %.0f s after %d failures (%s)",
            ip, self.block_seconds, entry.failures, reason,
        )
        if self.on_block is not None:
            self.on_block(entry)
        return entry

    def record_success(self, ip: str) -> None:
        """A successful authentication clears the failure count of ``ip``."""
        with self._lock:
            self._failures.pop(self._norm(ip), None)

    def is_blocked(self, ip: str) -> bool:
        """True while ``ip`` is blocked; an expired block is lifted here."""
        ip = self._norm(ip)
        with self._lock:
            return self._active(ip, self._clock()) is not None

    def blocked(self) -> list[BlockedEntry]:
        """Current blocks, oldest first."""
        now = self._clock()
        with self._lock:
            for ip in [ip for ip, e in self._blocked.items() if e.until <= now]:
                del self._blocked[ip]
            return sorted(self._blocked.values(), key=lambda e: e.blocked_at)

    def unblock(self, ip: str) -> bool:
        """Lift a block by hand; return True if there was one."""
        ip = self._norm(ip)
        with self._lock:
            self._failures.pop(ip, None)
            return self._blocked.pop(ip, None) is not None

    def restore(self, entries: Iterable[BlockedEntry]) -> None:
        """Reload persisted blocks after a restart (expired ones are ignored)."""
        now = self._clock()
        with self._lock:
            for e in entries:
                if e.until > now and not self.is_allowed(e.ip):
                    self._blocked[self._norm(e.ip)] = e

    def _active(self, ip: str, now: float) -> BlockedEntry | None:
        entry = self._blocked.get(ip)
        if entry is not None and entry.until <= now:
            del self._blocked[ip]
            return None
        return entry

    def _prune(self, now: float) -> None:
        stale = [ip for ip, q in self._failures.items() if not q or q[-1] <= now - self.window]
        for ip in stale:
            del self._failures[ip]
        if len(self._failures) >= self.MAX_TRACKED:
            # Still full of live counters: drop the oldest half rather than grow.
            oldest = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for ip in oldest[: len(oldest) // 2]:
                del self._failures[ip]
