"""SIPp (sip-tester) as a test peer: `run_sipp` for a UAC run, `SippProcess` for a background UAS.

Scenarios live in tests/sipp/. Injection fields used by them (build rows with `auth_row`):
[field0] user, [field1] a whole `[authentication username=U password=P]` keyword (SIPp 3.6.1
does not expand [fieldN] inside that keyword, but does expand a field holding all of it),
[field2] a second extension (REFER target). The callee is `service` (-s). The twin registrar
uas_registrar.xml takes plain rows: [field0] user, [field1] password.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from tests.peers.engine import free_port
from tests.peers.process import stop_group

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "sipp"
SIPP = "sipp"


class SippError(RuntimeError):
    """SIPp could not start, or a background UAS did not bind its port in time."""


@dataclass
class SippResult:
    """Outcome of one SIPp run: exit code (0 = every call succeeded), last statistics row."""

    returncode: int
    stats: dict[str, str] = field(default_factory=dict)
    stderr: str = ""
    messages: str = ""
    errors: str = ""

    @property
    def successful(self) -> int:
        return int(self.stats.get("SuccessfulCall(C)", "0") or 0)

    @property
    def failed(self) -> int:
        return int(self.stats.get("FailedCall(C)", "0") or 0)

    @property
    def created(self) -> int:
        return int(self.stats.get("TotalCallCreated", "0") or 0)

    def explain(self) -> str:
        """A readable summary for assertion messages."""
        return (
            f"sipp rc={self.returncode} created={self.created} ok={self.successful} "
            f"failed={self.failed}\nstderr:\n{self.stderr[-2000:]}\nerrors:\n{self.errors[-3000:]}"
            f"\nmessages:\n{self.messages[-4000:]}"
        )


def scenario_path(scenario: str | Path) -> Path:
    """Resolve "uac_call" / "uac_call.xml" / a path to a scenario file."""
    p = Path(scenario)
    if p.exists():
        return p
    name = p.name if p.suffix == ".xml" else p.name + ".xml"
    q = SCENARIO_DIR / name
    if not q.exists():
        raise SippError(f"no scenario {scenario} (looked in {SCENARIO_DIR})")
    return q


def auth_row(user: str, password: str, *more: str) -> list[str]:
    """An injection row for the client scenarios: user, digest credentials keyword, extras."""
    return [user, f"[authentication username={user} password={password}]", *more]


def write_injection(path: Path, rows: list[list[str]] | list[tuple[str, ...]]) -> Path:
    """Write a SIPp -inf CSV ("SEQUENTIAL", then one `;`-separated row per call)."""
    path.write_text("SEQUENTIAL\n" + "".join(";".join(r) + ";\n" for r in rows))
    return path


def parse_stats(csv_text: str) -> dict[str, str]:
    """Last data row of a SIPp -trace_stat CSV as {column: value}."""
    lines = [ln for ln in csv_text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return {}
    head = lines[0].rstrip(";").split(";")
    row = lines[-1].rstrip(";").split(";")
    return dict(zip(head, row))


def _base_args(
    scenario: str | Path,
    target: str,
    workdir: Path,
    *,
    service: str | None,
    inject: list[list[str]] | None,
    local_port: int,
    transport: str,
    keys: dict[str, str] | None,
    extra_args: list[str] | None,
) -> list[str]:
    if transport not in ("u1", "t1", "un", "tn"):
        raise ValueError(f"transport must be u1/t1/un/tn, got {transport!r}")
    args = [
        SIPP,
        target,
        "-sf",
        str(scenario_path(scenario)),
        "-i",
        "127.0.0.1",
        "-p",
        str(local_port),
        "-t",
        transport,
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(workdir / "stats.csv"),
        "-fd",
        "1",
        "-trace_msg",
        "-message_file",
        str(workdir / "messages.log"),
        "-trace_err",
        "-error_file",
        str(workdir / "errors.log"),
        "-max_recv_loops",
        "1000",
        "-timeout_error",
    ]
    if service is not None:
        args += ["-s", service]
    extra = list(extra_args or [])
    callee = service if service is not None else (extra[extra.index("-s") + 1] if "-s" in extra[:-1] else None)
    if callee is not None and target and "-auth_uri" not in extra:
        # SIPp's digest uri defaults to sip:remote_ip:remote_port; the engine requires the
        # Request-URI (RFC 2617 §3.2.2.5), which the INVITE scenarios build as
        # sip:[service]@[remote_ip]:[remote_port] (REGISTER scenarios run without a service).
        args += ["-auth_uri", f"{callee}@{target}"]
    if inject:
        args += ["-inf", str(write_injection(workdir / "inject.csv", inject))]
    for k, v in (keys or {}).items():
        args += ["-key", k, v]
    return args + list(extra_args or [])


def _read(p: Path) -> str:
    try:
        return p.read_text(errors="replace")
    except OSError:
        return ""


def run_sipp(
    scenario: str | Path,
    target: str,
    *,
    service: str | None = None,
    calls: int = 1,
    rate: float | None = None,
    local_port: int = 0,
    transport: str = "u1",
    inject: list[list[str]] | None = None,
    keys: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    timeout: float = 30.0,
    workdir: str | Path | None = None,
) -> SippResult:
    """Run a client scenario against `target` ("host:port") until `calls` calls are done."""
    wd = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sipp-"))
    wd.mkdir(parents=True, exist_ok=True)
    args = _base_args(
        scenario,
        target,
        wd,
        service=service,
        inject=inject,
        local_port=local_port or free_port(),
        transport=transport,
        keys=keys,
        extra_args=extra_args,
    )
    args += ["-m", str(calls), "-timeout", f"{int(timeout)}s"]
    if rate is not None:
        args += ["-r", str(rate)]
    proc = subprocess.Popen(
        args,
        cwd=wd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout + 10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    return SippResult(
        returncode=proc.returncode,
        stats=parse_stats(_read(wd / "stats.csv")),
        stderr=err.decode(errors="replace"),
        messages=_read(wd / "messages.log"),
        errors=_read(wd / "errors.log"),
    )


def _port_bound(port: int, transport: str) -> bool:
    """True if something holds `port` on 127.0.0.1 (UDP: our bind fails; TCP: connect works)."""
    if transport.startswith("t"):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class SippProcess:
    """A background SIPp (usually a UAS) on a fixed port; context manager, killed on exit.

    With `register=(user, password, "host:port")` the port is first REGISTERed (register_auth.xml
    run from the same local port, so the Contact is this UAS) before the UAS starts.
    """

    def __init__(
        self,
        scenario: str | Path,
        *,
        local_port: int = 0,
        transport: str = "u1",
        target: str | None = None,
        register: tuple[str, str, str] | None = None,
        calls: int | None = None,
        keys: dict[str, str] | None = None,
        inject: list[list[str]] | None = None,
        extra_args: list[str] | None = None,
        workdir: str | Path | None = None,
        start_timeout: float = 5.0,
    ) -> None:
        self.scenario = scenario
        self.port = local_port or free_port()
        self.transport = transport
        self.target = target
        self.register = register
        self.calls = calls
        self.keys = keys
        self.inject = inject
        self.extra_args = extra_args
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="sipp-uas-"))
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.register_result: SippResult | None = None
        self._rc: int | None = None

    def start(self) -> SippProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.register is not None:
            user, password, registrar = self.register
            self.register_result = run_sipp(
                "register_auth",
                registrar,
                inject=[auth_row(user, password)],
                local_port=self.port,
                transport=self.transport,
                timeout=10,
                workdir=self.workdir / "register",
            )
            if self.register_result.returncode != 0:
                raise SippError(f"REGISTER of the UAS failed:\n{self.register_result.explain()}")
            # The UDP socket of the finished register run is closed; wait until the port is free.
            deadline = time.monotonic() + 2.0
            while _port_bound(self.port, "u1") and time.monotonic() < deadline:
                time.sleep(0.02)
        args = _base_args(
            self.scenario,
            self.target or "",
            self.workdir,
            service=None,
            inject=self.inject,
            local_port=self.port,
            transport=self.transport,
            keys=self.keys,
            extra_args=self.extra_args,
        )
        if not self.target:
            args.remove("")
        if self.calls is not None:
            args += ["-m", str(self.calls)]
        self.proc = subprocess.Popen(
            args,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while not _port_bound(self.port, self.transport):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise SippError(f"sipp UAS exited {self.proc.returncode}: {err}")
            if time.monotonic() > deadline:
                self.stop()
                raise SippError(f"sipp UAS did not bind port {self.port}")
            time.sleep(0.02)
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait(self, timeout: float = 30.0) -> SippResult:
        """Wait for the UAS to finish its `calls` (needs calls=N) and return its result."""
        if self.proc is None:
            raise SippError("not started")
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
        return self.result()

    def result(self) -> SippResult:
        rc = self.proc.returncode if self.proc is not None else self._rc
        return SippResult(
            returncode=rc if rc is not None else -1,
            stats=parse_stats(_read(self.workdir / "stats.csv")),
            stderr="",
            messages=_read(self.workdir / "messages.log"),
            errors=_read(self.workdir / "errors.log"),
        )

    def stop(self) -> None:
        """SIGTERM (SIPp writes its final stats), then SIGKILL; idempotent."""
        proc = self.proc
        if proc is None:
            return
        stop_group(proc)
        if proc.stderr is not None:
            proc.stderr.close()
        self.proc = None
        self._rc = proc.returncode
