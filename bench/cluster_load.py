"""SIP load through Kamailio to one engine and to two, in the same run; RTP over two; failover time.

    python bench/cluster_load.py [--rates 25,50,75,100,150,200] [--seconds 10] [--call-ms 1000]
                                 [--recv-timeout-ms 5000] [--rtp-calls 100] [--rtp-hold 30]
                                 [--failover-rate 40] [--workdir DIR]

One PostgreSQL server (tests/peers/postgres.py), two engines on it (tests.peers.engine.Engine,
nodes one and two), and the repository's Kamailio configuration (tests/peers/kamailio.py) in
front: a SIPp UAS registered as 1002, a SIPp UAC calling it as 1001 with digest, stepped rates
as bench/sip_load.py drives them (its `run_step`), against three targets one after the other:

  direct  the UAC sends to engine one itself (no Kamailio): the baseline of CPU per call;
  k1      Kamailio with engine one alone in its dispatcher set;
  k2      Kamailio with both engines (Call-ID hash).

Per step: attempted / completed / failed, and CPU per completed call from /proc (utime + stime
of each engine's process and its media child, of Kamailio's processes, of the PostgreSQL server
and its backends, of the SIPp peers), less
what those processes spend idle (measured for 3 s before each target's steps).
Then: concurrent anchored calls with RTP through k2 (SIPp rtp_stream both ways, as
bench/pbx_load.py), counted on each engine with their media late/lost figures; and the failover
time: under a steady load through k2, engine two is killed with SIGKILL (its process group, the
media child too) and the time from the kill to the first call placed after it that completes
(on the survivor: the dead one cannot) is read from the site's CDRs.

Targets, and when they apply (the exit code is 1 only for a target that applies and is missed):
  - CPU per call through Kamailio (k1: Kamailio + engine) within 15 % of a direct call (engine):
    always (CPU time per call does not depend on how many cores there are);
  - k2 completes >= 1.7x the calls of k1 (capacities, highest step with < 0.1 % failed): only
    with at least 4 cores (os.cpu_count()): two engine loops need a core each (the SIP loop is
    one Python thread under the GIL), and Kamailio, the media processes and the SIPp peers need
    the rest. Below that the figure is reported with the per-core model's prediction for this box
    and for an 8-core box: cps(n engines, C cores) = min(n x 1000/sip_ms, n x 1000/media_ms,
    C x 1000/(sip_ms + media_ms + kamailio_ms + db_ms [+ sipp_ms on a box that also runs the peers])),
    each term a measured CPU ms per call.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
sys.modules.pop("tests", None)  # sippy installs a stray top-level `tests`; use ours

from appliance.cluster.kamailio import Kamailio
from appliance.store.db import Store
from appliance.system.process_group import process_table
from bench.pbx_load import CLK_TCK, children, cpu_ticks, write_ulaw_wav
from bench.sip_load import MAX_FAILED_FRACTION, StepResult, Target, run_step
from tests.peers.engine import Engine, free_port_range
from tests.peers.kamailio import front_door
from tests.peers.postgres import PostgresServer
from tests.peers.sipp import SippProcess, auth_row, run_sipp

KAMAILIO_TARGET = 0.15  # CPU per call through Kamailio at most 15 % above a direct call
SCALE_TARGET = 1.7  # two engines complete at least 1.7x the calls of one
SCALE_MIN_CORES = 4
# The flood limits are for phones; the bench's one UAC is a single source far above them.
UNLIMITED = {"pike_requests": 1_000_000, "pike_seconds": 1, "rate_invite": 1_000_000, "rate_register": 1_000_000}


@dataclass
class Cpu:
    """CPU seconds of each part over one measured stretch."""

    sip: float = 0.0  # the engines' own processes (SIP loop, API, store threads)
    media: float = 0.0  # their media children
    kamailio: float = 0.0
    sipp: float = 0.0  # the UAS (persistent) and the UAC runs reaped in the stretch
    db: float = 0.0  # the PostgreSQL server: its postmaster and every backend

    def minus(self, idle: Cpu, seconds: float) -> Cpu:
        """This stretch less what the same parts spend idle in SECONDS (IDLE: per second)."""
        return Cpu(max(0.0, self.sip - idle.sip * seconds), max(0.0, self.media - idle.media * seconds),
                   max(0.0, self.kamailio - idle.kamailio * seconds), self.sipp,
                   max(0.0, self.db - idle.db * seconds))

    def per_call_ms(self, calls: int) -> dict[str, float]:
        n = max(1, calls)
        return {"sip": 1000 * self.sip / n, "media": 1000 * self.media / n,
                "kamailio": 1000 * self.kamailio / n, "db": 1000 * self.db / n, "sipp": 1000 * self.sipp / n}


@dataclass
class Parts:
    """The processes whose CPU a target's steps count."""

    engines: list[Engine]
    kamailio: Kamailio | None
    uas: SippProcess
    db_root: int  # the PostgreSQL server's launched process (runuser as root, or postgres)
    _kam_pids: list[int] = field(default_factory=list)

    def sample(self) -> tuple[int, int, int, int, float, int]:
        sip = media = 0
        for eng in self.engines:
            sip += cpu_ticks([eng.pid or 0])
            media += cpu_ticks(children(eng.pid or 0))
        kam = 0
        if self.kamailio is not None and self.kamailio.pid is not None:
            if not self._kam_pids:
                self._kam_pids = [self.kamailio.pid, *children(self.kamailio.pid)]
            kam = cpu_ticks(self._kam_pids)
        uas = cpu_ticks([self.uas.proc.pid]) if self.uas.proc is not None else 0
        reaped = os.times()
        return sip, media, kam, uas, reaped.children_user + reaped.children_system, tree_ticks(self.db_root)

    def idle(self, seconds: float = 3.0) -> Cpu:
        """CPU seconds per second of these parts with no call: the media tick every 20 ms, the
        keepalives, the store's listener. Subtracted from each step, so a step's CPU per call is
        what a call adds, the figure the per-core model scales."""
        before = self.sample()
        time.sleep(seconds)
        cpu = self.since(before)
        return Cpu(cpu.sip / seconds, cpu.media / seconds, cpu.kamailio / seconds, 0.0, cpu.db / seconds)

    def since(self, before: tuple[int, int, int, int, float, int]) -> Cpu:
        now = self.sample()
        return Cpu((now[0] - before[0]) / CLK_TCK, (now[1] - before[1]) / CLK_TCK,
                   (now[2] - before[2]) / CLK_TCK, (now[3] - before[3]) / CLK_TCK + now[4] - before[4],
                   (now[5] - before[5]) / CLK_TCK)


