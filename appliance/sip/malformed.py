"""Counting and rate-limited logging of bad SIP input at the transport boundary.

A scanner or a broken phone can send thousands of malformed messages a second; a log line
(let alone sippy's multi-line traceback) for each would fill the journal and hide the one
line that matters.  So every drop, 400 and send failure is counted (the counters go to
``/v1/status``), and at most one line per source address per minute is logged, saying how
many more were suppressed since the last line (issue 12, finding 8).

Thread-safe: the UDP receiver and sender threads, the TCP thread and the ED2 loop all
report here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

__all__ = ["GLOBAL_KEY", "EdgeCounters", "MalformedLog"]

#: sippy's ``global_config`` key of the engine's ``MalformedLog`` (sippy builds the UDP
#: servers itself, so they and the router find it there).
GLOBAL_KEY = "_plateau_malformed"

log = logging.getLogger("plateau.sip")


class EdgeCounters:
    """Named event counters (``dropped``, ``answered_4xx``, ``send_failed``, ...)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]


class MalformedLog:
    """At most one log line per source per ``interval`` seconds; the rest are counted."""

    #: Bound on remembered sources, so a spoofed-source flood cannot grow memory.
    MAX_SOURCES = 4096

    def __init__(self, counters: EdgeCounters, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log) -> None:
        self.counters = counters
        self.interval = interval
        self._clock = clock
        self._log = logger
        self._lock = threading.Lock()
        # source -> (time of the last line, messages suppressed since)
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def report(self, source: tuple | str, counter: str, what: str, level: int = logging.INFO) -> bool:
        """Count one bad message from ``source``; log ``what`` unless this source was logged lately.

        Returns True if a line was written.
        """
        self.counters.add(counter)
        host = source if isinstance(source, str) else str(source[0])
        now = self._clock()
        with self._lock:
            last = self._last.get(host)
            if last is not None and now - last[0] < self.interval:
                self._last[host] = (last[0], last[1] + 1)
                return False
            suppressed = last[1] if last is not None else 0
            self._last[host] = (now, 0)
            self._last.move_to_end(host)
            while len(self._last) > self.MAX_SOURCES:
                self._last.popitem(last=False)
        where = f"{source[0]}:{source[1]}" if not isinstance(source, str) and len(source) > 1 else host
        more = f" (+{suppressed} more from {host} in the last minute)" if suppressed else ""
        self._log.log(level, "SIP from %s: %s%s", where, what.replace("\n", " ")[:200], more)
        return True
