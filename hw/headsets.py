"""The engine's USB headsets: one `hw.headset_service` process per headset in data/headsets.yaml.

pjsua2 allows one Endpoint per process, so each headset (a pjsua2 softphone registered as an
extension, hw/headset.py) runs in its own child process and talks to the engine over its
stdin/stdout (the protocol is in hw/headset_service.py). `HeadsetSupervisor` starts them,
restarts one that exits after `restart_delay` (doubling, up to `max_restart_delay`, while it
keeps failing to start: a headset unplugged at boot is retried until it is back), stops them
at shutdown, logs their events and keeps their status. A headset whose REGISTER is refused
(401/403: a wrong password in the file) is not retried: each try costs the engine's scanner
guard several failures, and ten in a minute block the loopback address for every headset.

data/headsets.yaml is a list:

    - extension: "1005"
      password: "..."
      input_device: "Jabra EVOLVE 20"     # PyAudio device name, or a part only it has
      output_device: ""                    # optional: empty means input_device
      rate: 8000                           # optional: 8000 (G.711) or 16000 (G.722)
      codecs: [PCMU, PCMA]                 # optional
      sip_port: 0                          # optional: a fixed port keeps the Contact across restarts
      hid: /dev/hidraw2                    # optional: the hook button (hw/headset_hid.py); "auto" finds
                                           # the hidraw node on the same USB device as input_device

Threads: one supervising thread per headset owns its process (spawn, read stdout, wait,
back off, respawn); commands may come from any thread (the control API's) and wait for their
reply on a Future. Nothing here runs in, or blocks, the SIP event loop except `status()`,
which only copies records under a lock.
"""
from __future__ import annotations

import enum
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any


from appliance.system.liveness import Heartbeat, PartHealth
from hw.headset import HeadsetConfig, HeadsetEvent, HungUp, Incoming, Registered
# headsets.yaml is checked in hw/headset_config.py (its model); its names stay importable from here.
from hw.headset_config import HeadsetsConfigError as HeadsetsConfigError
from hw.headset_config import load_headsets as load_headsets
from hw.headset_config import parse_headsets as parse_headsets
from hw.headset_service import (
    HidState,
    ProtocolError,
    ServiceFailed,
    ServiceReady,
    config_to_wire,
    event_from_wire,
)

log = logging.getLogger("plateau.headsets")

RESTART_DELAY = 2.0
MAX_RESTART_DELAY = 60.0
STOP_GRACE = 3.0  # the service hangs up and unregisters (about 1 s) before exiting
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


# -- errors -----------------------------------------------------------------------------------------
class HeadsetCommandError(Exception):
    """Base of the errors a command to a headset can end with."""


class UnknownHeadset(HeadsetCommandError):
    """No headset is configured on that extension."""


class HeadsetUnavailable(HeadsetCommandError):
    """The headset's process is not up (starting, crashed and waiting to restart, stopped)."""


class HeadsetRefused(HeadsetCommandError):
    """The headset refused the command (`kind` is its error: IllegalTransition, HeadsetError...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class HeadsetTimeout(HeadsetCommandError):
    """The headset did not answer the command in time."""


# -- one supervised process -------------------------------------------------------------------------
class ProcessState(enum.Enum):
    """Where a headset's process is in its life."""

    IDLE = "idle"  # not started yet
    STARTING = "starting"  # spawned, registering
    UP = "up"  # registered: commands accepted
    BACKOFF = "backoff"  # exited; waiting to restart
    FAILED = "failed"  # the PBX refused its credentials: not retried (see the module docstring)
    STOPPED = "stopped"


