"""The engine's supervisor: every thread and child process reports a `PartHealth`, and the
systemd watchdog is pinged only while every part is alive and making progress.

Two halves:

- `run_supervised` is the loop wrapper of a worker thread (SIP transports, the control API,
  the media events reader): a death (an exception out of its body) is logged once with its
  traceback, counted on the thread's `Heartbeat`, and the body is started again on the same
  socket. A thread that keeps dying (more than `THREAD_RESTART_BUDGET` deaths in a window)
  gives up and is reported *fatal*: the engine then exits non-zero so systemd restarts it
  (registrations and agent states come back from the database).
- `Supervisor` gathers the parts from their owners (plain callables, so a subsystem that is
  not there yet, or is optional like the line boards, costs nothing), runs its own thread that
  decides each watchdog ping, and tells the engine when a fatal part is dead.

Why a thread of its own rather than a timer in the SIP loop: a wedged SIP loop must stop the
pings too, so the SIP loop is itself a part (it beats from a timer) and the judge runs beside it.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from appliance.system import systemd
from appliance.system.liveness import Heartbeat, PartHealth

log = logging.getLogger("plateau.supervisor")

# A thread that dies more often than this is dying as soon as it starts: restarting it does
# not help, so it is fatal. The bound is high on purpose: a packet that kills a transport
# thread costs one restart, and an attacker repeating it must not get the engine restarted
# (dropping every call) before the crash is fixed.
THREAD_RESTART_BUDGET = 100
THREAD_RESTART_WINDOW_S = 10.0
# A child process costs about a second of silence per restart: five in a minute is a crash
# loop (a call or a packet that kills it each time), cured only by restarting the engine.
PROCESS_RESTART_BUDGET = 5
PROCESS_RESTART_WINDOW_S = 60.0
# A part that has not beaten for this long is wedged. Idle workers beat from a 1 s select or
# queue timeout, so 10 s leaves room for a loaded 2-core box without hiding a real hang.
DEFAULT_STALE_S = 10.0

PartSource = Callable[[], Iterable[PartHealth]]


def run_supervised(name: str, beat: Heartbeat, body: Callable[[], None],
                   should_stop: Callable[[], bool] = lambda: False) -> None:
    """Run ``body`` until it returns; restart it after each death, within the restart budget.

    ``body`` is a worker's loop (it beats ``beat`` each time round). When it raises, the death
    is logged with its cause, counted, and the loop starts again on the same sockets; the
    caller's object keeps its state, so the thread's data (queues, connections) survives.
    """
    deaths: deque[float] = deque()
    seen: set[tuple[str, str]] = set()  # (exception type, where): the traceback is logged once
    while True:
        try:
            body()
            return
        except Exception as exc:  # noqa: BLE001 -- a worker's death, whatever its cause, is what we supervise
            if should_stop():
                return
            beat.died(exc)
            now = time.monotonic()
            deaths.append(now)
            while deaths and now - deaths[0] > THREAD_RESTART_WINDOW_S:
                deaths.popleft()
            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
            if (type(exc).__name__, where) not in seen:
                seen.add((type(exc).__name__, where))
                log.error("thread %s died (death %d): %s\n%s", name, beat.deaths, beat.last_error,
                          traceback.format_exc().rstrip())
            else:  # the same death again: one line, not the journal flooded with tracebacks
                log.error("thread %s died again (death %d): %s at %s", name, beat.deaths,
                          beat.last_error, where)
            if len(deaths) > THREAD_RESTART_BUDGET:
                log.critical("thread %s died %d times in %.0f s: giving up, the engine must restart",
                             name, len(deaths), THREAD_RESTART_WINDOW_S)
                beat.fatal = True
                return
            beat.restarted()
            log.warning("thread %s restarted (restart %d)", name, beat.restarts)


@dataclass(frozen=True)
class Verdict:
    """One judgement of the whole engine: ping the watchdog or not, and why not."""

    healthy: bool
    reason: str
    fatal: bool  # a part that cannot be restarted is dead: the engine must exit non-zero


def judge(parts: Iterable[PartHealth], now: float, stale_s: float = DEFAULT_STALE_S) -> Verdict:
    """Healthy when every part is alive and made progress within ``stale_s``."""
    for part in parts:
        if not part.alive:
            return Verdict(False, f"{part.name} is dead ({part.last_error or 'no cause recorded'})",
                           part.fatal)
        if now - part.last_progress > stale_s:
            return Verdict(False, f"{part.name} is wedged (no progress for {now - part.last_progress:.1f} s)",
                           False)
    return Verdict(True, "", False)


class Supervisor:
    """Gathers every part's health; pings the watchdog only on a healthy verdict."""

    def __init__(self, stale_s: float = DEFAULT_STALE_S, period_s: float = 1.0,
                 on_fatal: Callable[[str], None] | None = None,
                 ping: Callable[[], object] = systemd.notify_watchdog) -> None:
        self.stale_s = stale_s
        self.period_s = period_s
        self.on_fatal = on_fatal
        self._ping = ping
        self._sources: list[tuple[str, PartSource]] = []
        self._probes: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal_reported = False
        self.pings = 0
        self.withheld = 0
        self.last_verdict = Verdict(True, "", False)
        self.beat = Heartbeat()  # the supervisor's own loop, shown beside the others

    def add(self, name: str, source: PartSource) -> None:
        """Register an owner of parts (called for every judgement; must be cheap and thread-safe)."""
        self._sources.append((name, source))

    def add_probe(self, probe: Callable[[], None]) -> None:
        """A check run before each judgement from the supervisor's thread (e.g. a bounded media ping)."""
        self._probes.append(probe)

    def parts(self) -> list[PartHealth]:
        out: list[PartHealth] = []
        for name, source in self._sources:
            try:
                out.extend(source())
            except Exception as exc:  # noqa: BLE001 -- a broken reporter is a dead part, not a dead supervisor
                out.append(PartHealth(name, False, 0.0, 1, 0, f"health report failed: {exc!r}"))
        return out

    def status(self) -> dict[str, object]:
        """The supervision section of /v1/status."""
        parts = self.parts()
        verdict = judge(parts, time.monotonic(), self.stale_s)
        now = time.monotonic()
        return {
            "healthy": verdict.healthy,
            "reason": verdict.reason,
            "watchdog_pings": self.pings,
            "watchdog_withheld": self.withheld,
            "deaths": sum(p.deaths for p in parts),
            "restarts": sum(p.restarts for p in parts),
            "parts": [dict(asdict(p), last_progress_age=round(now - p.last_progress, 2)) for p in parts],
        }

    def check(self) -> Verdict:
        """Run the probes, judge, and ping the watchdog if every part is well."""
        for probe in self._probes:
            try:
                probe()
            except Exception:  # noqa: BLE001 -- a probe's failure shows in its part's health
                log.exception("supervision probe failed")
        verdict = judge(self.parts(), time.monotonic(), self.stale_s)
        if verdict.healthy:
            self._ping()
            self.pings += 1
        else:
            self.withheld += 1
            if verdict.reason != self.last_verdict.reason:
                log.error("watchdog pings withheld: %s", verdict.reason)
        if verdict.fatal and not self._fatal_reported and self.on_fatal is not None:
            self._fatal_reported = True
            log.critical("a part that cannot restart is dead: %s", verdict.reason)
            self.on_fatal(verdict.reason)
        self.last_verdict = verdict
        self.beat.beat()
        return verdict

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None


def thread_health(name: str, thread: threading.Thread | None, beat: Heartbeat) -> PartHealth:
    """A supervised thread's record: alive while its thread runs."""
    alive = thread is not None and thread.is_alive()
    return beat.health(name, alive, fatal=beat.fatal)
