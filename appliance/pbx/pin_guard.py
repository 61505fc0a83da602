"""PIN guard: lock out callers who keep entering wrong PINs, across calls.

A feature code that takes a PIN (*98 voicemail of any mailbox, *61 agent login) used to
allow three tries per call, and a guesser simply called again (issue 12, finding 4: 18 wrong
PINs over 6 calls, all accepted as tries). Like the SIP scanner guard (sip/guard.py), every
failure is counted here, on two keys at once:

* the source: the extension that dialled, or the trunk and caller number a call came with;
* the target: the mailbox or agent whose PIN was tried (so a guesser who changes phones, or a
  carrier caller who changes caller ID, still locks the mailbox).

After `max_failures` within `window` seconds on either key, that key is locked for
`lock_seconds`: while it lasts, even the right PIN is refused (else the lockout would be an
oracle that tells the guesser when it has found the PIN). A lock expires by itself.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger("plateau.pbx")

MAX_TRACKED = 4096


@dataclass(frozen=True)
class PinLockout:
    """One locked source or target ("ext:1001", "trunk:carrier:0612...", "mailbox:1002", "agent:2001")."""

    key: str
    until: float
    failures: int
    reason: str
    locked_at: float


class PinGuard:
    """Counts wrong PINs per key and locks keys that fail too often."""

    def __init__(self, max_failures: int = 5, window: float = 900.0, lock_seconds: float = 900.0,
                 clock: Callable[[], float] = time.time,
                 on_lock: Callable[[PinLockout], None] | None = None) -> None:
        if max_failures < 1 or window <= 0 or lock_seconds <= 0:
            raise ValueError("max_failures must be >= 1, window and lock_seconds > 0")
        self.max_failures = max_failures
        self.window = window
        self.lock_seconds = lock_seconds
        self.on_lock = on_lock
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked: dict[str, PinLockout] = {}
        self.refused_while_locked = 0

    def locked(self, keys: Iterable[str]) -> PinLockout | None:
        """The lockout that applies to any of `keys`, if one does (expired ones are lifted)."""
        now = self._clock()
        for key in keys:
            entry = self._locked.get(key)
            if entry is not None and entry.until <= now:
                del self._locked[key]
                entry = None
            if entry is not None:
                return entry
        return None

    def refuse(self, entry: PinLockout) -> None:
        """A try was refused because `entry` is locked (the PIN was not even checked)."""
        self.refused_while_locked += 1
        log.warning("PIN guard: %s is locked out until %s; try refused", entry.key, time.ctime(entry.until))

    def failed(self, keys: Iterable[str], reason: str) -> list[PinLockout]:
        """Count one wrong PIN on every key; returns the lockouts this failure started."""
        now = self._clock()
        started: list[PinLockout] = []
        for key in keys:
            if self.locked([key]) is not None:
                continue
            q = self._failures.get(key)
            if q is None:
                if len(self._failures) >= MAX_TRACKED:
                    self._prune(now)
                q = self._failures[key] = deque()
            q.append(now)
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) < self.max_failures:
                continue
            entry = PinLockout(key, now + self.lock_seconds, len(q), reason, now)
            self._locked[key] = entry
            del self._failures[key]
            started.append(entry)
            # An alert, not a debug line: someone is guessing PINs (the journal's WARNING level).
            log.warning("PIN guard: locking %s for %.0f s after %d wrong PINs (%s)",
                        key, self.lock_seconds, entry.failures, reason)
            if self.on_lock is not None:
                self.on_lock(entry)
        return started

    def succeeded(self, keys: Iterable[str]) -> None:
        """The right PIN, outside any lockout: the keys' failure counts start again."""
        for key in keys:
            self._failures.pop(key, None)

    def lockouts(self) -> list[PinLockout]:
        """Current lockouts, oldest first."""
        now = self._clock()
        for key in [k for k, e in self._locked.items() if e.until <= now]:
            del self._locked[key]
        return sorted(self._locked.values(), key=lambda e: e.locked_at)

    def unlock(self, key: str) -> bool:
        """Lift a lockout by hand; True if there was one."""
        self._failures.pop(key, None)
        return self._locked.pop(key, None) is not None

    def status(self) -> dict[str, object]:
        return {"locked": [{"key": e.key, "until": e.until, "failures": e.failures, "reason": e.reason}
                           for e in self.lockouts()],
                "refused_while_locked": self.refused_while_locked}

    def _prune(self, now: float) -> None:
        for key in [k for k, q in self._failures.items() if not q or q[-1] <= now - self.window]:
            del self._failures[key]
        if len(self._failures) >= MAX_TRACKED:
            for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[: MAX_TRACKED // 2]:
                del self._failures[key]