def tree_ticks(root: int) -> int:
    """utime + stime of ROOT and every live descendant (PostgreSQL's backends: each calls setsid,
    so the server's process group does not hold them)."""
    stats = {pid: (int(f[1]), int(f[11]) + int(f[12])) for pid, f in process_table().items()}  # ppid, ticks
    total, frontier = 0, [root]
    while frontier:
        pid = frontier.pop()
        total += stats.get(pid, (0, 0))[1]
        frontier += [child for child, (ppid, _) in stats.items() if ppid == pid]
    return total


@dataclass
class Measured:
    step: StepResult
    cpu: Cpu

    @property
    def ok(self) -> bool:
        return self.step.attempted > 0 and self.step.failed_fraction < MAX_FAILED_FRACTION


def _steps(name: str, target: str, parts: Parts, args: argparse.Namespace, work: Path) -> list[Measured]:
    out = []
    idle = parts.idle()
    print(f"{name:>7} idle: engines {100 * idle.sip:.1f} %, media {100 * idle.media:.1f} %, "
          f"Kamailio {100 * idle.kamailio:.1f} %, PostgreSQL {100 * idle.db:.1f} % of a core (subtracted below)",
          flush=True)
    for rate in args.rates:
        before, t0 = parts.sample(), time.monotonic()
        # The CPU is this script's own accounting (Parts), so the target's pids stay empty here.
        step = run_step(Target(target), rate, args.seconds, args.call_ms, args.recv_timeout_ms, work / name,
                        "1001", "secret1001")
        m = Measured(step, parts.since(before).minus(idle, time.monotonic() - t0))
        out.append(m)
        ms = m.cpu.per_call_ms(step.completed)
        print(f"{name:>7} {rate:>9} {step.attempted:>9} {step.completed:>9} {step.failed:>6} "
              f"{100 * step.failed_fraction:>7.2f}% {ms['sip']:>7.2f} {ms['media']:>7.2f} {ms['kamailio']:>7.2f} "
              f"{ms['db']:>7.2f} {ms['sipp']:>7.2f}", flush=True)
    return out


