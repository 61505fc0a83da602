"""SIP signalling load through a B2BUA: SIPp UAC -> target -> SIPp UAS, stepped call rates.

    python bench/sip_load.py [--targets sippy,plateau] [--rates 50,100,150,200,300 | 100:200:10]
                             [--repeat N]
                             [--seconds 10] [--call-ms 1000] [--recv-timeout-ms 5000]
                             [--overload 3] [--capacity CPS] [--goodput-target 0.9]

For each target in turn and each rate the UAC (tests/sipp/load_uac.xml; provisionals are
optional="global" so a 180 relayed after the 200 OK is tolerated) places rate*seconds calls of
--call-ms each; any message not answered within --recv-timeout-ms fails its call. Prints
offered/attempted/completed/failed, goodput (completed calls per second), the target's CPU
per completed call (user + system time of its processes: the B2BUA, or the engine and its media
process) and, for Plateau, the control messages its media process received per call, per step,
the highest rate with fewer than 0.1 % failed calls (the capacity), each
Plateau target's capacity as a ratio to sippy's in the same run, then an overload step at
--overload x capacity with --standing-calls long calls set up before it. Exits 1 when a Plateau
target's overload goodput is below --goodput-target x capacity or a standing call failed.

Targets:
  sippy    sippy's stock `b2bua_simple`, relaying every INVITE to the UAS (-n): the baseline.
  plateau  the Plateau engine (tests.peers.engine.Engine) with extensions 1001-1010; the UAS
           registers as 1002 (SippProcess(register=...)) and the UAC, as 1001, calls 1002,
           answering the engine's digest challenge on every INVITE.
  plateau-trunk  the same engine, but the UAC is a trunk recognised by its address (no digest)
           dialling DID 1002: the path of calls arriving from a carrier.
  plateau-reuse  the plateau target, but each SIPp run places two calls that share one nonce
           (tests/sipp/uac_two_calls_one_nonce.xml: the second INVITE answers the first call's
           challenge again with nc=00000002, RFC 7616 §3.4), as phones that cache credentials
           do: one 407 per two calls. A rate R starts R/2 runs per second (R calls/s); a run
           counts as two calls, completed or failed together.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
    cpu_s: float = 0.0  # the target's processes, during the step
    media_requests: int | None = None  # control messages the media process received

    @property
    def media_per_call(self) -> float | None:
        if self.media_requests is None or not self.attempted:
            return None
        return self.media_requests / self.attempted

    @property
    def failed_fraction(self) -> float:
        return self.failed / self.attempted if self.attempted else 1.0

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu_s / self.completed if self.completed else 0.0


@dataclass
class Target:
    """A running target: where the UAC sends, and the processes whose CPU a step costs."""

    address: str
    pids: Callable[[], list[int]] = field(default=lambda: [])
    # the media process's control counters (messages received), where the target has one
    media_requests: Callable[[], int | None] | None = None


def process_cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (/proc/PID/stat fields 14 and 15)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited: its time is lost, the step's figure is a lower bound
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@contextlib.contextmanager
def sippy_target(work: Path) -> Iterator[Target]:
    """A SIPp UAS behind sippy's b2bua_simple; yields the B2BUA's "host:port" and pid."""
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
            yield Target(f"127.0.0.1:{port}", lambda: [proc.pid])
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
def _plateau(work: Path, config: dict | None = None) -> Iterator[Target]:
    """The Plateau engine with a SIPp UAS registered as 1002; yields the engine's "host:port"
    and the pids of the engine and its media process."""
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
            yield Target(registrar, lambda: [p for p in (eng.pid, eng.media_pid()) if p is not None],
                         lambda: _media_requests(eng))
    finally:
        eng.stop()


def _media_requests(eng: Engine) -> int | None:
    """Control messages the engine's media process has received (None: not reported)."""
    status = eng.api("GET", "/v1/status")[1]
    control = status.get("media", {}).get("control") if isinstance(status, dict) else None
    return int(control["requests"]) if isinstance(control, dict) else None


UAC_PORT = free_port()  # fixed, so the plateau-trunk target can recognise the UAC as its carrier


def plateau_target(work: Path) -> contextlib.AbstractContextManager[Target]:
    """Extension calls: the UAC, as 1001, calls 1002 and answers the digest challenge."""
    return _plateau(work)


def plateau_trunk_target(work: Path) -> contextlib.AbstractContextManager[Target]:
    """Carrier calls: the UAC is a trunk recognised by its address (no digest), dialling DID
    1002, which routes to the UAS registered as 1002."""
    cfg = default_config()
    cfg["trunks"] = [{"name": "carrier", "host": "127.0.0.1", "port": UAC_PORT}]
    cfg["inbound_routes"] = [{"did": "1002", "destination": "1002"}]
    return _plateau(work, cfg)


