"""`PjPhone`: a pjsua2 phone in a child process (tests/peers/pjphone_proc.py), for tests.

The phone is a context manager: leaving it (normally or by an exception) quits the child and
kills its process group, so a failing test leaves no orphan. Events (incoming calls, call
states, DTMF, transfer status, registration) are queued and waited for with `wait_event`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

from tests.peers.polling import wait_until

if TYPE_CHECKING:
    from tests.peers.engine import Engine

REPO_ROOT = Path(__file__).resolve().parents[2]


class PeerError(RuntimeError):
    """A test peer failed a command or did not reach the awaited state in time."""


@dataclass
class PhoneEvent:
    """One asynchronous event from the phone process."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


class PjPhone:
    """A pjsua2 phone (its own process). Use as `with PjPhone("a") as a: ...`."""

    def __init__(
        self,
        name: str,
        sip_port: int = 0,
        transport: str = "udp",
        codecs: list[str] | None = None,
        bind_ip: str = "127.0.0.1",
        auto_answer: bool = False,
        auto_play: str | Path | None = None,
        auto_record: str | Path | None = None,
        log_level: int = 3,
        start_timeout: float = 10.0,
        telephone_event: bool = True,
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', got {transport!r}")
        self.name = name
        self.transport = transport
        self.bind_ip = bind_ip
        self.codecs = list(codecs or ["PCMU"])
        self._cfg = {
            "name": name,
            "sip_port": sip_port,
            "transport": transport,
            "codecs": self.codecs,
            "bind_ip": bind_ip,
            "auto_answer": auto_answer,
            "auto_play": str(auto_play) if auto_play else None,
            "auto_record": str(auto_record) if auto_record else None,
            "log_level": log_level,
            "telephone_event": telephone_event,
        }
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._cond = threading.Condition()
        self._responses: dict[int, dict[str, Any]] = {}
        self._events: list[PhoneEvent] = []
        self._history: list[PhoneEvent] = []
        self._next_id = 0
        self._reader: threading.Thread | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in close())
            prefix=f"pjphone-{name}-", suffix=".log", delete=False
        )
        self.sip_port = 0

    # -- process lifecycle ------------------------------------------------------------
    def start(self) -> PjPhone:
        """Start the child and wait for its "ready" event (which carries the bound SIP port)."""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.peers.pjphone_proc", json.dumps(self._cfg)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        self._reader = threading.Thread(
            target=self._read_loop, name=f"pjphone-{self.name}", daemon=True
        )
        self._reader.start()
        ev = self.wait_event("ready", timeout=self._start_timeout)
        self.sip_port = int(ev["sip_port"])
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def uri(self) -> str:
        """Direct SIP URI of this phone (no registrar)."""
        tp = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{self.name}@{self.bind_ip}:{self.sip_port}{tp}"

    def log_text(self) -> str:
        """The child's stderr (pjsua log); useful in assertion messages."""
        return Path(self._log.name).read_text(errors="replace")

    def close(self) -> None:
        """Quit the child politely, then kill its process group; idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._send("quit", {}, timeout=3.0)
            except (PeerError, OSError):
                pass  # it is killed below either way
            try:
                proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5.0)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        self._log.close()
        self._proc = None

    def _read_loop(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        for raw in proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue  # not a protocol line
            with self._cond:
                if "event" in msg:
                    kind = msg.pop("event")
                    ev = PhoneEvent(kind, msg)
                    self._events.append(ev)
                    self._history.append(ev)
                else:
                    self._responses[int(msg["id"])] = msg
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _send(self, cmd: str, args: dict[str, Any], timeout: float = 5.0) -> Any:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise PeerError(f"{self.name}: phone process is not running\n{self.log_text()[-3000:]}")
        with self._cond:
            self._next_id += 1
            rid = self._next_id
        proc.stdin.write((json.dumps({"id": rid, "cmd": cmd, "args": args}) + "\n").encode())
        proc.stdin.flush()
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or proc.poll() is not None:
                    raise PeerError(f"{self.name}: no answer to {cmd} within {timeout}s")
                self._cond.wait(left)
            resp = self._responses.pop(rid)
        if not resp.get("ok"):
            raise PeerError(f"{self.name}: {cmd} failed: {resp.get('error')}")
        return resp.get("result")

    # -- events -----------------------------------------------------------------------
    def wait_event(self, kind: str, timeout: float = 5.0, **match: Any) -> PhoneEvent:
        """Pop the first queued event of `kind` whose fields equal `match`; wait for one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, ev in enumerate(self._events):
                    if ev.kind == kind and all(ev.data.get(k) == v for k, v in match.items()):
                        del self._events[i]
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(e.kind, e.data) for e in self._history[-15:]]
                    raise PeerError(
                        f"{self.name}: no {kind} {match} event in {timeout}s; last: {seen}"
                    )
                if self._proc is None or self._proc.poll() is not None:
                    raise PeerError(f"{self.name}: process exited\n{self.log_text()[-3000:]}")
                self._cond.wait(min(left, 0.2))

    def events(self, kind: str | None = None) -> list[PhoneEvent]:
        """Every event seen so far (not consumed), optionally of one kind."""
        with self._cond:
            return [e for e in self._history if kind is None or e.kind == kind]

    # -- registration -----------------------------------------------------------------
    def register(
        self,
        user: str,
        password: str,
        registrar_host: str,
        registrar_port: int,
        expect_code: int | None = 200,
        timeout: float = 5.0,
    ) -> int:
        """REGISTER through the registrar; returns the final status code.

        Raises PeerError if `expect_code` is given and a different final code arrives. After a
        refused REGISTER, asking again sends a new one (the phone's account is made anew).
        """
        self._send(
            "register",
            {"user": user, "password": password, "host": registrar_host, "port": registrar_port},
        )
        deadline = time.monotonic() + timeout
        while True:
            ev = self.wait_event("reg", timeout=max(0.0, deadline - time.monotonic()))
            code = int(ev["code"])
            if code >= 200:
                break
        if expect_code is not None and code != expect_code:
            raise PeerError(
                f"{self.name}: REGISTER got {code} ({ev['reason']}), expected {expect_code}"
            )
        return code

    def unregister(self, timeout: float = 5.0) -> int:
        """REGISTER with Expires: 0; returns the final status code."""
        self._send("unregister", {})
        ev = self.wait_event("reg", timeout=timeout)
        return int(ev["code"])

    # -- calls ------------------------------------------------------------------------
    def call(
        self, uri: str, play_wav: str | Path | None = None, record_wav: str | Path | None = None
    ) -> int:
        """Send an INVITE to `uri`; returns the call index."""
        return int(
            self._send(
                "call",
                {
                    "uri": uri,
                    "play_wav": str(play_wav) if play_wav else None,
                    "record_wav": str(record_wav) if record_wav else None,
                },
            )
        )

    def wait_state(self, call: int, state: str, timeout: float = 5.0) -> PhoneEvent:
        """Wait until call `call` has reached `state` (already reached counts)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self._history:
                    if (
                        ev.kind == "state"
                        and ev.data.get("call") == call
                        and ev.data.get("state") == state
                    ):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    states = [
                        f"{e.data.get('state')}/{e.data.get('code')}"
                        for e in self._history
                        if e.kind == "state" and e.data.get("call") == call
                    ]
                    raise PeerError(
                        f"{self.name}: call {call} not {state} in {timeout}s (states: {states})"
                    )
                if self._proc is None or self._proc.poll() is not None:
                    raise PeerError(f"{self.name}: process exited\n{self.log_text()[-3000:]}")
                self._cond.wait(min(left, 0.2))

    def last_status(self, call: int) -> int:
        """SIP status code of the latest state change of `call` (final response once ended)."""
        codes = [e.data["code"] for e in self.events("state") if e.data.get("call") == call]
        if not codes:
            raise PeerError(f"{self.name}: call {call} has no state yet")
        return int(codes[-1])

    def wait_incoming(self, timeout: float = 5.0) -> int:
        """Wait for an incoming call; returns its index (caller id via `incoming_info`)."""
        return int(self.wait_event("incoming", timeout=timeout)["call"])

    def incoming_info(self, call: int) -> dict[str, Any]:
        """The "incoming" event of `call`: remote_uri, display, remote_contact, local_uri."""
        for ev in self.events("incoming"):
            if ev.data.get("call") == call:
                return dict(ev.data)
        raise PeerError(f"{self.name}: call {call} was not incoming")

    def answer(
        self,
        call: int,
        code: int = 200,
        play_wav: str | Path | None = None,
        record_wav: str | Path | None = None,
    ) -> None:
        """Answer (or send a provisional) with `code`; player/recorder start with the media."""
        self._send(
            "answer",
            {
                "call": call,
                "code": code,
                "play_wav": str(play_wav) if play_wav else None,
                "record_wav": str(record_wav) if record_wav else None,
            },
        )

    def reject(self, call: int, code: int = 486) -> None:
        """Reject an incoming call with a final error response."""
        self._send("hangup", {"call": call, "code": code})

    def hangup(self, call: int) -> None:
        """BYE (or CANCEL before answer)."""
        self._send("hangup", {"call": call, "code": 0})

    def play(self, call: int, wav_path: str | Path, loop: bool = True) -> None:
        self._send("play", {"call": call, "wav_path": str(wav_path), "loop": loop})

    def stop_play(self, call: int) -> None:
        self._send("stop_play", {"call": call})

    def record(self, call: int, wav_path: str | Path) -> None:
        self._send("record", {"call": call, "wav_path": str(wav_path)})

    def stop_record(self, call: int) -> None:
        """Stop and close the recording; returns once its WAV header is final."""
        self._send("stop_record", {"call": call})
        self.wait_event("record_closed", timeout=3.0)

    def dial_dtmf(self, call: int, digits: str, method: str = "rfc4733", duration_ms: int = 0) -> None:
        """Send DTMF: "rfc4733" (RTP telephone-event) or "info" (SIP INFO); ``duration_ms`` per
        digit (0: pjsua's default, 160 ms)."""
        if method not in ("rfc4733", "info"):
            raise ValueError(f"method must be 'rfc4733' or 'info', got {method!r}")
        self._send("dial_dtmf", {"call": call, "digits": digits, "method": method,
                                 "duration_ms": duration_ms})

    def received_dtmf(self) -> list[str]:
        """Digits received so far (onDtmfDigit), all calls, in order."""
        return [e.data["digit"] for e in self.events("dtmf")]

    def received_dtmf_durations(self) -> list[int]:
        """Duration (ms) of each RFC 4733 digit that has ended so far (pjsua's onDtmfEvent)."""
        return [int(e.data["duration_ms"]) for e in self.events("dtmf_end")]

    def hold(self, call: int) -> None:
        """re-INVITE with a=sendonly (RFC 3264 section 8.4)."""
        self._send("hold", {"call": call})

    def unhold(self, call: int) -> None:
        """re-INVITE with a=sendrecv."""
        self._send("unhold", {"call": call})

    def xfer(self, call: int, target_uri: str) -> None:
        """Blind transfer: REFER with Refer-To: target (RFC 3515)."""
        self._send("xfer", {"call": call, "target_uri": target_uri})

    def xfer_replaces(self, call: int, dest_call: int) -> None:
        """Attended transfer: REFER with Refer-To carrying Replaces (RFC 3891)."""
        self._send("xfer_replaces", {"call": call, "dest_call": dest_call})

    def media_state(self, call: int) -> dict[str, Any]:
        """{"status": ACTIVE|LOCAL_HOLD|REMOTE_HOLD|NONE|ERROR, "dir": sendrecv|sendonly|...}."""
        return dict(self._send("media_state", {"call": call}))

    def call_info(self, call: int) -> dict[str, Any]:
        """{"state", "code", "codec" (e.g. "G722/16000"), "remote_uri", "display"}."""
        return dict(self._send("call_info", {"call": call}))

    def wait_rx_audio(self, call: int, seconds: float, timeout: float = 10.0) -> None:
        """Wait until `seconds` more of audio have reached this phone on `call`."""
        wait_rx_audio([(self, call)], seconds, timeout)

    def rtcp_stats(self, call: int) -> dict[str, Any]:
        """RTCP-derived stats from call.getStreamStat: rx/tx packets, loss, jitter (µs), RTT."""
        return dict(self._send("rtcp_stats", {"call": call}))


def wait_rx_audio(legs: list[tuple[PjPhone, int]], seconds: float, timeout: float = 10.0) -> None:
    """Wait until each (phone, call) has received `seconds` more of audio (20 ms packets, counted
    from now): a recording then holds that much of the far end however slowly a loaded machine
    ran, where a fixed sleep would hold less."""
    def rx(phone: PjPhone, call: int) -> int:
        try:
            return int(phone.rtcp_stats(call)["rx_pkt"])
        except PeerError as exc:
            # The call's state (EARLY, CONFIRMED) can be reported a moment before pjsua has
            # set up its audio stream: nothing has been received on it yet.
            if "no audio stream" in str(exc):
                return 0
            raise

    def received() -> list[int]:
        return [rx(p, call) for p, call in legs]
    wanted = [n + round(seconds * 50) for n in received()]
    wait_until(lambda: all(n >= w for n, w in zip(received(), wanted, strict=True)), timeout,
               f"{seconds} s of audio received by {[p.name for p, _ in legs]}")


@contextlib.contextmanager
def registered_phone(pbx: Engine, name: str, ext: str, **kw: Any) -> Iterator[PjPhone]:
    """A PjPhone registered to `pbx` as extension `ext` (secret from the engine's config)."""
    with PjPhone(name, **kw) as phone:
        phone.register(ext, pbx.secret(ext), "127.0.0.1", pbx.sip_port)
        yield phone
