"""One USB headset in its own process, driven over a line-oriented JSON protocol on stdin/stdout.

pjsua2 allows one Endpoint per process (hw/headset.py), so the engine runs each configured
headset as `python -m hw.headset_service CONFIG` (hw/headsets.py supervises them). CONFIG is
the `HeadsetConfig` as a JSON object, or `-` to read it from the first line of stdin, which
keeps the SIP password out of the process list (`/proc/PID/cmdline` is world-readable).

Protocol: one JSON object per line, UTF-8, in both directions.

  stdin, commands:   {"id": 7, "cmd": "answer"}      {"id": 8, "cmd": "hangup"}
                     {"id": 9, "cmd": "dial", "number": "1002"}      {"id": 10, "cmd": "status"}
  stdout, replies:   {"reply": 7, "ok": true, "state": "talking", "result": null}
                     {"reply": 8, "ok": false, "state": "idle", "kind": "IllegalTransition", "error": "..."}
  stdout, events:    {"event": "registered", "code": 200, "reason": "OK", "active": true, "state": "idle"}
                     {"event": "incoming", "caller": "1001", "display": "", "uri": "...", "state": "ringing"}
                     {"event": "answered", "state": "talking"}
                     {"event": "hungup", "code": 200, "reason": "Normal call clearing", "state": "idle"}
                     {"event": "ready", "extension": "1005", "state": "idle"}   (registered; commands accepted)
                     {"event": "failed", "kind": "RegistrationFailed", "error": "...", "code": 403}  (exit 1)
                     {"event": "hid", "device": "/dev/hidraw2", "connected": true, "off_hook": false,
                      "muted": false, "error": "", "state": "idle"}   (the hook button; config `hid`)

`state` is the headset's call state (`HeadsetState`) right after the event or command.
End of stdin (the engine closed the pipe or died) or SIGTERM: hang up, unregister, exit 0.
Anything C code prints goes to stderr: stdout carries the protocol only.

The hook button (config `hid`: a hidraw node, or `auto`; hw/headset_hid.py) is read on its
own thread: going off hook while a call rings answers it; going on hook while talking or
dialing hangs up. Off hook while idle is ignored (there is no dial tone: dial from the API),
and so is on hook while ringing (the caller keeps ringing until answered or the API hangs
up). Its LEDs follow the call: Ring while ringing, Off-Hook while dialing or talking.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import IO, Any

from hw.headset import (
    Answered,
    Headset,
    HeadsetConfig,
    HeadsetError,
    HeadsetEvent,
    HeadsetState,
    HungUp,
    Incoming,
    Registered,
)
from hw.headset_hid import HidError, HidEvent, HidrawReader, HidStatus, HookOff, HookOn, MuteToggled, find_hidraw

log = logging.getLogger("plateau.headset_service")

COMMANDS = ("answer", "hangup", "dial", "status")
COMMAND_TIMEOUT = 10.0  # a pjsua2 call is quick; this only bounds a wedged control thread


class ProtocolError(ValueError):
    """A line that is not a well-formed message of this protocol."""


# -- process lifecycle events (beside hw.headset's call events) -------------------------------------
@dataclass(frozen=True)
class ServiceReady(HeadsetEvent):
    """The headset registered: the process accepts commands."""

    extension: str


@dataclass(frozen=True)
class ServiceFailed(HeadsetEvent):
    """The headset could not start (unknown device, REGISTER refused...): the process exits 1.

    `code` is the SIP status of a refused REGISTER (401, 403...), else 0.
    """

    kind: str
    error: str
    code: int = 0


@dataclass(frozen=True)
class HidState(HeadsetEvent):
    """The hook button's device: opened (`connected`), its hook and mute state, or why it is not read."""

    device: str
    connected: bool
    off_hook: bool
    muted: bool
    error: str = ""


_EVENT_NAMES: dict[type[HeadsetEvent], str] = {
    Registered: "registered",
    Incoming: "incoming",
    Answered: "answered",
    HungUp: "hungup",
    ServiceReady: "ready",
    ServiceFailed: "failed",
    HidState: "hid",
}
_EVENT_TYPES = {name: kind for kind, name in _EVENT_NAMES.items()}


# -- wire encoding (pure) ---------------------------------------------------------------------------
def event_to_wire(event: HeadsetEvent, state: str) -> dict[str, Any]:
    """The JSON object for `event`; `state` is the headset's call state after it."""
    name = _EVENT_NAMES.get(type(event))
    if name is None:
        raise ProtocolError(f"no wire name for {type(event).__name__}")
    return {"event": name, **dataclasses.asdict(event), "state": state}


