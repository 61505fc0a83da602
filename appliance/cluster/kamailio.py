"""Kamailio as the site's SIP front door: render its configuration, run it, know it answers.

The configuration is `kamailio.cfg` beside this module (route blocks, one job each); `render`
fills in the listen address, the engines (a dispatcher list file in the run directory) and the
limits. `Kamailio` runs ``kamailio -DD -E -f cfg`` as a child in its own process group and
`wait_ready` polls it with OPTIONS until it answers, so no caller sleeps a fixed time.

Where the registrar lives: in the engines, not in Kamailio's usrloc. The engines already are the
registrar with everything that hangs on a registration (digest with the scanner guard behind it,
MWI, an agent's login on a phone), and with a shared store their bindings are site-wide already
(sip/registrar.py `site_contacts`). Kamailio forwards each REGISTER with a Path header (RFC 3327
§4, ``add_path_received``) and keeps no location of its own; the engine stores the Path with the
binding and sends requests to that phone with the Path as their Route set (§5.3), so any engine
reaches any phone through the front door, which routes them with ``loose_route`` and the path
module's ``received`` parameter. A second location service (usrloc on PostgreSQL) would be one
more copy of the bindings to keep in step, for no phone the engines cannot reach already.

The engines trust the ``X-Plateau-Source`` header Kamailio adds (the phone's real address, for
the scanner guard and the trunk match) only from the addresses given to ``plateau run
--front-door`` (sip/front_door.py).
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.system.process_group import stop_group

__all__ = ["CFG_TEMPLATE", "EngineHop", "FrontDoor", "Kamailio", "KamailioError", "check", "options_ping",
           "render", "write_config"]

CFG_TEMPLATE = Path(__file__).with_name("kamailio.cfg")
DISPATCHER_SET = 1


class KamailioError(RuntimeError):
    """Kamailio refused its configuration, failed to start, or does not answer."""


@dataclass(frozen=True)
class EngineHop:
    """One engine of the dispatcher set: where Kamailio sends it requests and OPTIONS pings."""

    host: str
    port: int
    transport: str = "udp"

    def uri(self) -> str:
        suffix = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:{self.host}:{self.port}{suffix}"


@dataclass(frozen=True)
class FrontDoor:
    """What the front door's configuration is made of.

    ``ping_interval`` (s) and ``fr_timer_ms`` decide how soon a dead engine leaves the set: one
    unanswered OPTIONS is enough, so within ping_interval + fr_timer (3 s by default, the
    issue asks for 5 s). ``pike_requests`` per ``pike_seconds`` is one source's flood limit;
    ``rate_invite`` and ``rate_register`` are the site's new calls and REGISTERs per second.
    """

    listen: str
    port: int
    engines: tuple[EngineHop, ...]
    run_dir: Path
    ping_interval: int = 1
    fr_timer_ms: int = 2000
    pike_requests: int = 200
    pike_seconds: int = 2
    rate_invite: int = 2000
    rate_register: int = 2000
    mask_key: str = ""  # topoh's key; a random one when empty
    debug: int = 1  # Kamailio's log level: 1 errors and our xlog warnings, 3 every message

    def __post_init__(self) -> None:
        if not self.engines:
            raise ValueError("a front door needs at least one engine")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} out of range")
        for name in ("ping_interval", "fr_timer_ms", "pike_requests", "pike_seconds", "rate_invite",
                     "rate_register"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def cfg_path(self) -> Path:
        return self.run_dir / "kamailio.cfg"


def render(door: FrontDoor) -> str:
    """The configuration text for ``door`` (the template with every placeholder filled)."""
    values = {
        "LISTEN": door.listen,
        "PORT": str(door.port),
        "RUN_DIR": str(door.run_dir),
        "MASK_IP": door.listen,
        "MASK_KEY": door.mask_key or secrets.token_hex(12),
        "PING_S": str(door.ping_interval),
        "FR_TIMER_MS": str(door.fr_timer_ms),
        "PIKE_REQS": str(door.pike_requests),
        "PIKE_S": str(door.pike_seconds),
        "RATE_INVITE": str(door.rate_invite),
        "RATE_REGISTER": str(door.rate_register),
        "LOG_PREFIX": f"[front-door {door.listen}:{door.port}]",
        "DEBUG": str(door.debug),
    }
    text = CFG_TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        left = text[text.index("{{"):].split("}}", 1)[0] + "}}"
        raise KamailioError(f"kamailio.cfg: placeholder {left} has no value")
    return text


def dispatcher_list(door: FrontDoor) -> str:
    """The dispatcher list file: set 1, one line per engine (``setid uri flags priority``)."""
    return "".join(f"{DISPATCHER_SET} {hop.uri()} 0 0\n" for hop in door.engines)


def write_config(door: FrontDoor) -> Path:
    """Write kamailio.cfg and dispatcher.list into the run directory; the cfg's path."""
    door.run_dir.mkdir(parents=True, exist_ok=True)
    (door.run_dir / "dispatcher.list").write_text(dispatcher_list(door))
    door.cfg_path.write_text(render(door))
    return door.cfg_path


def kamailio_binary() -> str:
    """The kamailio executable (Debian installs it in /usr/sbin, not on every user's PATH)."""
    found = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")
    if found is None:
        raise KamailioError("kamailio is not installed (Debian: apt-get install kamailio)")
    return found


def check(cfg: Path) -> None:
    """``kamailio -c -f cfg``: raise KamailioError with Kamailio's own words when it refuses."""
    res = subprocess.run([kamailio_binary(), "-c", "-f", str(cfg)], capture_output=True, text=True,
                         timeout=30, check=False)
    if res.returncode != 0:
        raise KamailioError(f"kamailio -c refused {cfg}:\n{res.stdout}{res.stderr}")