def _capacity(results: list[Measured]) -> int:
    good = [m.step.rate for m in results if m.ok]
    return max(good) if good else 0


def _cost(results: list[Measured], rates: set[int]) -> dict[str, float]:
    """Median CPU ms per call of each part over the steps at RATES that passed."""
    rows = [m.cpu.per_call_ms(m.step.completed) for m in results if m.ok and m.step.rate in rates]
    if not rows:
        return {}
    return {part: statistics.median(r[part] for r in rows) for part in rows[0]}


def model_cps(cost: dict[str, float], engines: int, cores: float, with_peers: bool) -> float:
    """The per-core model: each engine's SIP loop and media process at most one core each; the
    whole box at most CORES of the parts' summed cost per call."""
    per_call = cost["sip"] + cost["media"] + cost["kamailio"] + cost["db"] + (cost["sipp"] if with_peers else 0.0)
    bounds = [engines * 1000.0 / cost["sip"], cores * 1000.0 / per_call]
    if cost["media"] > 0:
        bounds.append(engines * 1000.0 / cost["media"])
    return min(bounds)


@contextlib.contextmanager
def _site(work: Path) -> Iterator[tuple[Engine, Engine, SippProcess, int]]:
    pg = PostgresServer()
    pg.start()
    try:
        db = pg.new_database()
        engines = []
        for name in ("one", "two"):
            eng = Engine(work / name, db=db, extra_args=["--node", name, "--digest-algorithms", "MD5,SHA-256"])
            eng.rtp_ports = free_port_range(4000)
            engines.append(eng)
        with contextlib.ExitStack() as stack:
            for eng in engines:
                eng.start()
                stack.callback(eng.stop)
            one, two = engines
            # Registered on engine one; engine two finds the binding in the site's store.
            uas = stack.enter_context(SippProcess(
                "load_uas", workdir=work / "uas", register=("1002", one.secret(1002), f"{one.sip_ip}:{one.sip_port}"),
                extra_args=["-max_recv_loops", "10000"]))
            yield one, two, uas, pg.proc.pid if pg.proc is not None else 0
    finally:
        pg.stop()


