"""`Baresip`: the Debian baresip-core 1.0.0 user agent as a test peer, driven by ctrl_tcp.

Each instance gets a private config dir (`baresip -f DIR`): SIP on 127.0.0.1, the `ausine`
module as the microphone (a sine of `tone_hz`), ALSA's `null` PCM as the speaker (no sound
card needed), and the `sndfile` filter, which dumps every call's encoded and decoded audio
as WAV files in DIR/snd (`dump-<peer>-<time>-dec.wav` is what baresip received and decoded).
Commands and events travel over `ctrl_tcp` as JSON in netstrings (a TCP socket on 127.0.0.1).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from tests.peers.process import stop_group
from tests.peers.engine import free_port

MODULE_DIRS = (
    "/usr/lib/baresip/modules",
    "/usr/lib/x86_64-linux-gnu/baresip/modules",
    "/usr/local/lib/baresip/modules",
)


class BaresipError(RuntimeError):
    """baresip did not start, answer a command, or send the awaited event in time."""


@dataclass
class BaresipEvent:
    """One ctrl_tcp event, e.g. type "CALL_ESTABLISHED", "CALL_CLOSED", "REGISTER_OK"."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)


def module_path() -> str:
    """The directory of the installed baresip modules."""
    for d in MODULE_DIRS:
        if os.path.exists(os.path.join(d, "g711.so")):
            return d
    raise BaresipError(f"baresip modules not found in {MODULE_DIRS}")


def netstring(payload: bytes) -> bytes:
    """Encode one netstring: b'<len>:<payload>,'."""
    return str(len(payload)).encode() + b":" + payload + b","


def parse_netstrings(buf: bytes) -> tuple[list[bytes], bytes]:
    """Split complete netstrings off `buf`; returns (payloads, rest)."""
    out = []
    while True:
        colon = buf.find(b":")
        if colon <= 0:
            return out, buf
        try:
            n = int(buf[:colon])
        except ValueError as exc:
            raise BaresipError(f"bad netstring length {buf[:colon]!r}") from exc
        end = colon + 1 + n
        if len(buf) < end + 1:
            return out, buf
        if buf[end : end + 1] != b",":
            raise BaresipError("netstring not terminated by ','")
        out.append(buf[colon + 1 : end])
        buf = buf[end + 1 :]