def run_step(
    target: Target,
    rate: int,
    seconds: float,
    call_ms: int,
    recv_timeout_ms: int,
    work: Path,
    user: str,
    password: str,
    scenario: str = "load_uac",
    calls_per_run: int = 1,
) -> StepResult:
    runs_per_s = rate / calls_per_run
    calls = int(runs_per_s * seconds)
    pids = target.pids()
    media0 = target.media_requests() if target.media_requests else None
    cpu0 = process_cpu_s(pids)
    t0 = time.monotonic()
    res = run_sipp(
        scenario,
        target.address,
        service="1002",
        calls=calls,
        rate=runs_per_s,
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
    n = calls_per_run
    cpu = process_cpu_s(pids) - cpu0
    # two status queries (before and after) are among the media requests counted
    media1 = target.media_requests() if target.media_requests else None
    media = media1 - media0 - 1 if media1 is not None and media0 is not None else None
    return StepResult(rate, n * res.created, n * res.successful, n * res.failed, time.monotonic() - t0,
                      cpu, media)


@dataclass
class OverloadResult:
    """The step at ``factor`` x capacity, with the standing calls placed before it."""

    capacity: int
    step: StepResult
    seconds: float
    standing: int
    standing_ok: int

    @property
    def goodput(self) -> float:
        return self.step.completed / self.seconds

    @property
    def ratio(self) -> float:
        return self.goodput / self.capacity if self.capacity else 0.0


def overload_step(target: Target, capacity: int, factor: float, args: argparse.Namespace,
                  work: Path) -> OverloadResult:
    """Calls already up (``--standing-calls`` long calls at a low rate), then ``factor`` x capacity.

    The standing calls last the whole step; they must all complete (calls up are unaffected).
    """
    rate = max(1, round(capacity * factor))
    standing_rate = 10
    hold_ms = int((args.standing_calls / standing_rate + args.seconds + 5) * 1000)
    box: dict[str, object] = {}

    def standing() -> None:
        box["res"] = run_sipp(
            "load_uac", target.address, service="1002", calls=args.standing_calls, rate=standing_rate,
            inject=[auth_row("1003", "secret1003")],
            extra_args=["-d", str(hold_ms), "-recv_timeout", str(args.recv_timeout_ms * 4)],
            timeout=hold_ms / 1000 + 60, workdir=work / f"standing-{rate}",
        )

    bg = threading.Thread(target=standing, name="standing-calls")
    bg.start()
    time.sleep(args.standing_calls / standing_rate + 1.0)  # all standing calls placed and up
    step = run_step(target, rate, args.seconds, args.call_ms, args.recv_timeout_ms, work, "1001", "secret1001")
    bg.join()
    res = box.get("res")
    ok = res.successful if res is not None else 0  # type: ignore[attr-defined]
    return OverloadResult(capacity, step, args.seconds, args.standing_calls, ok)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--targets", "--target", default="sippy,plateau",
                    help="comma-separated: sippy, plateau, plateau-trunk, plateau-reuse (run one after the other)")
    ap.add_argument(
        "--rates", default="50,100,150,200,300",
        help="calls per second, comma-separated; START:STOP:STEP is every STEP from START to STOP "
             "(e.g. 100:200:10), so a capacity is measured, not quantised by coarse steps")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every target this many times, in turn (sippy, plateau, sippy, ...); "
                         "prints each run's capacities and same-run ratios, then their medians")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each step")
    ap.add_argument("--call-ms", type=int, default=1000, help="call duration between ACK and BYE")
    ap.add_argument("--recv-timeout-ms", type=int, default=5000, help="per-message timeout")
    ap.add_argument("--overload", type=float, default=3.0,
                    help="then a step at this multiple of the capacity found (0: none)")
    ap.add_argument("--capacity", type=int, default=None,
                    help="capacity in cps for the overload step, instead of the one found")
    ap.add_argument("--goodput-target", type=float, default=0.9,
                    help="exit 1 if a Plateau target's overload goodput is below this x capacity")
    ap.add_argument("--standing-calls", type=int, default=40,
                    help="long calls set up before the overload step; all must complete")
    ap.add_argument("--workdir", default=None, help="keep SIPp logs here (default: a temp dir)")
    args = ap.parse_args(argv)
    rates = parse_rates(args.rates)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    cms = {"sippy": sippy_target, "plateau": plateau_target, "plateau-trunk": plateau_trunk_target,
           "plateau-reuse": plateau_target}
    uacs = {"plateau-reuse": ("uac_two_calls_one_nonce", 2)}
    unknown = [t for t in targets if t not in cms]
    if unknown:
        ap.error(f"unknown target(s): {', '.join(unknown)}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="sip_load-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"targets={targets} steps={rates} cps x {args.seconds:g} s, calls {args.call_ms} ms, "
        f"per-message timeout {args.recv_timeout_ms} ms, overload {args.overload:g}x, logs in {work}"
    )
    print(f"{'target':>14} {'offered/s':>9} {'attempted':>10} {'completed':>10} {'failed':>7} "
          f"{'failed%':>8} {'goodput/s':>9} {'wall s':>7} {'cpu ms/call':>11} {'media msg/call':>14}")
    code = 0
    runs: list[dict[str, int]] = []
    for run in range(1, args.repeat + 1):
        steps: dict[str, list[StepResult]] = {}
        overloads: dict[str, OverloadResult] = {}
        for name in targets:
            tw = work / f"run{run}" / name if args.repeat > 1 else work / name
            tw.mkdir(parents=True, exist_ok=True)
            results = steps[name] = []
            with cms[name](tw) as target:
                for rate in rates:
                    r = run_step(target, rate, args.seconds, args.call_ms, args.recv_timeout_ms, tw,
                                 "1001", "secret1001", *uacs.get(name, ("load_uac", 1)))
                    results.append(r)
                    _print_step(name, r, args.seconds)
                capacity = args.capacity or capacity_of(results)
                if args.overload > 0 and capacity and name not in ("plateau-trunk", "plateau-reuse"):
                    ov = overloads[name] = overload_step(target, capacity, args.overload, args, tw)
                    _print_step(name, ov.step, args.seconds)
        if args.repeat > 1:
            print(f"\n-- run {run} of {args.repeat} --")
        code |= _summary(steps, overloads, args)
        runs.append({n: capacity_of(steps[n]) for n in steps})
    if args.repeat > 1:
        _medians(runs)
    return code