def _rtp_over_two(door: str, one: Engine, two: Engine, args: argparse.Namespace, work: Path) -> bool:
    """Concurrent anchored calls with RTP through the front door; True when all were up."""
    ramp = args.rtp_calls / args.rtp_rate
    call_ms = int((ramp + args.rtp_hold) * 1000)
    for d in ("rtp_uas", "rtp_uac"):
        (work / d).mkdir(parents=True, exist_ok=True)
    write_ulaw_wav(work / "rtp_uas" / "tone.ulaw.wav")
    write_ulaw_wav(work / "rtp_uac" / "tone.ulaw.wav", freq=2000.0)
    with SippProcess("load_uas_rtp", workdir=work / "rtp_uas",
                     register=("1004", one.secret(1004), f"{one.sip_ip}:{one.sip_port}"),
                     extra_args=["-max_recv_loops", "10000", "-mp", str(free_port_range(4)[0])]), \
            SippProcess("load_uac_rtp", target=door, workdir=work / "rtp_uac", inject=[auth_row("1001", "secret1001")],
                        calls=args.rtp_calls,
                        extra_args=["-s", "1004", "-r", str(args.rtp_rate), "-l", str(args.rtp_calls),
                                    "-d", str(call_ms), "-max_recv_loops", "10000",
                                    "-mp", str(free_port_range(4)[0])]):
        # Until every call is up, or all were placed and the count has stopped growing (a call
        # that failed never comes): the calls stay up for --rtp-hold after the ramp.
        placed_by = time.monotonic() + ramp + 2.0
        up, best, still = [0, 0], 0, 0
        while time.monotonic() < placed_by + args.rtp_hold / 2:
            up = [sum(1 for c in e.api("GET", "/v1/calls")[1] if c["state"] == "up") for e in (one, two)]
            still = still + 1 if sum(up) <= best else 0
            best = max(best, sum(up))
            if best >= args.rtp_calls or (time.monotonic() > placed_by and still >= 3):
                break
            time.sleep(1.0)
        time.sleep(2.0)  # let the jitter buffers settle
        s0 = [e.api("GET", "/v1/status")[1]["media"] for e in (one, two)]
        c0, t0 = [cpu_ticks([e.pid or 0, *children(e.pid or 0)]) for e in (one, two)], time.monotonic()
        time.sleep(args.rtp_measure)
        s1 = [e.api("GET", "/v1/status")[1]["media"] for e in (one, two)]
        c1, t1 = [cpu_ticks([e.pid or 0, *children(e.pid or 0)]) for e in (one, two)], time.monotonic()
    print(f"RTP through k2: {sum(up)} anchored calls up (asked {args.rtp_calls}): engine one {up[0]}, two {up[1]}")
    for name, a, b, ca, cb in zip(("one", "two"), s0, s1, c0, c1, strict=True):
        ticks = max(1, b["ticks"] - a["ticks"])
        late = (b["late_ticks"] - a["late_ticks"]) + (b["skipped_ticks"] - a["skipped_ticks"])
        lost = b["lost_frames"] - a["lost_frames"]
        frames = max(1, ticks * b["legs"])
        print(f"  engine {name}: {b['legs']} legs, CPU {100 * (cb - ca) / CLK_TCK / (t1 - t0):.0f} % (SIP + media), "
              f"ticks late/skipped {100 * late / ticks:.2f} %, frames lost {100 * lost / frames:.2f} %, "
              f"packets in {(b['packets_in'] - a['packets_in']) / (t1 - t0):.0f}/s")
    return sum(up) >= args.rtp_calls


@dataclass
class Failover:
    """What the site's CDRs say about the calls placed while engine two was killed."""

    first_new_completed_s: float | None  # kill -> first call placed after it completed (any survivor)
    first_rerouted_completed_s: float | None  # kill -> first of those Kamailio had sent to the dead engine
    sent_to_dead_s: float | None  # kill -> the last call Kamailio still sent to the dead engine first
    out_of_set_s: float | None  # kill -> the dead engine gone from the dispatcher's active set (kamcmd)
    rerouted: int  # calls placed after the kill that reached a survivor late (after a failed try)
    completed_after: int
    attempted: int
    failed: int


# A set-up this much later than its placing went to the dead engine first: Kamailio tries the
# next engine only when the transaction timer (FrontDoor.fr_timer_ms, 2 s) expires, while an
# INVITE that an overloaded engine dropped comes back with SIPp's retransmission after 0.5 s.
REROUTED_DELAY_S = 1.5