def options_ping(host: str, port: int, timeout: float = 0.5) -> int | None:
    """Send one OPTIONS over UDP to ``host:port``; the status code of its answer, None if none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))  # the kernel picks our address towards it, for the Via
        lhost, lport = sock.getsockname()
        call_id = uuid.uuid4().hex
        msg = (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {lhost}:{lport};branch=z9hG4bK{call_id[:16]};rport\r\n"
               f"Max-Forwards: 70\r\nTo: <sip:{host}:{port}>\r\n"
               f"From: <sip:probe@{lhost}:{lport}>;tag={call_id[16:24]}\r\n"
               f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        sock.settimeout(timeout)
        sock.send(msg.encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):
                return None
            first = data.split(b"\r\n", 1)[0].split()
            if len(first) >= 2 and first[0] == b"SIP/2.0" and call_id.encode() in data:
                try:
                    return int(first[1])
                except ValueError:
                    return None
        return None


class Kamailio:
    """One Kamailio process serving a `FrontDoor`: `start`, `wait_ready`, `stop`, `running`."""

    def __init__(self, door: FrontDoor) -> None:
        self.door = door
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = door.run_dir / "kamailio.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        run = self.door.run_dir
        # -DD: stay in the foreground (a child we can wait on), -E: log to stderr (our file),
        # -Y/-P/-w: its runtime files in our run directory, not /run/kamailio.
        return [kamailio_binary(), "-DD", "-E", "-f", str(self.door.cfg_path), "-Y", str(run),
                "-P", str(run / "kamailio.pid"), "-w", str(run), "-m", "64", "-M", "8"]

    def start(self, timeout: float = 15.0) -> Kamailio:
        """Write the configuration, check it, start Kamailio and wait until it answers OPTIONS."""
        if self.proc is not None and self.proc.poll() is None:
            raise KamailioError("already running")
        cfg = write_config(self.door)
        check(cfg)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        try:
            self.wait_ready(timeout)
        except KamailioError:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Poll with OPTIONS until Kamailio answers 200; KamailioError if it exits or stays mute."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise KamailioError(f"kamailio exited ({self.returncode()}):\n{self.log_tail()}")
            if options_ping(self.door.listen, self.door.port, timeout=0.2) == 200:
                return
        raise KamailioError(f"kamailio does not answer OPTIONS after {timeout} s:\n{self.log_tail()}")

    def rpc(self, *command: str, timeout: float = 5.0) -> str:
        """``kamcmd`` on this Kamailio's control socket (e.g. ``dispatcher.list``); its output."""
        kamcmd = shutil.which("kamcmd") or shutil.which("kamcmd", path="/usr/sbin:/sbin")
        if kamcmd is None:
            raise KamailioError("kamcmd is not installed (Debian: apt-get install kamailio)")
        res = subprocess.run([kamcmd, "-s", f"unix:{self.door.run_dir / 'kamailio_ctl'}", *command],
                             capture_output=True, text=True, timeout=timeout, check=False)
        if res.returncode != 0:
            raise KamailioError(f"kamcmd {' '.join(command)}: {res.stdout}{res.stderr}".strip())
        return res.stdout

    def set_engines(self, engines: Sequence[EngineHop]) -> None:
        """Replace the dispatcher set while Kamailio runs (the list file, then dispatcher.reload)."""
        self.door = dataclasses.replace(self.door, engines=tuple(engines))
        (self.door.run_dir / "dispatcher.list").write_text(dispatcher_list(self.door))
        self.rpc("dispatcher.reload")

    def active_engines(self) -> set[tuple[str, int]]:
        """The engines the dispatcher would send a new call to now (flags without I or D)."""
        active: set[tuple[str, int]] = set()
        uri = ""
        for line in self.rpc("dispatcher.list").splitlines():
            key, _, value = line.strip().partition(":")
            value = value.strip()
            if key == "URI":
                uri = value
            elif key == "FLAGS" and uri:
                if "I" not in value[:1] and "D" not in value[:1]:
                    host, _, port = uri.removeprefix("sip:").split(";")[0].rpartition(":")
                    active.add((host, int(port)))
                uri = ""
        return active

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL after ``grace`` s (its children die with it)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        stop_group(proc, term_wait=grace, kill_wait=grace)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # workers left behind by a dead main process
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=5.0)

    @contextmanager
    def running(self, timeout: float = 15.0) -> Iterator[Kamailio]:
        self.start(timeout)
        try:
            yield self
        finally:
            self.stop()


def engines_from(addresses: Sequence[str]) -> tuple[EngineHop, ...]:
    """``["127.0.0.11:5060", ...]`` as engine hops (udp); ValueError names a bad one."""
    hops = []
    for item in addresses:
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"engine address {item!r}: want HOST:PORT")
        hops.append(EngineHop(host, int(port)))
    return tuple(hops)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m appliance.cluster.kamailio --listen IP --port N --engine HOST:PORT ... --run-dir DIR``:
    write and check the configuration, then become Kamailio in the foreground (for scripts)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m appliance.cluster.kamailio", description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5060)
    p.add_argument("--engine", action="append", required=True, metavar="HOST:PORT", help="one per engine")
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--check-only", action="store_true", help="write and check the configuration, do not run")
    args = p.parse_args(argv)
    try:
        door = FrontDoor(args.listen, args.port, engines_from(args.engine), args.run_dir.resolve())
        cfg = write_config(door)
        check(cfg)
    except (ValueError, KamailioError, OSError) as exc:
        print(f"front door: {exc}", file=sys.stderr)
        return 1
    if args.check_only:
        print(cfg)
        return 0
    command = Kamailio(door).command()
    os.execv(command[0], command)
    return 1  # not reached: execv replaced this process


if __name__ == "__main__":
    sys.exit(main())