_TRANSITIONS: dict[ProcessState, frozenset[ProcessState]] = {
    ProcessState.IDLE: frozenset({ProcessState.STARTING, ProcessState.STOPPED}),
    ProcessState.STARTING: frozenset({ProcessState.UP, ProcessState.BACKOFF, ProcessState.FAILED,
                                      ProcessState.STOPPED}),
    ProcessState.UP: frozenset({ProcessState.BACKOFF, ProcessState.STOPPED}),
    ProcessState.BACKOFF: frozenset({ProcessState.STARTING, ProcessState.STOPPED}),
    ProcessState.FAILED: frozenset({ProcessState.STOPPED}),
    ProcessState.STOPPED: frozenset(),
}


@dataclass
class HeadsetRecord:
    """What the engine knows of one headset (the control API's view)."""

    extension: str
    process: str = ProcessState.IDLE.value
    pid: int | None = None
    restarts: int = 0
    registered: bool = False
    state: str = "stopped"  # the headset's call state (hw.headset.HeadsetState), as last reported
    peer: str = ""
    since: float = field(default_factory=time.time)  # when `process` last changed
    last_exit: int | None = None
    error: str = ""  # why the last start failed; cleared once it registers
    hid: str = ""  # the hook button's hidraw node, once the process has opened it
    hid_hook: str = ""  # "on-hook"/"off-hook" as the button last said; "" without a HID device
    hid_muted: bool = False
    hid_error: str = ""  # why the HID device is not read (not found, unplugged...)