def _failover(kam: Kamailio, two: Engine, db: str, args: argparse.Namespace, work: Path) -> Failover:
    """Steady calls through k2; SIGKILL engine two after --failover-kill-after s; read the CDRs.

    SIPp places call N at t0 + (N-1)/rate and names it "N-pid@host" (its [call_id]), so each
    CDR's start (when a survivor took the INVITE) less the time its call was placed is how late it
    arrived: a call Kamailio first sent to the dead engine arrives after the transaction timer
    and the failover to the next engine (failure_route in kamailio.cfg)."""
    seconds, rate = args.failover_seconds, args.failover_rate
    door = f"{kam.door.listen}:{kam.door.port}"
    box: dict[str, object] = {}

    def load() -> None:
        box["res"] = run_sipp(
            "load_uac", door, service="1002", calls=int(rate * seconds), rate=rate,
            inject=[auth_row("1001", "secret1001")],
            extra_args=["-d", str(args.failover_call_ms), "-recv_timeout", str(args.recv_timeout_ms),
                        "-max_recv_loops", "10000"],
            timeout=seconds + 60, workdir=work / "failover")

    started = time.time()
    bg = threading.Thread(target=load, name="failover-load")
    bg.start()
    time.sleep(args.failover_kill_after)  # the load runs on both engines before the kill
    kill_at = time.time()
    two.kill9()
    dead = (two.sip_ip, two.sip_port)
    out_of_set = None
    while time.time() < kill_at + 30 and bg.is_alive():
        if dead not in kam.active_engines():
            out_of_set = time.time() - kill_at
            break
        time.sleep(0.05)
    bg.join()
    res = box["res"]
    with Store(db) as store:
        rows = [c for c in store.cdrs(limit=100_000) if c.start >= started and c.call_id.split("-", 1)[0].isdigit()]
    placed = {c.id: (int(c.call_id.split("-", 1)[0]) - 1) / rate for c in rows}
    t0 = min((c.start - placed[c.id] for c in rows), default=started)  # the fastest set-up ~ no delay
    new = [c for c in rows if t0 + placed[c.id] >= kill_at]
    done = [c for c in new if c.disposition == "ANSWERED" and c.end is not None]
    late = [c for c in new if c.start - (t0 + placed[c.id]) > REROUTED_DELAY_S]
    late_done = [c.end for c in late if c in done and c.end is not None]
    return Failover(
        min((c.end for c in done if c.end is not None), default=kill_at - 1) - kill_at if done else None,
        min(late_done) - kill_at if late_done else None,
        max(t0 + placed[c.id] for c in late) - kill_at if late else None,
        out_of_set, len(late), len(done), res.created, res.failed)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="25,50,75,100,150,200", help="calls per second, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each step")
    ap.add_argument("--call-ms", type=int, default=1000, help="call duration between ACK and BYE")
    ap.add_argument("--recv-timeout-ms", type=int, default=5000, help="per-message timeout")
    ap.add_argument("--rtp-calls", type=int, default=100, help="concurrent anchored calls with RTP through k2")
    ap.add_argument("--rtp-rate", type=float, default=20.0, help="their set-ups per second")
    ap.add_argument("--rtp-hold", type=float, default=30.0, help="how long they last once all are up")
    ap.add_argument("--rtp-measure", type=float, default=10.0, help="measurement window inside the hold")
    ap.add_argument("--failover-rate", type=float, default=40.0, help="calls per second while an engine is killed")
    ap.add_argument("--failover-seconds", type=float, default=15.0)
    ap.add_argument("--failover-kill-after", type=float, default=5.0)
    ap.add_argument("--failover-call-ms", type=int, default=200)
    ap.add_argument("--workdir", default=None, help="keep SIPp logs here (default: a temp dir)")
    args = ap.parse_args(argv)
    args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cluster_load-"))
    work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    print(f"steps {args.rates} cps x {args.seconds:g} s, calls {args.call_ms} ms, {cores} cores, logs in {work}")
    print(f"{'target':>7} {'offered/s':>9} {'attempted':>9} {'completed':>9} {'failed':>6} {'failed%':>8} "
          f"{'ms/call: engine':>7} {'media':>7} {'kamailio':>7} {'db':>7} {'sipp':>7}")
    results: dict[str, list[Measured]] = {}
    with _site(work) as (one, two, uas, db_root):
        results["direct"] = _steps("direct", f"{one.sip_ip}:{one.sip_port}", Parts([one], None, uas, db_root),
                                   args, work)
        with front_door(work / "k1", [one], **UNLIMITED) as kam:
            results["k1"] = _steps("k1", f"{kam.door.listen}:{kam.door.port}", Parts([one], kam, uas, db_root),
                                   args, work)
        with front_door(work / "k2", [one, two], **UNLIMITED) as kam:
            door = f"{kam.door.listen}:{kam.door.port}"
            results["k2"] = _steps("k2", door, Parts([one, two], kam, uas, db_root), args, work)
            rtp_ok = _rtp_over_two(door, one, two, args, work)
            fo = _failover(kam, two, one.db_args[1], args, work)
    return _summary(results, rtp_ok, fo, cores, args)


