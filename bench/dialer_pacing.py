"""Dialer pacing over a simulated 8-hour shift: agent occupancy and abandon rate per dial mode.

    python bench/dialer_pacing.py [--hours 8] [--agents 5,20,50] [--seeds 1,2,3] [--cap 0.03] [--margin 0.02]

Runs ``appliance.dialer.simulator`` (seeded discrete-event shift: lognormal talk times, 10-30 s
wrap-up, answer rates that change through the day, 2 s abandon threshold) for each agent count
and each dial mode, and prints the medians over the seeds: occupancy (talk + wrap-up / logged-in
time), abandon rate (abandoned / answered), connects per agent-hour, calls placed. Exits 1 when a
predictive run's abandon rate is above the cap, 2 when predictive's median occupancy is not at least
``--margin`` above progressive's for some agent count (predictive exists to raise occupancy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from appliance.dialer.pacing import DialMode
from appliance.dialer.simulator import ShiftConfig, ShiftResult, simulate_shift

# P(a person answers) through the day: a little higher mid-morning, low after lunch.
DAY = ((0.0, 0.30), (2 * 3600.0, 0.35), (4 * 3600.0, 0.20), (6 * 3600.0, 0.30))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--agents", default="5,20,50")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--cap", type=float, default=0.03)
    ap.add_argument("--margin", type=float, default=0.02, help="predictive occupancy over progressive, at least")
    args = ap.parse_args(argv)
    agent_counts = [int(a) for a in args.agents.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]

    print(f"{args.hours:g} h shift, answer rate by hour {DAY}, cap {args.cap:.1%}, medians over seeds {seeds}")
    print(f"{'mode':<12} {'agents':>6} {'occupancy':>10} {'abandon':>8} {'max abandon':>12} "
          f"{'connects/agent-h':>17} {'placed':>8} {'cpu s/run':>10}")
    over_cap: list[str] = []
    short: list[str] = []
    for agents in agent_counts:
        occupancy: dict[DialMode, float] = {}
        for mode in (DialMode.PREVIEW, DialMode.PROGRESSIVE, DialMode.PREDICTIVE):
            runs: list[ShiftResult] = []
            t0 = time.process_time()
            for seed in seeds:
                runs.append(simulate_shift(ShiftConfig(mode=mode, agents=agents, hours=args.hours,
                                                       answer_schedule=DAY, cap=args.cap, seed=seed)))
            cpu = (time.process_time() - t0) / len(seeds)
            occ = statistics.median(r.occupancy for r in runs)
            occupancy[mode] = occ
            worst = max(r.abandon_rate for r in runs)
            print(f"{mode.value:<12} {agents:>6} {occ:>10.1%} {statistics.median(r.abandon_rate for r in runs):>8.2%} "
                  f"{worst:>12.2%} {statistics.median(r.connects_per_agent_hour for r in runs):>17.1f} "
                  f"{statistics.median(r.placed for r in runs):>8.0f} {cpu:>10.1f}")
            if mode is DialMode.PREDICTIVE and worst > args.cap:
                over_cap.append(f"{agents} agents: abandon {worst:.2%} > {args.cap:.1%}")
        gain = occupancy[DialMode.PREDICTIVE] - occupancy[DialMode.PROGRESSIVE]
        if gain < args.margin:
            short.append(f"{agents} agents: predictive occupancy only {gain:+.1%} over progressive")
    for line in over_cap + short:
        print("FAIL", line)
    if over_cap:
        return 1
    if short:
        return 2
    print(f"OK: predictive under the {args.cap:.1%} cap in every run, and at least {args.margin:.0%} "
          "more occupancy than progressive at every agent count")
    return 0


if __name__ == "__main__":
    sys.exit(main())