class SupervisedHeadset:
    """One headset's process: spawned, watched and respawned by its own thread."""

    def __init__(self, config: HeadsetConfig, *, python: str = sys.executable,
                 restart_delay: float = RESTART_DELAY, max_restart_delay: float = MAX_RESTART_DELAY,
                 on_event: Callable[[str, HeadsetEvent], None] | None = None) -> None:
        self.config = config
        self.python = python
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        self.on_event = on_event
        self._state = ProcessState.IDLE
        self._record = HeadsetRecord(config.extension)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._refused = False  # the last start ended in a refused REGISTER
        self._thread: threading.Thread | None = None
        self.beat = Heartbeat()  # deaths: process exits while not stopping; restarts: respawns

    @property
    def state(self) -> ProcessState:
        return self._state

    def _set_state(self, new: ProcessState) -> None:
        """The one place the process state changes (caller holds the lock)."""
        if new is self._state:
            return
        if new not in _TRANSITIONS[self._state]:
            raise RuntimeError(f"headset {self.config.extension}: process {self._state.value} -> {new.value}")
        self._state = new
        self._record.process = new.value
        self._record.since = time.time()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._supervise, name=f"headset-{self.config.extension}",
                                        daemon=True)
        self._thread.start()

    def begin_stop(self) -> None:
        """Ask the process to end: closing its stdin makes it hang up, unregister and exit."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
            if self._thread is None:
                self._set_state(ProcessState.STOPPED)
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass  # already gone

    def finish_stop(self, grace: float = STOP_GRACE) -> None:
        """Wait for the process (SIGTERM, then SIGKILL, when it lingers) and the thread."""
        with self._lock:
            proc = self._proc
        if proc is not None:
            for signal_it, wait in ((None, grace), (proc.terminate, 2.0), (proc.kill, 5.0)):
                if signal_it is not None and proc.poll() is None:
                    signal_it()
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    def stop(self, grace: float = STOP_GRACE) -> None:
        self.begin_stop()
        self.finish_stop(grace)

    # -- the supervising thread ---------------------------------------------------------------
    def _supervise(self) -> None:
        failures = 0  # consecutive starts that never registered
        first = True
        while not self._stopping.is_set():
            if not first:
                with self._lock:
                    self._record.restarts += 1
                self.beat.restarted()
            first = False
            ready = False
            try:
                proc = self._spawn()
            except OSError as exc:
                self.beat.died(f"cannot start: {exc}")
                if self._stopping.is_set():
                    break
                log.error("headset %s: cannot start its process: %s", self.config.extension, exc)
                with self._lock:
                    self._record.error = str(exc)
                    self._set_state(ProcessState.BACKOFF)
            else:
                try:
                    ready = self._pump(proc)
                except Exception as exc:  # a bug reading its lines: this thread outlives it, the process does not
                    self.beat.died(exc)
                    log.exception("headset %s: reading its process failed; restarting the process",
                                  self.config.extension)
                    proc.kill()
                self._exited(proc.wait())
            if self._stopping.is_set():
                break
            if self._refused:
                log.error("headset %s: credentials refused: not retried until the engine restarts",
                          self.config.extension)
                with self._lock:
                    self._set_state(ProcessState.FAILED)
                self._stopping.wait()
                break
            failures = 0 if ready else failures + 1
            delay = min(self.restart_delay * 2 ** max(0, failures - 1), self.max_restart_delay)
            log.warning("headset %s: restarting in %.1f s", self.config.extension, delay)
            self._stopping.wait(delay)
        with self._lock:
            self._set_state(ProcessState.STOPPED)

    def _spawn(self) -> subprocess.Popen[str]:
        env = dict(os.environ)
        env.setdefault("JACK_NO_START_SERVER", "1")  # PortAudio probes JACK: never spawn jackd
        with self._lock:
            if self._stopping.is_set():
                raise OSError("stopping")
            self._set_state(ProcessState.STARTING)
            # Same process group as the engine: whatever stops the engine's group stops these.
            proc = subprocess.Popen(
                [self.python, "-m", "hw.headset_service", "-"], cwd=_PACKAGE_ROOT, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1,
            )
            self._proc = proc
            self._record.pid = proc.pid
        try:
            if proc.stdin is not None:  # always, with stdin=PIPE
                proc.stdin.write(json.dumps(config_to_wire(self.config)) + "\n")  # the password stays off argv
                proc.stdin.flush()
        except OSError:
            pass  # it died at once: _pump sees EOF
        log.info("headset %s: process %d started", self.config.extension, proc.pid)
        return proc

    def _pump(self, proc: subprocess.Popen[str]) -> bool:
        """Read the process's lines until it exits; True if it got as far as `ready`."""
        ready = False
        out: IO[str] | None = proc.stdout
        if out is None:
            return False
        for line in out:
            self.beat.beat()
            try:
                msg = json.loads(line)
                if not isinstance(msg, dict):
                    raise ProtocolError("not a JSON object")
                if "reply" in msg:
                    self._on_reply(msg)
                else:
                    event, state = event_from_wire(msg)
                    ready = self._on_event(event, state) or ready
            except (json.JSONDecodeError, ProtocolError, TypeError) as exc:
                log.error("headset %s: bad line %r: %s", self.config.extension, line[:200], exc)
        return ready

    def _on_reply(self, msg: dict[str, Any]) -> None:
        with self._lock:
            if msg.get("state"):
                self._record.state = str(msg["state"])
            fut = self._pending.pop(msg["reply"], None) if isinstance(msg.get("reply"), int) else None
        if fut is None:
            log.error("headset %s: reply to no command: %s", self.config.extension, msg)
        elif msg.get("ok"):
            fut.set_result(msg)
        else:
            fut.set_exception(HeadsetRefused(str(msg.get("kind", "")), str(msg.get("error", ""))))

    def _on_event(self, event: HeadsetEvent, state: str) -> bool:
        ext = self.config.extension
        with self._lock:
            rec = self._record
            rec.state = state or rec.state
            if isinstance(event, ServiceReady):
                self._set_state(ProcessState.UP)
                rec.registered, rec.error = True, ""
            elif isinstance(event, Registered):
                rec.registered = event.active
            elif isinstance(event, Incoming):
                rec.peer = event.caller
            elif isinstance(event, ServiceFailed):
                rec.error = f"{event.kind}: {event.error}"
                self._refused = event.code in (401, 403)  # RFC 3261 22.2/22.4: credentials refused
            elif isinstance(event, HidState):
                rec.hid, rec.hid_error, rec.hid_muted = event.device, event.error, event.muted
                rec.hid_hook = ("off-hook" if event.off_hook else "on-hook") if event.connected else ""
        if isinstance(event, ServiceFailed):
            log.error("headset %s: failed to start: %s: %s", ext, event.kind, event.error)
        elif isinstance(event, Registered) and not event.active:
            log.warning("headset %s: not registered (%d %s)", ext, event.code, event.reason)
        elif isinstance(event, Incoming):
            log.info("headset %s: ringing, call from %s", ext, event.caller)
        elif isinstance(event, HungUp):
            log.info("headset %s: call ended (%d %s)", ext, event.code, event.reason)
        elif isinstance(event, ServiceReady):
            log.info("headset %s: registered and ready", ext)
        elif isinstance(event, HidState):
            log.info("headset %s: hook button %s: %s%s", ext, event.device or "-",
                     ("off-hook" if event.off_hook else "on-hook") if event.connected else "not read",
                     f" ({event.error})" if event.error else "")
        else:
            log.info("headset %s: %s (%s)", ext, type(event).__name__.lower(), state)
        if self.on_event is not None:
            try:
                self.on_event(ext, event)
            except Exception:  # a faulty listener must not stop the supervision
                log.exception("headset %s: on_event(%r) raised", ext, event)
        return isinstance(event, ServiceReady)

    def _exited(self, code: int) -> None:
        with self._lock:
            self._proc = None
            rec = self._record
            rec.last_exit, rec.registered, rec.state, rec.pid = code, False, "stopped", None
            rec.hid_hook = ""
            pending, self._pending = self._pending, {}
            if not self._stopping.is_set() and not self._refused:
                self._set_state(ProcessState.BACKOFF)
        for fut in pending.values():
            fut.set_exception(HeadsetUnavailable(f"headset {self.config.extension}: process exited ({code})"))
        if self._stopping.is_set():
            log.info("headset %s: process stopped (%d)", self.config.extension, code)
        else:
            cause = f"killed by signal {-code}" if code < 0 else f"exited with {code}"
            self.beat.died(f"process {cause}")
            log.warning("headset %s: process %s", self.config.extension, cause)

    # -- any thread ---------------------------------------------------------------------------
    def command(self, cmd: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
        """Send `cmd` (answer, hangup, dial, status) and wait for its reply."""
        fut: Future[dict[str, Any]] = Future()
        with self._lock:
            proc = self._proc
            if self._state is not ProcessState.UP or proc is None or proc.stdin is None:
                raise HeadsetUnavailable(f"headset {self.config.extension} is {self._state.value}")
            cmd_id = next(self._ids)
            self._pending[cmd_id] = fut
            try:
                proc.stdin.write(json.dumps({"id": cmd_id, "cmd": cmd, **args}) + "\n")
                proc.stdin.flush()
            except (OSError, ValueError) as exc:  # pipe closed: the process is ending
                self._pending.pop(cmd_id, None)
                raise HeadsetUnavailable(f"headset {self.config.extension}: {exc}") from exc
        try:
            return fut.result(timeout)
        except FutureTimeout:
            with self._lock:
                self._pending.pop(cmd_id, None)
            raise HeadsetTimeout(f"headset {self.config.extension}: no answer to {cmd} in {timeout} s") from None

    def status(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self._record)

    def health(self) -> PartHealth:
        """`headset:<ext>`: alive while its supervising thread runs and it is not refused for good.

        A registered headset says nothing for hours, so a running process counts as progress."""
        with self._lock:
            proc, state = self._proc, self._state
        if proc is not None and proc.poll() is None:
            self.beat.beat()
        thread = self._thread
        alive = state is ProcessState.IDLE or (thread is not None and thread.is_alive()
                                               and state is not ProcessState.FAILED)
        return self.beat.health(f"headset:{self.config.extension}", alive)


# -- all of them --------------------------------------------------------------------------------
class HeadsetSupervisor:
    """Every headset of data/headsets.yaml, each in its own supervised process."""

    def __init__(self, configs: list[HeadsetConfig], *, error: str | None = None, config_path: str = "",
                 registrar: tuple[str, int] = ("127.0.0.1", 5060), **options: Any) -> None:
        self.error = error
        self.config_path = config_path
        self.registrar = registrar
        self.options = options
        self.headsets = {c.extension: SupervisedHeadset(c, **options) for c in configs}
        self._started = False
        self._stopping: list[threading.Thread] = []  # headsets removed by a reload, still ending

    @classmethod
    def from_file(cls, path: Path, registrar_host: str, registrar_port: int, **options: Any) -> HeadsetSupervisor:
        """From data/headsets.yaml; a bad file leaves no headset and its error in the status."""
        try:
            configs = load_headsets(path, registrar_host, registrar_port)
        except (HeadsetsConfigError, OSError) as exc:
            # A typo in headsets.yaml must not keep the SIP side down.
            log.error("headsets configuration %s not used: %s", path, exc)
            return cls([], error=str(exc), config_path=str(path), registrar=(registrar_host, registrar_port),
                       **options)
        return cls(configs, config_path=str(path), registrar=(registrar_host, registrar_port), **options)

    def start(self) -> HeadsetSupervisor:
        self._started = True
        for hs in self.headsets.values():
            hs.start()
        return self

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop every process, all at once."""
        for hs in self.headsets.values():
            hs.begin_stop()
        for hs in self.headsets.values():
            hs.finish_stop(grace)
        for t in self._stopping:
            t.join(grace + 10.0)

    # -- reload -------------------------------------------------------------------------------
    def read(self) -> list[HeadsetConfig]:
        """headsets.yaml as it is now (no file: no headset); raises HeadsetsConfigError naming the field."""
        path = Path(self.config_path)
        if not path.exists():
            return []
        try:
            return load_headsets(path, *self.registrar)
        except OSError as exc:
            raise HeadsetsConfigError(f"{path}: {exc}") from exc

    def apply(self, configs: list[HeadsetConfig]) -> list[str]:
        """Headsets by extension: an unchanged one keeps its process and its call; a removed or
        changed one is stopped (its process hangs up and unregisters) and a new one started.

        Runs on the engine loop: a process is asked to stop here and waited for on a thread of its
        own, since its un-REGISTER needs the loop this runs on."""
        changes: list[str] = []
        wanted = {c.extension: c for c in configs}
        for ext, hs in list(self.headsets.items()):
            if wanted.get(ext) != hs.config:
                changes.append(f"headset {ext} {'changed' if ext in wanted else 'removed'}")
                del self.headsets[ext]
                hs.begin_stop()
                t = threading.Thread(target=hs.finish_stop, name=f"headset-stop-{ext}", daemon=True)
                t.start()
                self._stopping = [s for s in self._stopping if s.is_alive()] + [t]
        for ext, cfg in wanted.items():
            if ext not in self.headsets:
                hs = self.headsets[ext] = SupervisedHeadset(cfg, **self.options)
                if f"headset {ext} changed" not in changes:
                    changes.append(f"headset {ext} added")
                if self._started:
                    hs.start()
        self.error = None
        for change in changes:
            log.info("headsets.yaml reloaded: %s", change)
        return changes

    def get(self, extension: str) -> SupervisedHeadset:
        hs = self.headsets.get(extension)
        if hs is None:
            raise UnknownHeadset(f"no headset on extension {extension}")
        return hs

    def command(self, extension: str, cmd: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
        """Run `cmd` on the headset of `extension`; raises a `HeadsetCommandError`."""
        return self.get(extension).command(cmd, timeout, **args)

    def status(self) -> list[dict[str, Any]]:
        """One record per headset (JSON-able)."""
        return [hs.status() for hs in self.headsets.values()]

    def health(self) -> list[PartHealth]:
        """One PartHealth per headset process (the engine's supervisor gathers them)."""
        return [hs.health() for hs in self.headsets.values()]