def _summary(results: dict[str, list[Measured]], rtp_ok: bool, fo: Failover, cores: int,
             args: argparse.Namespace) -> int:
    cap = {name: _capacity(r) for name, r in results.items()}
    print()
    for name, c in cap.items():
        print(f"{name}: highest rate with < {100 * MAX_FAILED_FRACTION:g} % failed calls: {c or 'none'} cps")
    verdicts: list[bool] = []
    shared = {m.step.rate for m in results["direct"] if m.ok} & {m.step.rate for m in results["k1"] if m.ok}
    direct, k1 = _cost(results["direct"], shared), _cost(results["k1"], shared)
    if direct and k1:
        d_total, k_total = direct["sip"] + direct["media"], k1["sip"] + k1["media"] + k1["kamailio"]
        overhead = k_total / d_total - 1
        ok = overhead <= KAMAILIO_TARGET
        verdicts.append(ok)
        print(f"CPU per call (median over {sorted(shared)} cps): direct {d_total:.2f} ms (engine), through Kamailio "
              f"{k_total:.2f} ms (engine {k1['sip'] + k1['media']:.2f} + Kamailio {k1['kamailio']:.2f}): "
              f"{100 * overhead:+.1f} % -> {'OK' if ok else 'ABOVE TARGET'} (target <= +{100 * KAMAILIO_TARGET:.0f} %)")
    else:
        verdicts.append(False)
        print("CPU per call through Kamailio: no rate passed on both direct and k1 -> FAILED")
    ratio = cap["k2"] / cap["k1"] if cap["k1"] else 0.0
    applies = cores >= SCALE_MIN_CORES
    line = f"2 engines vs 1: {cap['k2']} / {cap['k1']} cps = {ratio:.2f}x"
    if applies:
        verdicts.append(ratio >= SCALE_TARGET)
        print(f"{line} -> {'OK' if ratio >= SCALE_TARGET else 'BELOW TARGET'} (target >= {SCALE_TARGET}x, "
              f"applies: {cores} cores >= {SCALE_MIN_CORES})")
    else:
        print(f"{line} (target >= {SCALE_TARGET}x not applied: {cores} cores < {SCALE_MIN_CORES}, the two engine "
              "loops, Kamailio, the media processes and both SIPp peers share them)")
    k2_rates = {m.step.rate for m in results["k2"] if m.ok}
    cost = _cost(results["k2"], k2_rates) or _cost(results["k1"], {m.step.rate for m in results["k1"] if m.ok})
    if cost:
        print("per-core model, CPU ms per call: " + ", ".join(f"{k} {v:.2f}" for k, v in cost.items()))
        here = [model_cps(cost, n, cores, with_peers=True) for n in (1, 2)]
        print(f"  this box ({cores} cores, SIPp on it): predicts 1 engine {here[0]:.0f} cps, 2 engines "
              f"{here[1]:.0f} cps ({here[1] / here[0]:.2f}x); measured {cap['k1']} and {cap['k2']} "
              "(steps are coarse)")
        eight = {n: model_cps(cost, n, 8, with_peers=False) for n in range(1, 9)}
        best = max(eight, key=lambda n: (round(eight[n]), -n))
        print(f"  8-core box (phones elsewhere): 1 engine {eight[1]:.0f} cps, 2 engines {eight[2]:.0f} cps "
              f"({eight[2] / eight[1]:.2f}x); best {best} engines {eight[best]:.0f} cps")
    if not rtp_ok:
        verdicts.append(False)
        print("RTP through k2: not every call came up -> FAILED")
    def secs(value: float | None) -> str:
        return "none" if value is None else f"{value:.2f} s"

    print(f"failover: engine two killed (SIGKILL, its media too) under {args.failover_rate:g} cps through k2:")
    print(f"  first call placed after the kill completed on the survivor {secs(fo.first_new_completed_s)} after it;"
          f" {fo.completed_after} such calls completed, SIPp counted {fo.failed} failed of {fo.attempted}")
    print(f"  {fo.rerouted} of them went to the dead engine first and reached the survivor late; the last was placed "
          f"{secs(fo.sent_to_dead_s)} after the kill; the first of them completed "
          f"{secs(fo.first_rerouted_completed_s)} after the kill")
    print(f"  the dead engine left Kamailio's active set (kamcmd dispatcher.list) {secs(fo.out_of_set_s)}"
          " after the kill")
    if fo.first_new_completed_s is None:
        verdicts.append(False)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
