"""Liveness of the engine's parts: the typed record every supervised thread or process reports.

The systemd watchdog is pinged only when every part is alive and has made progress recently
(a wedged part must get the engine restarted, not just a dead one). Each subsystem (SIP
transports, the media process, line boards, headsets, API threads) reports one `PartHealth`
per thread or child process it owns; the engine's supervisor gathers them for the watchdog,
`/v1/status` and the health page.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class PartHealth:
    """One supervised thread or process, as its owner sees it now."""

    name: str  # "sip-udp-recv", "media", "headset:1005", "hw-link-rx /dev/ttyUSB0"
    alive: bool
    last_progress: float  # time.monotonic() of its last unit of work or idle heartbeat
    deaths: int = 0
    restarts: int = 0
    last_error: str | None = None
    # A part that cannot be restarted in place: its death makes the engine exit non-zero so
    # systemd restarts the whole engine.
    fatal: bool = False


class Heartbeat:
    """A progress stamp a worker thread updates each time round its loop (cheap: one float store)."""

    __slots__ = ("_last", "deaths", "restarts", "last_error", "fatal", "_lock")

    def __init__(self) -> None:
        self._last = time.monotonic()
        self.deaths = 0
        self.restarts = 0
        self.last_error: str | None = None
        # set when the worker gave up restarting: its death must restart the whole engine
        self.fatal = False
        self._lock = threading.Lock()

    def beat(self) -> None:
        self._last = time.monotonic()

    @property
    def last(self) -> float:
        return self._last

    def died(self, error: BaseException | str) -> None:
        with self._lock:
            self.deaths += 1
            self.last_error = error if isinstance(error, str) else f"{type(error).__name__}: {error}"

    def restarted(self) -> None:
        with self._lock:
            self.restarts += 1
        self.beat()

    def health(self, name: str, alive: bool, fatal: bool = False) -> PartHealth:
        return PartHealth(name, alive, self._last, self.deaths, self.restarts, self.last_error, fatal)
