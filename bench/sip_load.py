"""SIP signalling load through a B2BUA: SIPp UAC -> target -> SIPp UAS, stepped call rates.

    python bench/sip_load.py [--target sippy|plateau] [--rates 50,100,150,200,300]
                             [--seconds 10] [--call-ms 1000] [--recv-timeout-ms 5000]

For each rate the UAC (tests/sipp/load_uac.xml; provisionals are optional="global" so a 180
relayed after the 200 OK is tolerated) places rate*seconds calls of --call-ms each; any message
not answered within --recv-timeout-ms fails its call. Prints attempted/completed/failed per
step and the highest rate with fewer than 0.1 % failed calls.

Targets:
  sippy    sippy's stock `b2bua_simple`, relaying every INVITE to the UAS (-n): the baseline.
  plateau  the Plateau engine (tests.peers.engine.Engine) with extensions 1001-1010; the UAS
           registers as 1002 (SippProcess(register=...)) and the UAC, as 1001, calls 1002,
           answering the engine's digest challenge on every INVITE.
  plateau-trunk  the same engine, but the UAC is a trunk recognised by its address (no digest)
           dialling DID 1002: the path of calls arriving from a carrier.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.modules.pop("tests", None)  # sippy installs a stray top-level `tests`; use ours

from tests.peers.engine import Engine, default_config, free_port, free_port_range
from tests.peers.sipp import SippProcess, auth_row, run_sipp

MAX_FAILED_FRACTION = 0.001


@dataclass
class StepResult:
    """One rate step's outcome, from the UAC's final statistics."""

    rate: int
    attempted: int
    completed: int
    failed: int
    wall_s: float

    @property
    def failed_fraction(self) -> float:
        return self.failed / self.attempted if self.attempted else 1.0


@contextlib.contextmanager
def sippy_target(work: Path) -> Iterator[str]:
    """A SIPp UAS behind sippy's b2bua_simple; yields the B2BUA's "host:port"."""
    with SippProcess(
        "load_uas", workdir=work / "uas", extra_args=["-max_recv_loops", "10000"]
    ) as uas:
        port = free_port()
        log = open(work / "b2bua.log", "wb")  # noqa: SIM115 (outlives this block: the child writes it)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sippy.b2bua_simple",
                "-f",
                "-l",
                "127.0.0.1",
                "-p",
                str(port),
                "-n",
                uas.address,
                "-L",
                str(work / "sippy.log"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=work,
        )
        try:
            time.sleep(1.0)  # sippy binds during start-up; it has no readiness signal
            if proc.poll() is not None:
                raise RuntimeError(
                    f"b2bua_simple exited {proc.returncode}: {(work / 'b2bua.log').read_text()}"
                )
            yield f"127.0.0.1:{port}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()


@contextlib.contextmanager
def _plateau(work: Path, config: dict | None = None) -> Iterator[str]:
    """The Plateau engine with a SIPp UAS registered as 1002; yields the engine's "host:port"."""
    # SIPp 3.6.1 answers only the first challenge and only with MD5: offer MD5 first.
    eng = Engine(work / "engine", config=config, extra_args=["--digest-algorithms", "MD5,SHA-256"])
    eng.rtp_ports = free_port_range(8000)  # two legs per call: room for 2,000 concurrent calls
    eng.start()
    try:
        registrar = f"{eng.sip_ip}:{eng.sip_port}"
        with SippProcess(
            "load_uas",
            workdir=work / "uas",
            register=("1002", eng.secret(1002), registrar),
            extra_args=["-max_recv_loops", "10000"],
        ):
            yield registrar
    finally:
        eng.stop()


UAC_PORT = free_port()  # fixed, so the plateau-trunk target can recognise the UAC as its carrier


def plateau_target(work: Path) -> contextlib.AbstractContextManager[str]:
    """Extension calls: the UAC, as 1001, calls 1002 and answers the digest challenge."""
    return _plateau(work)


def plateau_trunk_target(work: Path) -> contextlib.AbstractContextManager[str]:
    """Carrier calls: the UAC is a trunk recognised by its address (no digest), dialling DID
    1002, which routes to the UAS registered as 1002."""
    cfg = default_config()
    cfg["trunks"] = [{"name": "carrier", "host": "127.0.0.1", "port": UAC_PORT}]
    cfg["inbound_routes"] = [{"did": "1002", "destination": "1002"}]
    return _plateau(work, cfg)


def run_step(
    target: str,
    rate: int,
    seconds: float,
    call_ms: int,
    recv_timeout_ms: int,
    work: Path,
    user: str,
    password: str,
) -> StepResult:
    calls = int(rate * seconds)
    t0 = time.monotonic()
    res = run_sipp(
        "load_uac",
        target,
        service="1002",
        calls=calls,
        rate=rate,
        inject=[auth_row(user, password)],
        extra_args=[
            "-d",
            str(call_ms),
            "-recv_timeout",
            str(recv_timeout_ms),
            "-l",
            str(rate * 10),
            "-max_recv_loops",
            "10000",
            "-max_sched_loops",
            "10000",
        ],
        timeout=seconds + call_ms / 1000 + recv_timeout_ms / 1000 * 8 + 30,
        workdir=work / f"uac-{rate}",
        local_port=UAC_PORT,
    )
    return StepResult(rate, res.created, res.successful, res.failed, time.monotonic() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--target", choices=("sippy", "plateau", "plateau-trunk"), default="sippy")
    ap.add_argument(
        "--rates", default="50,100,150,200,300", help="calls per second, comma-separated"
    )
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each step")
    ap.add_argument("--call-ms", type=int, default=1000, help="call duration between ACK and BYE")
    ap.add_argument("--recv-timeout-ms", type=int, default=5000, help="per-message timeout")
    ap.add_argument("--workdir", default=None, help="keep SIPp logs here (default: a temp dir)")
    args = ap.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="sip_load-"))
    work.mkdir(parents=True, exist_ok=True)
    target_cm = {"sippy": sippy_target, "plateau": plateau_target,
                 "plateau-trunk": plateau_trunk_target}[args.target]
    results: list[StepResult] = []
    print(
        f"target={args.target} steps={rates} cps x {args.seconds:g} s, calls {args.call_ms} ms, "
        f"per-message timeout {args.recv_timeout_ms} ms, logs in {work}"
    )
    print(
        f"{'rate':>6} {'attempted':>10} {'completed':>10} {'failed':>7} {'failed%':>8} {'wall s':>7}"
    )
    with target_cm(work) as target:
        for rate in rates:
            r = run_step(
                target,
                rate,
                args.seconds,
                args.call_ms,
                args.recv_timeout_ms,
                work,
                "1001",
                "secret1001",
            )
            results.append(r)
            print(
                f"{r.rate:>6} {r.attempted:>10} {r.completed:>10} {r.failed:>7} "
                f"{100 * r.failed_fraction:>7.2f}% {r.wall_s:>7.1f}",
                flush=True,
            )
    good = [r.rate for r in results if r.attempted and r.failed_fraction < MAX_FAILED_FRACTION]
    print(
        f"highest rate with < {100 * MAX_FAILED_FRACTION:g} % failed calls: "
        f"{max(good) if good else 'none'} cps"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