class Baresip:
    """A baresip process. Use as `with Baresip("carol", tone_hz=1000) as b: ...`."""

    def __init__(
        self,
        name: str = "baresip",
        tone_hz: int = 1000,
        codecs: list[str] | None = None,
        sip_port: int = 0,
        auto_answer: bool = False,
        work_dir: str | Path | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.tone_hz = tone_hz
        self.codecs = list(codecs or ["PCMU"])
        self.sip_port = sip_port or free_port()
        self.ctrl_port = free_port(socket.SOCK_STREAM, also_tcp=False)
        self.auto_answer = auto_answer
        self.dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"baresip-{name}-"))
        self.snd_dir = self.dir / "snd"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._events: list[BaresipEvent] = []
        self._history: list[BaresipEvent] = []
        self._responses: dict[str, dict[str, Any]] = {}
        self._token = 0
        self._account_line = f"<sip:{name}@127.0.0.1>;regint=0"

    # -- configuration ----------------------------------------------------------------
    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.snd_dir.mkdir(exist_ok=True)
        mods = ["g711.so"] + (["g722.so"] if "G722" in self.codecs else [])
        lines = [
            "poll_method epoll",
            # Loopback only: the tests' peers all live there.
            "net_interface 127.0.0.1",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "call_local_timeout 120",
            "call_max_calls 4",
            "audio_buffer 60",
            "audio_player alsa,null",
            "audio_alert alsa,null",
            f"audio_source ausine,{self.tone_hz}",
            # ausine only runs at 48 kHz stereo; baresip resamples to the codec rate.
            "ausrc_srate 48000",
            "ausrc_channels 2",
            "audio_level no",
            "rtcp_mux no",
            "jitter_buffer_delay 3-10",
            f"module_path {module_path()}",
            *[f"module {m}" for m in mods],
            "module alsa.so",
            "module ausine.so",
            "module sndfile.so",
            "module_tmp account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            f"snd_path {self.snd_dir}",
        ]
        (self.dir / "config").write_text("\n".join(lines) + "\n")
        # Codec order on the account restricts the offer/answer (baresip `audio_codecs`).
        names = {"PCMU": "PCMU", "PCMA": "PCMA", "G722": "G722"}
        codec_param = ";audio_codecs=" + ",".join(names[c] for c in self.codecs)
        answer = ";answermode=auto" if self.auto_answer else ""
        (self.dir / "accounts").write_text(self._account_line + codec_param + answer + "\n")
        (self.dir / "contacts").write_text("")

    def set_account(
        self, user: str, password: str, registrar_host: str, registrar_port: int, regint: int = 300
    ) -> None:
        """Use a registered account (call before start())."""
        self._account_line = (
            f"<sip:{user}@{registrar_host}:{registrar_port};transport=udp>;auth_pass={password}"
            f";regint={regint}"
        )

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> Baresip:
        """Write the config, start baresip, connect ctrl_tcp."""
        self._write_config()
        self._log = open(self.dir / "baresip.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            ["baresip", "-f", str(self.dir)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise BaresipError(f"baresip exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise BaresipError(f"ctrl_tcp not listening:\n{self.log_text()}") from None
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = threading.Thread(
            target=self._read_loop, name=f"baresip-{self.name}", daemon=True
        )
        self._reader.start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            text = (self.dir / "baresip.log").read_text(errors="replace")
        except OSError:
            return ""
        # Drop the menu's once-a-second call status lines ("[0:00:01] audio=...").
        lines = [ln for ln in text.splitlines() if ln.strip() and "audio=" not in ln]
        return "\n".join(lines)[-4000:]

    def stop(self) -> None:
        """Quit baresip (SIGTERM, then SIGKILL); idempotent."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        proc = self.proc
        if proc is not None:
            stop_group(proc)
            self.proc = None
            self._log.close()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
            self._reader = None

    def _read_loop(self) -> None:
        buf = b""
        sock = self._sock
        while sock is not None:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            msgs, buf = parse_netstrings(buf)
            with self._cond:
                for raw in msgs:
                    msg = json.loads(raw)
                    if msg.get("event"):
                        ev = BaresipEvent(str(msg.get("type", "")), msg)
                        self._events.append(ev)
                        self._history.append(ev)
                    elif msg.get("response"):
                        self._responses[str(msg.get("token", ""))] = msg
                self._cond.notify_all()

    # -- commands and events ----------------------------------------------------------
    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Run a long command (e.g. "dial", "accept", "hangup") and return its response."""
        if self._sock is None:
            raise BaresipError("baresip is not running")
        with self._cond:
            self._token += 1
            token = f"t{self._token}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(netstring(body))
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BaresipError(f"no response to {command} in {timeout}s")
                self._cond.wait(left)
            resp = self._responses.pop(token)
        if not resp.get("ok", False):
            raise BaresipError(f"{command} {params!r} failed: {resp}")
        return resp

    def wait_event(self, type: str, timeout: float = 5.0) -> BaresipEvent:
        """Pop the first queued event of `type` (e.g. "CALL_ESTABLISHED"); wait for one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, ev in enumerate(self._events):
                    if ev.type == type:
                        del self._events[i]
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e.type for e in self._history[-15:]]
                    raise BaresipError(
                        f"{self.name}: no {type} in {timeout}s; last: {seen}\n{self.log_text()}"
                    )
                self._cond.wait(min(left, 0.2))

    def events(self) -> list[BaresipEvent]:
        with self._cond:
            return list(self._history)

    def wait_registered(self, timeout: float = 5.0) -> None:
        """Wait until the account is registered.

        Asks `reginfo` rather than waiting for REGISTER_OK: the first registration often
        completes before the ctrl_tcp connection exists, so its event is never seen.
        """
        deadline = time.monotonic() + timeout
        while True:
            info = re.sub(r"\x1b\[[0-9;]*m", "", str(self.command("reginfo").get("data", "")))
            if re.search(r"\sOK\s", info):
                return
            if time.monotonic() > deadline:
                raise BaresipError(f"{self.name}: not registered in {timeout}s: {info!r}\n{self.log_text()}")
            time.sleep(0.1)

    @property
    def uri(self) -> str:
        return f"sip:{self.name}@127.0.0.1:{self.sip_port}"

    def dial(self, uri: str) -> None:
        self.command("dial", uri)

    def answer(self) -> None:
        self.command("accept")

    def hangup(self) -> None:
        self.command("hangup")

    def decoded_recordings(self) -> list[Path]:
        """WAV files of audio baresip received and decoded (sndfile `-dec.wav`), oldest first."""
        return sorted(self.snd_dir.glob("dump-*-dec.wav"), key=lambda p: p.stat().st_mtime)