def parse_rates(spec: str) -> list[int]:
    """"50,100" or "100:200:10" (every 10 from 100 to 200), or both mixed; sorted, no repeats."""
    rates: set[int] = set()
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        if ":" in item:
            start, stop, step = (int(x) for x in item.split(":"))
            if step <= 0 or start > stop:
                raise ValueError(f"bad rate range {item!r}: START:STOP:STEP with START <= STOP, STEP > 0")
            rates.update(range(start, stop + 1, step))
        else:
            rates.add(int(item))
    return sorted(rates)


def _medians(runs: list[dict[str, int]]) -> None:
    """Each target's median capacity over the runs, and the median of the same-run ratios."""
    print(f"\nover {len(runs)} runs:")
    for n in runs[0]:
        caps = [r[n] for r in runs]
        line = f"{n}: capacities {caps}, median {statistics.median(caps):g} cps"
        if n != "sippy" and all(r.get("sippy") for r in runs):
            ratios = [r[n] / r["sippy"] for r in runs]
            line += (f"; same-run ratios to sippy {', '.join(f'{x:.2f}' for x in ratios)}, "
                     f"median {statistics.median(ratios):.2f}x")
        print(line)


def _print_step(name: str, r: StepResult, seconds: float) -> None:
    print(f"{name:>14} {r.rate:>9} {r.attempted:>10} {r.completed:>10} {r.failed:>7} "
          f"{100 * r.failed_fraction:>7.2f}% {r.completed / seconds:>9.1f} {r.wall_s:>7.1f} "
          f"{r.cpu_ms_per_call:>11.2f} "
          f"{'' if r.media_per_call is None else format(r.media_per_call, '.2f'):>14}", flush=True)


def capacity_of(results: list[StepResult]) -> int:
    """The highest offered rate with fewer than MAX_FAILED_FRACTION failed calls (0: none)."""
    good = [r.rate for r in results if r.attempted and r.failed_fraction < MAX_FAILED_FRACTION]
    return max(good) if good else 0


def _summary(steps: dict[str, list[StepResult]], overloads: dict[str, OverloadResult],
             args: argparse.Namespace) -> int:
    """Goodput per step side by side, capacity, and the overload verdict; the exit code."""
    names = list(steps)
    rates = sorted({r.rate for rs in steps.values() for r in rs})
    print()
    print("goodput (completed calls/s) per offered rate:")
    print(f"{'offered/s':>9} " + " ".join(f"{n:>16}" for n in names))
    for rate in rates:
        cells = []
        for n in names:
            r = next((x for x in steps[n] if x.rate == rate), None)
            cells.append(f"{r.completed / args.seconds:>7.1f} ({r.completed}/{r.attempted})" if r else "")
        print(f"{rate:>9} " + " ".join(f"{c:>16}" for c in cells))
    failed = False
    capacities = {n: capacity_of(steps[n]) for n in names}
    anchor = capacities.get("sippy", 0)
    for n in names:
        clean = [r for r in steps[n] if r.attempted and r.failed_fraction < MAX_FAILED_FRACTION]
        cpu = statistics.median(r.cpu_ms_per_call for r in clean) if clean else 0.0
        ratio = f" = {capacities[n] / anchor:.2f}x sippy's" if anchor and n != "sippy" else ""
        print(f"{n}: highest rate with < {100 * MAX_FAILED_FRACTION:g} % failed calls: "
              f"{capacities[n] or 'none'} cps{ratio}; CPU per call at the clean steps (median) {cpu:.2f} ms")
        ov = overloads.get(n)
        if ov is None:
            continue
        verdict = ""
        if n.startswith("plateau"):
            ok = ov.ratio >= args.goodput_target and ov.standing_ok == ov.standing
            failed |= not ok
            verdict = "  OK" if ok else f"  BELOW TARGET ({args.goodput_target:.0%} of capacity, all standing calls)"
        print(f"{n}: overload {ov.step.rate} cps offered ({args.overload:g}x {ov.capacity}): goodput "
              f"{ov.goodput:.1f}/s = {ov.ratio:.0%} of capacity; standing calls "
              f"{ov.standing_ok}/{ov.standing} completed{verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