def event_from_wire(msg: dict[str, Any]) -> tuple[HeadsetEvent, str]:
    """The typed event and the headset state carried by an event line's object."""
    kind = _EVENT_TYPES.get(str(msg.get("event")))
    if kind is None:
        raise ProtocolError(f"unknown event {msg.get('event')!r}")
    fields = dataclasses.fields(kind)
    names = [f.name for f in fields if f.name in msg or f.default is dataclasses.MISSING]
    missing = [n for n in names if n not in msg]
    if missing:
        raise ProtocolError(f"event {msg['event']!r} lacks {', '.join(missing)}")
    return kind(**{n: msg[n] for n in names}), str(msg.get("state", ""))


def config_to_wire(cfg: HeadsetConfig) -> dict[str, Any]:
    """`HeadsetConfig` as a JSON object (what CONFIG holds)."""
    out = dataclasses.asdict(cfg)
    out["codecs"] = list(cfg.codecs)
    return out


def config_from_wire(obj: Any) -> HeadsetConfig:
    """`HeadsetConfig` from CONFIG's JSON object; an unknown or missing field is named."""
    if not isinstance(obj, dict):
        raise ProtocolError("config must be a JSON object")
    fields = {f.name: f for f in dataclasses.fields(HeadsetConfig)}
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise ProtocolError(f"config: unknown field(s) {', '.join(unknown)}")
    required = [n for n, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [n for n in required if n not in obj]
    if missing:
        raise ProtocolError(f"config: missing field(s) {', '.join(missing)}")
    values = dict(obj)
    if "codecs" in values:
        if not isinstance(values["codecs"], list):
            raise ProtocolError("config: codecs must be a list")
        values["codecs"] = tuple(values["codecs"])
    return HeadsetConfig(**values)


def parse_command(line: str) -> tuple[int, str, dict[str, Any]]:
    """(id, command, arguments) of a command line."""
    try:
        msg = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from exc
    if not isinstance(msg, dict):
        raise ProtocolError("a command must be a JSON object")
    cmd_id = msg.get("id")
    if not isinstance(cmd_id, int) or isinstance(cmd_id, bool):
        raise ProtocolError("a command needs an integer 'id'")
    cmd = msg.get("cmd")
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown cmd {cmd!r}; one of {', '.join(COMMANDS)}")
    args = {k: v for k, v in msg.items() if k not in ("id", "cmd")}
    if cmd == "dial" and not isinstance(args.get("number"), str):
        raise ProtocolError("dial needs a string 'number'")
    return cmd_id, str(cmd), args


# -- the service ------------------------------------------------------------------------------------
class HeadsetService:
    """Runs one `Headset` and speaks the protocol over `out` (stdin is read by `serve`)."""

    def __init__(self, config: HeadsetConfig, out: IO[str]) -> None:
        self.config = config
        self._out = out
        self._write_lock = threading.Lock()
        self.headset = Headset(config, on_event=self._on_event)
        self.hid: HidrawReader | None = None

    def send(self, msg: dict[str, Any]) -> None:
        """Write one protocol line (any thread); a closed pipe means the engine is gone."""
        line = json.dumps(msg, separators=(",", ":")) + "\n"
        with self._write_lock:
            try:
                self._out.write(line)
                self._out.flush()
            except (BrokenPipeError, ValueError):
                pass  # nobody reads any more: stdin's EOF ends the service

    def _on_event(self, event: HeadsetEvent) -> None:
        # On the headset's control thread, so `state` is the one right after the event.
        self.send(event_to_wire(event, self.headset.state.value))
        if self.hid is not None and isinstance(event, (Incoming, Answered, HungUp)):
            state = self.headset.state
            self.hid.set_call(off_hook=state in (HeadsetState.TALKING, HeadsetState.DIALING),
                              ring=state is HeadsetState.RINGING)

    # -- the hook button (reader thread) ----------------------------------------------------------
    def start_hid(self) -> None:
        """Start reading the hook button of config `hid`; a missing device is logged, not fatal."""
        device = self.config.hid
        if not device:
            return
        if device == "auto":
            try:
                device = str(find_hidraw(self.config.input_device))
            except HidError as exc:
                log.error("headset %s: %s", self.config.extension, exc)
                self._on_hid_status(HidStatus("auto", False, False, False, str(exc)))
                return
        self.hid = HidrawReader(device, self._on_hid, descriptor=self.config.hid_descriptor or None,
                                on_status=self._on_hid_status).start()

    def _on_hid_status(self, st: HidStatus) -> None:
        ev = HidState(st.device, st.connected, st.off_hook, st.muted, st.error)
        self.send(event_to_wire(ev, self.headset.state.value))

    def _on_hid(self, event: HidEvent) -> None:
        state = self.headset.state
        fut: Future[Any] | None = None
        if isinstance(event, HookOff) and state is HeadsetState.RINGING:
            fut = self.headset.answer()
        elif isinstance(event, HookOn) and state in (HeadsetState.TALKING, HeadsetState.DIALING):
            fut = self.headset.hangup()
        elif isinstance(event, MuteToggled):
            self.headset.set_mute(event.muted)
            log.info("headset %s: mute button: %s", self.config.extension, "muted" if event.muted else "unmuted")
        else:
            log.info("headset %s: %s ignored while %s", self.config.extension, type(event).__name__, state.value)
        if fut is not None:
            action = type(event).__name__
            fut.add_done_callback(lambda f: self._hid_action_done(action, f))

    def _hid_action_done(self, action: str, fut: Future[Any]) -> None:
        if fut.exception() is not None:
            log.warning("headset %s: %s: %s", self.config.extension, action, fut.exception())

    def start(self) -> bool:
        """Register; emits `ready` or `failed`."""
        try:
            self.headset.start()
        except (HeadsetError, ValueError, OSError) as exc:
            log.error("headset %s: %s", self.config.extension, exc)
            code = int(getattr(exc, "code", 0) or 0)  # RegistrationFailed carries the SIP status
            self.send(event_to_wire(ServiceFailed(type(exc).__name__, str(exc), code), self.headset.state.value))
            return False
        self.send(event_to_wire(ServiceReady(self.config.extension), self.headset.state.value))
        self.start_hid()
        return True

    def handle(self, line: str) -> None:
        """Run one command line; the reply is written when the headset has done it."""
        try:
            cmd_id, cmd, args = parse_command(line)
        except ProtocolError as exc:
            self.send({"reply": None, "ok": False, "state": self.headset.state.value,
                       "kind": "ProtocolError", "error": str(exc)})
            return
        try:
            if cmd == "answer":
                fut: Future[Any] = self.headset.answer()
            elif cmd == "hangup":
                fut = self.headset.hangup()
            elif cmd == "dial":
                fut = self.headset.dial(args["number"])
            else:
                fut = self.headset.status()
        except ValueError as exc:  # a number that cannot be dialled
            self._reply(cmd_id, None, exc)
            return
        fut.add_done_callback(lambda f: self._reply(cmd_id, f.result() if f.exception() is None else None,
                                                    f.exception()))

    def _reply(self, cmd_id: int, result: Any, exc: BaseException | None) -> None:
        msg: dict[str, Any] = {"reply": cmd_id, "ok": exc is None, "state": self.headset.state.value}
        if exc is None:
            is_record = dataclasses.is_dataclass(result) and not isinstance(result, type)
            msg["result"] = dataclasses.asdict(result) if is_record else result  # HeadsetStatus for status
        else:
            msg["kind"], msg["error"] = type(exc).__name__, str(exc)
        self.send(msg)

    def serve(self, inp: IO[str]) -> None:
        """Read commands until end of input."""
        for line in inp:
            if line.strip():
                self.handle(line)

    def close(self) -> None:
        if self.hid is not None:
            self.hid.stop()
            self.hid = None
        self.headset.close()


class _Terminated(Exception):
    """SIGTERM arrived: unwind the main thread so the headset hangs up and unregisters."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    """`python -m hw.headset_service CONFIG|-`; see the module docstring."""
    args = sys.argv[1:] if argv is None else argv
    # stdout is the protocol: keep a private copy and send fd 1 (C-level prints) to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s headset_service[%(process)d] %(message)s")
    # The engine may spawn us from a thread that blocks signals; we want SIGTERM delivered.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, _on_sigterm)
    if len(args) != 1:
        print("usage: python -m hw.headset_service CONFIG_JSON|-", file=sys.stderr)
        return 2
    try:
        raw = sys.stdin.readline() if args[0] == "-" else args[0]
        config = config_from_wire(json.loads(raw))
    except (json.JSONDecodeError, ProtocolError, TypeError, ValueError) as exc:
        out.write(json.dumps(event_to_wire(ServiceFailed("ConfigError", str(exc)), "stopped")) + "\n")
        return 2
    try:
        service = HeadsetService(config, out)
    except (HeadsetError, ValueError) as exc:
        out.write(json.dumps(event_to_wire(ServiceFailed(type(exc).__name__, str(exc)), "stopped")) + "\n")
        return 2
    try:
        if not service.start():
            return 1
        service.serve(sys.stdin)
    except (_Terminated, KeyboardInterrupt):
        log.info("headset %s: terminated", config.extension)
    finally:
        service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
